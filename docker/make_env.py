#!/usr/bin/env python3
"""Create (or complete) .env for `docker compose up` from .env.example.

    python3 docker/make_env.py            # .env from .env.example, blank secrets filled at random
    python3 docker/make_env.py --force    # new random secrets (then: docker compose down -v)

Every key that is blank in .env.example is a secret: it gets a random value (48 hex characters:
no quoting problems in .env, YAML, shells or JSON). An existing .env is completed, never
overwritten: values you set stay, keys added to .env.example since are appended. The file is
written with mode 0600 and .env is gitignored. Values are never printed. Standard library only,
any Python 3.8+, so it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m and not line.lstrip().startswith("#"):
            values[m.group(1)] = m.group(2)
    return values


def secret_keys(example_text: str) -> list[str]:
    """The keys .env.example leaves blank: the secrets."""
    return [k for k, v in parse(example_text).items() if v == ""]


def new_secret() -> str:
    return secrets.token_hex(24)


def render(example_text: str, current: dict[str, str], force: bool = False) -> tuple[str, list[str]]:
    """.env text: the example's lines with current values kept and blank secrets filled."""
    secret = set(secret_keys(example_text))
    filled, out, seen = [], [], set()
    for line in example_text.splitlines():
        m = LINE.match(line)
        if not m or line.lstrip().startswith("#"):
            out.append(line)
            continue
        key, default = m.group(1), m.group(2)
        seen.add(key)
        value = current.get(key, default)
        if key in secret and (force or value == ""):
            value = new_secret()
            filled.append(key)
        out.append(f"{key}={value}")
    extra = [k for k in current if k not in seen]
    if extra:   # keys the user added by hand: kept, after the example's
        out += ["", "# --- Your own settings ---"] + [f"{k}={current[k]}" for k in extra]
    return "\n".join(out) + "\n", filled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--example", default=str(ROOT / ".env.example"), help="template (default: .env.example)")
    p.add_argument("--out", default=str(ROOT / ".env"), help="file to write (default: .env at the repo root)")
    p.add_argument("--force", action="store_true",
                   help="replace every secret with a new random one (existing data volumes keep the old "
                        "Elasticsearch password: run 'docker compose down -v' afterwards)")
    args = p.parse_args(argv)

    example, out = Path(args.example), Path(args.out)
    if not example.exists():
        print(f"error: {example} not found; run this from a clone of the repository.", file=sys.stderr)
        return 2
    current = parse(out.read_text()) if out.exists() else {}
    text, filled = render(example.read_text(), current, force=args.force)
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, out)
    action = "updated" if current else "created"
    print(f"{out}: {action}; " + (f"random values for {', '.join(filled)}" if filled else "no secret was blank"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

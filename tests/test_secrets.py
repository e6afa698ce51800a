"""No secret in the repository, in what `churnstream settings` prints, or in children's environment.

The repository scan reads every file git knows (tracked, plus new files not ignored) and looks for
private keys, well-known token formats, credentials in URLs, any non-empty secret in an env-like
file, and high-entropy literals assigned to *password* / *secret* / *token* / *key* names. The
sample secrets below are made at runtime, so this file never matches its own scan.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

from foundation import PROJECT_ROOT
from foundation.settings import Settings

SECRET_NAME = re.compile(r"(?i)(pass(word|wd)?|secret|token|api[_-]?key|private[_-]?key|encryption[_-]?key|"
                         r"hash[_-]?key|credentials?)")
ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*?)\s*$")
PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9/+=]{40}"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?!\$\{|\*\*\*)[^/\s:@'\"]{3,}@[\w.-]+"),
}
# name = "literal" / name: 'literal' / "name": "literal" with a secret-looking name.
ASSIGNED = re.compile(r"""(?i)["']?([\w.-]*(?:pass(?:word|wd)|secret|token|api[_-]?key|hash[_-]?key|encryption[_-]?key)"""
                      r"""[\w.-]*)["']?\s*[:=]\s*[bf]?["']([^"'\s]{12,})["']""")
ENTROPY_BITS = 3.5            # per character; random tokens are above 4, words and identifiers below 3.5
MAX_BYTES = 2_000_000
# (path, kind) pairs reviewed and accepted; keep this list short and say why.
ALLOW: set[tuple[str, str]] = set()


def entropy(text: str) -> float:
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _env_like(name: str) -> bool:
    return name == ".env" or name.startswith(".env.") or name.endswith((".env", ".properties")) or name == ".envrc"


def scan_text(name: str, text: str) -> list[str]:
    """Findings as 'line N: kind (detail)'; ``name`` is the file name (env-like files are stricter)."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for kind, pattern in PATTERNS.items():
            if pattern.search(line):
                found.append(f"line {n}: {kind}")
        m = ENV_LINE.match(line)
        if _env_like(name) and m and not line.lstrip().startswith("#"):
            key, value = m.group(1), m.group(2).strip("'\"")
            if SECRET_NAME.search(key) and value and not value.startswith("${"):
                found.append(f"line {n}: a value for {key} in an env file (leave it blank)")
            continue
        for m in ASSIGNED.finditer(line):
            value = m.group(2)
            if "***" in value or any(c in value for c in "{}()<>"):
                continue             # placeholders, ${VAR} references and f-string expressions
            if entropy(value) >= ENTROPY_BITS:
                found.append(f"line {n}: a random-looking literal assigned to {m.group(1)}")
    return found


def scan_file(path: Path) -> list[str]:
    data = path.read_bytes()[:MAX_BYTES]
    if b"\0" in data[:8192]:
        return []                    # binary (images): nothing we would write by hand
    return scan_text(path.name, data.decode("utf-8", errors="replace"))


def repo_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [p for p in out.decode().split("\0") if p and (PROJECT_ROOT / p).is_file()]


def test_no_secret_literal_in_the_repository():
    files = repo_files()
    assert len(files) > 50 and "foundation/settings.py" in files
    findings = [f"{rel}: {f}" for rel in files for f in scan_file(PROJECT_ROOT / rel)
                if (rel, f.split(": ", 1)[1]) not in ALLOW]
    assert findings == []


def test_env_example_leaves_every_secret_blank():
    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    pairs = dict(m.groups() for m in map(ENV_LINE.match, lines) if m and not m.group(0).lstrip().startswith("#"))
    secret_keys = [k for k in pairs if SECRET_NAME.search(k)]
    assert {"ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD", "PII_HASH_KEY"} <= set(secret_keys)
    assert {k: pairs[k] for k in secret_keys if pairs[k]} == {}


def _random_password() -> str:
    return secrets.token_urlsafe(24)


@pytest.mark.parametrize("name,text,expected", [
    (".env.example", "CHURNSTREAM_ES_PASSWORD=hunter2" + "xyz\n", "line 1: a value for CHURNSTREAM_ES_PASSWORD in an env file"),
    (".env", "# comment\nexport PII_HASH_KEY='abc'\n", "line 2: a value for PII_HASH_KEY in an env file"),
    ("client.properties", "ssl.key.password=x\n", "line 1: a value for ssl.key.password in an env file"),
    ("settings.py", 'es_password = "%s"\n' % _random_password(), "line 1: a random-looking literal assigned to es_password"),
    ("compose.yml", "  KAFKA_SASL_SECRET: '%s'\n" % _random_password(), "line 1: a random-looking literal assigned to KAFKA_SASL_SECRET"),
    ("x.json", '{"api_key": "%s"}\n' % _random_password(), "line 1: a random-looking literal assigned to api_key"),
    ("key.pem", "-----BEGIN " + "PRIVATE KEY-----\nMIIE\n", "line 1: private key"),
    ("key.pem", "-----BEGIN " + "RSA PRIVATE KEY-----\n", "line 1: private key"),
    ("aws.txt", "id = " + "AKIA" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(16)), "line 1: AWS access key id"),
    ("notes.md", "see https://admin:" + _random_password() + "@es.example.com:9200/", "line 1: credentials in a URL"),
])
def test_the_scan_catches(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert [f for f in scan_file(path) if f.startswith(expected)] != [], scan_file(path)


@pytest.mark.parametrize("name,text", [
    (".env.example", "ELASTIC_PASSWORD=\nKIBANA_ENCRYPTION_KEY=\nGENERATOR_RATE=50\n# PASSWORD=ignored comment\n"),
    ("docker-compose.yml", '  CHURNSTREAM_ES_PASSWORD: "${ELASTIC_PASSWORD:?is empty}"\n'),
    ("settings.py", 'kafka_sasl_password: str = field(default="", metadata=SECRET)\npassword = "***"\n'),
    ("test_x.py", 'Settings(es_password="hunter22")\n'),                     # an obvious fake, low entropy
    ("README.md", "http://localhost:9200 and http://user:${PASSWORD}@host/\n"),
])
def test_the_scan_leaves_blanks_references_and_placeholders_alone(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert scan_file(path) == []


def test_settings_command_prints_secrets_as_stars():
    values = {f"CHURNSTREAM_{n.upper()}": _random_password()
              for n in ("es_password", "kafka_sasl_password", "kibana_system_password", "pii_hash_key", "es_api_key")}
    env = dict(os.environ, **values, CHURNSTREAM_ES_USERNAME="elastic", CHURNSTREAM_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
               CHURNSTREAM_KAFKA_SASL_MECHANISM="PLAIN", CHURNSTREAM_KAFKA_SASL_USERNAME="svc")
    r = subprocess.run([sys.executable, "-m", "churnstream", "-v", "settings"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert {k: shown[k] for k in ("es_password", "kafka_sasl_password", "kibana_system_password", "pii_hash_key",
                                  "es_api_key")} == dict.fromkeys(("es_password", "kafka_sasl_password",
                                                                   "kibana_system_password", "pii_hash_key",
                                                                   "es_api_key"), "***")
    assert shown["kafka_sasl_username"] == "svc"
    for secret in values.values():
        assert secret not in r.stdout and secret not in r.stderr


def test_secret_variables_are_removed_from_the_environment_children_inherit():
    env = {"CHURNSTREAM_ES_PASSWORD": "a", "CHURNSTREAM_PII_HASH_KEY": "b", "CHURNSTREAM_ES_USERNAME": "u",
           "CHURNSTREAM_KAFKA_SASL_PASSWORD": "c", "PATH": "/bin"}
    removed = Settings.forget_secret_environment(env)
    assert sorted(removed) == ["CHURNSTREAM_ES_PASSWORD", "CHURNSTREAM_KAFKA_SASL_PASSWORD", "CHURNSTREAM_PII_HASH_KEY"]
    assert env == {"CHURNSTREAM_ES_USERNAME": "u", "PATH": "/bin"}

"""Pseudonymisation of customer PII (email, IP) with a keyed hash.

The same function runs inside the Flink job (as a UDF) and in checks, so both agree. HMAC-SHA256
keeps pseudonyms stable for joins and counts while a dictionary of known emails cannot be hashed
without the key. The key lives outside git: CHURNSTREAM_PII_HASH_KEY, or a random key stored once
in the run folder (mode 0600).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from foundation.settings import Settings


def pseudonym(key: bytes, value: str | None) -> str | None:
    if value is None:
        return None
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def hash_key(settings: Settings) -> bytes:
    if settings.pii_hash_key:
        return settings.pii_hash_key.encode()
    path = Path(settings.run_dir) / "pii-hash.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()

"""Just enough Confluent Schema Registry: register a value schema, get its id (urllib, no client lib)."""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request

from foundation import UserError

MAGIC = b"\x00"


def register(url: str, subject: str, schema: dict, timeout: float = 10.0) -> int:
    body = json.dumps({"schema": json.dumps(schema)}).encode()
    req = urllib.request.Request(f"{url.rstrip('/')}/subjects/{subject}/versions", data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(json.loads(resp.read())["id"])
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:200]
        raise UserError(f"the schema registry at {url} refused subject {subject} (HTTP {e.code}: {detail}).") from None
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"cannot register subject {subject} with the schema registry at {url} ({reason}).") from None


def wire_header(schema_id: int) -> bytes:
    """Confluent wire format: magic byte 0, then the schema id as a big-endian int32, then Avro binary."""
    return MAGIC + struct.pack(">I", schema_id)

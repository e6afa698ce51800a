"""Composable index templates with explicit mappings for every index the Flink job writes
(the indices and their field types are foundation.catalog's).

Dates are `date`, categories `keyword`, numbers their real type, pseudonymised ids `keyword`.
`dynamic: strict` makes a field the job writes without a mapping fail loudly instead of being
guessed (tests check every sink column against these mappings).
"""

from __future__ import annotations

import logging

from foundation.catalog import INDEX
from foundation.settings import Settings

log = logging.getLogger("churnstream.kibana")

def template_body(settings: Settings, key: str, shards: int = 1, replicas: int = 0,
                  refresh_interval: str = "1s") -> dict:
    props = {name: {"type": typ} for name, typ in INDEX[key].fields.items()}
    if "payload" in props:
        props["payload"] = {"type": "text", "index": True}
    return {
        "index_patterns": [settings.index(INDEX[key].name)],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas,
                         "refresh_interval": refresh_interval},
            "mappings": {"dynamic": "strict", "properties": props},
        },
        "_meta": {"managed_by": "churnstream"},
    }


def template_name(settings: Settings, key: str) -> str:
    return f"{settings.index_prefix}{INDEX[key].name}".rstrip("-") + "-template"


def index_settings(settings: Settings) -> dict:
    """Shards, replicas and refresh interval of every index (CHURNSTREAM_INDEX_SHARDS, _REPLICAS,
    _REFRESH_INTERVAL; single-node demo defaults 1, 0, 1s)."""
    return {"shards": settings.index_shards, "replicas": settings.index_replicas,
            "refresh_interval": settings.index_refresh_interval}


def install_templates(settings: Settings, es=None, **overrides) -> list[str]:
    """Create or update every template (idempotent). Run before any job writes.

    ``overrides``: shards / replicas / refresh_interval (default: ``index_settings``)."""
    es = es or settings.es_client()
    opts = index_settings(settings)
    opts.update({k: v for k, v in overrides.items() if v is not None})
    names = []
    for key in INDEX:
        name = template_name(settings, key)
        body = template_body(settings, key, **opts)
        es.indices.put_index_template(name=name, index_patterns=body["index_patterns"], priority=body["priority"],
                                      template=body["template"], meta=body["_meta"])
        names.append(name)
    log.info("kibana: %d index templates installed (%s*)", len(names), settings.index_prefix)
    return names

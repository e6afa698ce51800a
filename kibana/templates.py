"""Composable index templates with explicit mappings for every index the Flink job writes.

Dates are `date`, categories `keyword`, numbers their real type, pseudonymised ids `keyword`.
`dynamic: strict` makes a field the job writes without a mapping fail loudly instead of being
guessed (tests check every sink column against these mappings).
"""

from __future__ import annotations

import logging
import os

from churnstream import UserError
from churnstream.settings import Settings
from flink_jobs.params import INDICES

log = logging.getLogger("churnstream.kibana")

K, D, I, L, F, B, T = "keyword", "date", "integer", "long", "double", "boolean", "text"

MAPPINGS: dict[str, dict[str, str]] = {
    "enriched": {
        "activity_id": K, "customer_id": I, "offer_id": I, "activity_type": K, "channel": K,
        "propensity_to_churn": F, "ip_hash": K, "event_time": D, "customer_known": B, "email_hash": K,
        "gender": K, "income": I, "fico": I, "years_active": I, "income_band": K, "fico_band": K,
        "tenure_band": K, "offer_known": B, "offer_name": K, "offer_url": K, "product_line": K,
        "monthly_premium": F,
    },
    "segments": {
        "window_id": K, "window_start": D, "window_end": D, "dimension": K, "segment": K, "events": L,
        "avg_propensity": F, "max_propensity": F, "high_risk_share": F,
    },
    "customers": {
        "customer_id": I, "last_activity_id": K, "last_activity_type": K, "last_activity_time": D,
        "rolling_propensity": F, "recent_events": L, "risk_tier": K, "value_risk_quadrant": K,
    },
    "alerts": {
        "alert_id": K, "customer_id": I, "alert_time": D, "previous_propensity": F, "rolling_propensity": F,
    },
    "sessions": {
        "session_id": K, "customer_id": I, "session_start": D, "session_end": D, "duration_seconds": I,
        "events": L, "avg_propensity": F,
    },
    "dead_letters": {
        "dead_letter_id": K, "reason": K, "source_topic": K, "source_partition": I, "source_offset": L,
        "kafka_time": D, "payload": T,
    },
}

# The time field of each index (Kibana data views use it).
TIME_FIELDS = {"enriched": "event_time", "segments": "window_start", "customers": "last_activity_time",
               "alerts": "alert_time", "sessions": "session_start", "dead_letters": "kafka_time"}


def template_body(settings: Settings, key: str, shards: int = 1, replicas: int = 0,
                  refresh_interval: str = "1s") -> dict:
    props = {name: {"type": typ} for name, typ in MAPPINGS[key].items()}
    if "payload" in props:
        props["payload"] = {"type": "text", "index": True}
    return {
        "index_patterns": [settings.index(INDICES[key])],
        "priority": 200,
        "template": {
            "settings": {"number_of_shards": shards, "number_of_replicas": replicas,
                         "refresh_interval": refresh_interval},
            "mappings": {"dynamic": "strict", "properties": props},
        },
        "_meta": {"managed_by": "churnstream"},
    }


def template_name(settings: Settings, key: str) -> str:
    return f"{settings.index_prefix}{INDICES[key]}".rstrip("-") + "-template"


def index_settings(settings: Settings, env: dict[str, str] | None = None) -> dict:
    """Shards, replicas and refresh interval of every index: single-node demo defaults (1, 0, 1s),
    overridable by ``CHURNSTREAM_INDEX_SHARDS`` / ``_INDEX_REPLICAS`` / ``_INDEX_REFRESH_INTERVAL``
    (or Settings fields of those names, when Settings has them)."""
    env = os.environ if env is None else env
    out = {}
    for name, default, cast in (("shards", 1, int), ("replicas", 0, int), ("refresh_interval", "1s", str)):
        key = f"index_{name}"
        raw = getattr(settings, key, None)
        if raw in (None, ""):
            raw = env.get(f"CHURNSTREAM_{key.upper()}", "")
        try:
            out[name] = cast(raw) if raw not in (None, "") else default
        except ValueError:
            raise UserError(f"CHURNSTREAM_{key.upper()}={raw!r} is not a whole number; set it to one, "
                            f"e.g. CHURNSTREAM_{key.upper()}={default}.") from None
    return out


def install_templates(settings: Settings, es=None, **overrides) -> list[str]:
    """Create or update every template (idempotent). Run before any job writes.

    ``overrides``: shards / replicas / refresh_interval (default: ``index_settings``)."""
    es = es or settings.es_client()
    opts = index_settings(settings)
    opts.update({k: v for k, v in overrides.items() if v is not None})
    names = []
    for key in MAPPINGS:
        name = template_name(settings, key)
        es.indices.put_index_template(name=name, body=template_body(settings, key, **opts))
        names.append(name)
    log.info("kibana: %d index templates installed (%s*)", len(names), settings.index_prefix)
    return names

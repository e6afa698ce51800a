"""The values substituted into the .sql files: names, connection options and tuning knobs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from churnstream import PROJECT_ROOT
from churnstream.settings import Settings

SQL_DIR = PROJECT_ROOT / "sql"
SCHEMA_DIR = PROJECT_ROOT / "avro_schemas"

# Index names (after the prefix). The Kibana templates and data views use the same names.
INDICES = {
    "enriched": "enriched",
    "segments": "segments",
    "customers": "customers",
    "alerts": "alerts",
    "sessions": "sessions",
    "dead_letters": "dead-letters",
}


@dataclass(frozen=True)
class JobOptions:
    """What the job does (flags); where it connects comes from Settings."""

    bounded: bool = False                  # stop at the offsets present at start (tests, demo)
    format: str = "json"                   # json or avro (Confluent wire format, Schema Registry)
    startup_mode: str = "earliest-offset"
    group_id: str = "churnstream-pipeline"
    window_size_seconds: int = 60
    window_slide_seconds: int = 10
    rolling_events: int = 10               # OVER window: the customer's last N events
    alert_threshold: float = 0.7
    high_risk_threshold: float = 0.6
    high_value_income: int = 100_000
    session_gap_minutes: int = 30
    out_of_orderness_seconds: int = 5
    # Idle partitions would hold back watermarks forever in a live run; but in a bounded run an
    # idle timeout only adds a start-up race (a versioned table marked idle before it is read lets
    # activities pass unenriched), and every source ends with a final watermark anyway: off there.
    idle_timeout: str = "5 s"
    max_clock_skew_hours: int = 24
    max_payload_chars: int = 65_536
    customer_state_interval_seconds: int = 1  # customers index: each customer's last state per interval
    # Duplicate activity ids are recognised for this long after the first copy arrives (state TTL of
    # the deduplication and of the first-N that reports the copies: a flag and a count per id).
    dedup_horizon_minutes: int = 10
    bulk_flush_interval: str = "500ms"
    bulk_flush_max_actions: int = 2000


def _enum_symbols(schema_file: str, field: str) -> list[str]:
    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    for f in schema["fields"]:
        if f["name"] == field:
            return list(f["type"]["symbols"])
    raise KeyError(field)


def _schema_text(schema_file: str) -> str:
    """The project's schema as the avro-confluent format's reader schema (one line of JSON)."""
    return json.dumps(json.loads((SCHEMA_DIR / schema_file).read_text()), separators=(",", ":"))


def index_names(settings: Settings) -> dict[str, str]:
    return {key: settings.index(name) for key, name in INDICES.items()}


def kafka_properties(settings: Settings) -> dict[str, str]:
    return {f"properties.{k}": v for k, v in settings.kafka_java_properties().items()}


def es_options(settings: Settings, opts: JobOptions) -> dict[str, str]:
    o = {
        "connector": "elasticsearch-7",
        "hosts": settings.es_url,
        "format": "json",
        "json.timestamp-format.standard": "ISO-8601",
        "sink.flush-on-checkpoint": "true",   # at-least-once: flush before each checkpoint completes
        "sink.bulk-flush.max-actions": str(opts.bulk_flush_max_actions),
        "sink.bulk-flush.max-size": "5mb",
        "sink.bulk-flush.interval": opts.bulk_flush_interval,
        # Elasticsearch down or overloaded: retry with backoff instead of failing or dropping.
        "sink.bulk-flush.backoff.strategy": "EXPONENTIAL",
        "sink.bulk-flush.backoff.max-retries": "10",
        "sink.bulk-flush.backoff.delay": "500ms",
        "document-id.key-delimiter": "|",
    }
    if settings.es_username:
        o["username"] = settings.es_username
        o["password"] = settings.es_password
    return o


def kafka_reads(settings: Settings, opts: JobOptions) -> dict[str, dict[str, str]]:
    """Per source table: the WITH options every format shares (topic, connection, consumer group,
    read bounds, raw record key); sources.sql and sources_avro.sql add only their value format."""
    common = {**kafka_properties(settings), "properties.group.id": opts.group_id,
              "scan.bounded.mode": "latest-offset" if opts.bounded else "unbounded",
              "key.format": "raw", "value.fields-include": "EXCEPT_KEY"}
    return {
        # raw key (the customer id) and raw value: a bad record becomes a dead letter, never a failed job
        "activity_kafka": {"topic": settings.topic("customer_activity"), **common,
                           "scan.startup.mode": opts.startup_mode, "key.fields": "record_key", "value.format": "raw"},
        "customers_kafka": {"topic": settings.topic("customer_details"), **common},
        "offers_kafka": {"topic": settings.topic("customer_offers"), **common},
    }


def build(settings: Settings, opts: JobOptions) -> dict[str, object]:
    from churnstream.artifacts import udf_jar

    p: dict[str, object] = {
        "topic_activity": settings.topic("customer_activity"),
        "topic_dead_letters": settings.topic("churn_dead_letter"),
        "kafka_properties": kafka_properties(settings),
        "es_options": es_options(settings, opts),
        "activity_types": _enum_symbols("customer_activity.avsc", "activity_type"),
        "channels": _enum_symbols("customer_activity.avsc", "channel"),
        "rolling_events_minus_one": opts.rolling_events - 1,
        **kafka_reads(settings, opts),
        "schema_registry_url": settings.schema_registry_url,
        "udf_jar": udf_jar(settings).as_uri() if opts.format == "avro" else "",
        "customer_details_schema": _schema_text("customer_details.avsc"),
        "customer_offers_schema": _schema_text("customer_offers.avsc"),
    }
    p["idle_timeout"] = "0 ms" if opts.bounded else opts.idle_timeout
    for name in ("window_size_seconds", "window_slide_seconds", "alert_threshold", "high_risk_threshold",
                 "high_value_income", "session_gap_minutes", "out_of_orderness_seconds",
                 "max_clock_skew_hours", "max_payload_chars", "customer_state_interval_seconds"):
        p[name] = getattr(opts, name)
    p.update({f"index_{k}": v for k, v in index_names(settings).items()})
    return p

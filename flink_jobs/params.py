"""The values substituted into the .sql files: names, connection options, the catalog's rules and
the job's options (flink_jobs.options) as SQL text."""

from __future__ import annotations

import json

from foundation import PROJECT_ROOT, catalog
from foundation.settings import Settings
from flink_jobs.jars import JobJars
from flink_jobs.options import JobOptions

SQL_DIR = PROJECT_ROOT / "sql"


def _schema_text(schema_file: str) -> str:
    """The project's schema as the avro-confluent format's reader schema (one line of JSON)."""
    return json.dumps(json.loads((catalog.SCHEMA_DIR / schema_file).read_text()), separators=(",", ":"))


def kafka_properties(settings: Settings) -> dict[str, str]:
    return {f"properties.{k}": v for k, v in settings.kafka_java_properties().items()}


def result_options(settings: Settings) -> dict[str, str]:
    """The WITH options every result topic's sink table shares (sql/sinks.sql)."""
    return {
        "connector": "upsert-kafka",
        **kafka_properties(settings),
        "key.format": "raw",
        "value.format": "json",
        "value.json.timestamp-format.standard": "ISO-8601",
        "value.fields-include": "EXCEPT_KEY",
        # Not exactly-once: transactions would hide every record until the next checkpoint commits
        # (seconds of latency). Ids are stable, so what a restart writes again replaces itself.
        "sink.delivery-guarantee": "at-least-once",
        # Written once every in-sync replica has it (a replicated topic survives a broker's loss).
        "properties.acks": "all",
        # Latency over batching: results leave within 10 ms, compressed.
        "properties.linger.ms": "10",
        "properties.compression.type": "lz4",
    }


def kafka_reads(settings: Settings, opts: JobOptions,
                activity_stop_offsets: str | None = None) -> dict[str, dict[str, str]]:
    """Per source table: the WITH options every format shares (topic, connection, consumer group,
    read bounds, raw record key); sources.sql and sources_avro.sql add only their value format.
    ``activity_stop_offsets``: where a bounded run stops reading activity (flink_jobs.bounded)."""
    common = {**kafka_properties(settings), "properties.group.id": opts.group_id,
              "scan.bounded.mode": "latest-offset" if opts.bounded else "unbounded",
              "key.format": "raw", "value.fields-include": "EXCEPT_KEY"}
    # Idleness (sources.sql says why each source has its own). A bounded run ends every source with
    # a final watermark, and an idle timeout there only adds a start-up race.
    entity_watermark = {} if opts.bounded else {"scan.watermark.idle-timeout": opts.idle_timeout}
    if opts.bounded:
        activity_only = ({"scan.bounded.mode": "specific-offsets",
                          "scan.bounded.specific-offsets": activity_stop_offsets} if activity_stop_offsets else {})
    else:
        activity_only = {
            "partition.idle-timeout": f"{opts.partition_idle_timeout_seconds} s",
            "reader.idle-timeout": f"{opts.reader_idle_timeout_seconds} s",
            # A partition added to the topic is read within this (the connector's default is 5 minutes;
            # producers see it after their metadata refresh, 5 minutes by default, so the job is first).
            "scan.topic-partition-discovery.interval": f"{opts.partition_discovery_seconds} s"}
    return {
        # raw key (the customer id) and raw value: a bad record becomes a dead letter, never a failed job
        "activity_kafka": {"topic": settings.topic(catalog.ACTIVITY), **common,
                           "scan.startup.mode": opts.startup_mode, "key.fields": "record_key", "value.format": "raw",
                           **activity_only},
        "customers_kafka": {"topic": settings.topic(catalog.DETAILS), **common, **entity_watermark},
        "offers_kafka": {"topic": settings.topic(catalog.OFFERS), **common, **entity_watermark},
    }


def build(settings: Settings, opts: JobOptions, jars: JobJars | None = None,
          activity_stop_offsets: str | None = None) -> dict[str, object]:
    """Every ${name} of the SQL files. ``jars``: needed for --format avro (the function's jar);
    ``activity_stop_offsets``: a bounded run's (flink_jobs.bounded)."""
    if opts.format == "avro" and jars is None:
        raise ValueError("an Avro job needs its jars (JobJars) for the SQL's USING JAR")
    p: dict[str, object] = {
        "topic_activity": settings.topic(catalog.ACTIVITY),
        "topic_customer_details": settings.topic(catalog.DETAILS),
        "topic_customer_offers": settings.topic(catalog.OFFERS),
        "result_options": result_options(settings),
        "activity_types": catalog.activity_types(),
        "channels": catalog.channels(),
        # The business rules' numbers (catalog): bands become CASE expressions (${name:bands(expr)}).
        "risk_tiers": catalog.RISK_TIERS,
        "income_bands": catalog.INCOME_BANDS,
        "fico_bands": catalog.FICO_BANDS,
        "tenure_bands": catalog.TENURE_BANDS,
        "high_risk_threshold": catalog.HIGH_RISK_PROPENSITY,
        "high_value_income": catalog.HIGH_VALUE_INCOME,
        "rolling_events_minus_one": opts.rolling_events - 1,
        **kafka_reads(settings, opts, activity_stop_offsets),
        "schema_registry_url": settings.schema_registry_url,
        "udf_jar": jars.udf.as_uri() if opts.format == "avro" else "",
        "customer_details_schema": _schema_text("customer_details.avsc"),
        "customer_offers_schema": _schema_text("customer_offers.avsc"),
    }
    p.update({
        "inactivity_gap_ms": opts.inactivity_gap_seconds * 1000,
        "w_recency": catalog.ENGAGEMENT_WEIGHTS["recency"],
        "w_frequency": catalog.ENGAGEMENT_WEIGHTS["frequency"],
        "w_monetary": catalog.ENGAGEMENT_WEIGHTS["monetary"],
        "activity_scale": catalog.ACTIVITY_SCALE,
        "session_scale": catalog.SESSION_SCALE,
        "premium_scale": catalog.PREMIUM_SCALE,
        "engagement_segments": catalog.ENGAGEMENT_SEGMENTS,
        "high_value_cltv": catalog.HIGH_VALUE_CLTV,
        "engaged_score": catalog.ENGAGED_SCORE,
    })
    for name in ("window_size_seconds", "window_slide_seconds", "alert_threshold", "session_gap_minutes",
                 "out_of_orderness_seconds",
                 "max_clock_skew_hours", "max_payload_chars"):
        p[name] = getattr(opts, name)
    results = {f"topic_{k}": v for k, v in catalog.result_topics(settings).items()}
    clash = results.keys() & p.keys()
    if clash:   # a result topic's parameter would silently replace a source topic's
        raise ValueError(f"parameter names used twice: {sorted(clash)}")
    p.update(results)
    return p

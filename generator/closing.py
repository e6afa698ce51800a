"""Close a bounded feed's event time for a job that runs on: `churnstream generate --close`.

A live job only emits what the watermark has passed, so the last seconds of a bounded feed stay
pending until event time moves on (a quiet partition stops holding it back after the job's
--partition-idle-timeout, but nothing moves it past the feed's last records). This writes
one record to every partition of the three input topics, a day past the feed's start (or, for a
live feed, 50 minutes from now: Kafka refuses records more than an hour ahead): the watermark then
passes all of the feed, and `churnstream verify` can compare every index with the recomputation of
the feed's ledger, for a feed shorter than a day. The closing activities' own results stay pending
(a day is longer than every window and session), so what must be in Elasticsearch is the feed's:
its engagement timers up to the closing watermark included, which the recomputation also fires as
long as the engagement refresh and inactivity gap the job runs with are a day or longer (the
defaults are).
The closing customer and offer versions are 10 minutes before the closing activities (and so after
a live feed's last records, which they must not enrich): once the
activity partitions go quiet, a temporal join's watermark is its versioned side's, and that must
stay short of the closing activities. An Avro feed's closing records are Avro too, in the wire
format, with the schema ids the feed registered (its ledger's `schema_ids`).
"""

from __future__ import annotations

from generator.config import GeneratorConfig
from generator.stream import expected_records

CLOSE_AFTER_MS = 86_400_000     # a day past the feed's start
VERSIONS_BEFORE_MS = 600_000    # the closing customer and offer versions, 10 minutes before
# Kafka 4 refuses a record stamped more than an hour ahead of the broker's clock
# (message.timestamp.after.max.ms): a live feed (started now) closes 50 minutes from now instead,
# still past every window and session of a feed that ended before.
AHEAD_OF_NOW_MS = 50 * 60_000


def closing_time(config: GeneratorConfig, now_ms: int) -> int:
    """A day past the feed's start, or 50 minutes from ``now_ms`` if that is sooner."""
    return min(config.start_ms + CLOSE_AFTER_MS, now_ms + AHEAD_OF_NOW_MS)


def closing_records(config: GeneratorConfig, partitions: dict[str, int],
                    now_ms: int | None = None) -> list[tuple[str, int, bytes, bytes, int]]:
    """(logical topic, partition, key, value, timestamp) of every closing record.

    ``partitions``: the partition count of each logical input topic; ``now_ms``: the clock (now)."""
    import time

    import orjson

    from generator.stream import json_view

    t = closing_time(config, int(time.time() * 1000) if now_ms is None else now_ms)
    latest = {}
    for r in json_view(expected_records(config), config):
        if r.topic in ("customer_details", "customer_offers") and r.value:
            latest[r.topic] = (r.key, r.value)
    out = []
    for logical in ("customer_activity", "customer_details", "customer_offers"):
        for partition in range(partitions[logical]):
            if logical == "customer_activity":
                key = b"1"
                doc = {"activity_id": f"closing-event-{partition}", "customer_id": 1, "offer_id": None,
                       "activity_type": "login", "channel": "branch", "propensity_to_churn": 0.5,
                       "ip_address": "192.0.2.1", "event_time": t}
                ts = t
            else:
                key, value = latest[logical]
                ts = t - VERSIONS_BEFORE_MS
                doc = dict(orjson.loads(value), updated_at=ts)
            out.append((logical, partition, key, orjson.dumps(doc), ts))
    return out


def close_event_time(settings, config: GeneratorConfig, schema_ids: dict[str, int] | None = None) -> int:
    """Write the closing records to Kafka; returns how many. ``schema_ids``: an Avro feed's."""
    from confluent_kafka import Producer

    from foundation import UserError

    encode = {}
    if config.format == "avro":
        import orjson

        from generator.registry import wire_header
        from generator.schema import load_project_schemas
        from generator.stream import Encoder

        if not schema_ids:
            raise UserError("closing an Avro feed needs the schema ids it registered: give --schema-registry.")
        for name, schema in load_project_schemas(config.schema_dir).items():
            writer = Encoder(schema, "avro").encode
            encode[name] = lambda value, w=writer, h=wire_header(schema_ids[name]): h + w(orjson.loads(value))
    p = Producer(settings.kafka_client_config())
    meta = p.list_topics(timeout=10)
    logical = ("customer_activity", "customer_details", "customer_offers")
    partitions = {name: len(meta.topics[settings.topic(name)].partitions) for name in logical}
    records = closing_records(config, partitions)
    refused = []

    def delivered(err, msg):
        if err is not None:
            refused.append(f"{msg.topic()}-{msg.partition()}: {err.str()}")

    for name, partition, key, value, ts in records:
        value = encode[name](value) if encode else value
        p.produce(settings.topic(name), key=key, value=value, partition=partition, timestamp=ts,
                  on_delivery=delivered)
    left = p.flush(10)
    if left:
        raise UserError(f"{left} closing records were not delivered to Kafka at {settings.kafka_bootstrap}.")
    if refused:   # (a broker refuses a record it judges too far ahead, for one)
        raise UserError(f"Kafka refused {len(refused)} closing records ({refused[0]}); the feed's event time "
                        "was not closed.")
    return len(records)

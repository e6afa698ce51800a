"""--format avro end to end: generator (Avro, real Schema Registry) -> Kafka -> the job -> Elasticsearch.

The expected documents come from an independent decoding of what Kafka holds (fastavro, writer
schemas fetched from the registry by id) fed to the same plain-Python model as the JSON run.
Records the job cannot decode must be dead letters with their reason and their bytes in base64:
JSON sent to an Avro topic (no wire-format header), truncated Avro, and Avro written with a schema
id the registry does not know.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import urllib.error
import urllib.request
from collections import Counter

import pytest

from tests.conftest import PIPELINE_START_MS, index_all
from tests.faultkit import records_in_kafka

pytestmark = pytest.mark.integration

UNKNOWN_ID = 987_654   # no registry in this stack hands out ids that high


def _writer_schema(registry: str, schema_id: int, cache: dict):
    """The writer schema by id, or None if the registry does not know it (HTTP 404)."""
    from fastavro import parse_schema

    if schema_id not in cache:
        try:
            with urllib.request.urlopen(f"{registry}/schemas/ids/{schema_id}", timeout=10) as r:
                raw = json.loads(json.loads(r.read())["schema"])
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
            cache[schema_id] = None
        else:
            # Keep timestamp-millis as the long it is on the wire (the JSON records carry epoch ms).
            strip = lambda node: ({k: strip(v) for k, v in node.items() if k != "logicalType"}  # noqa: E731
                                  if isinstance(node, dict) else [strip(v) for v in node] if isinstance(node, list)
                                  else node)
            cache[schema_id] = parse_schema(strip(raw))
    return cache[schema_id]


def decode_all(registry: str, records):
    """Kafka records -> (JSON records for the model, dead letters the decoding itself produces)."""
    from fastavro import schemaless_reader

    cache, as_json, undecodable = {}, [], []
    for topic, key, value, ts in records:
        reason = None
        if not value:   # empty: a dead letter with no payload to show; a tombstone (None) on a table is none
            if topic == "customer_activity" or value is not None:
                undecodable.append({"reason": "empty_payload", "payload": None, "topic": topic})
            continue
        if len(value) < 5 or value[0] != 0:
            reason = "not_avro_wire_format"
        else:
            schema = _writer_schema(registry, struct.unpack(">I", value[1:5])[0], cache)
            if schema is None:
                reason = "unknown_schema_id"
            else:
                body = io.BytesIO(value[5:])
                try:
                    doc = schemaless_reader(body, schema)
                    if body.read(1):
                        raise ValueError("bytes after the record")
                except Exception:  # noqa: BLE001 - any decoding failure is one reason
                    reason = "malformed_avro"
        if reason is None:
            as_json.append((topic, key, json.dumps(doc).encode(), ts))
        else:
            undecodable.append({"reason": reason, "payload": base64.b64encode(value).decode(), "topic": topic})
    return as_json, undecodable


def _canonical(payload):
    try:
        return json.dumps(json.loads(payload), sort_keys=True)
    except (TypeError, ValueError):
        return payload


@pytest.fixture(scope="module")
def avro_run(stack):
    from confluent_kafka import Producer
    from fastavro import schemaless_writer

    from churnstream.expected import compute
    from foundation.pii import hash_key
    from foundation.catalog import TOPICS
    from foundation.topics import delete_topics, ensure_topics
    from flink_jobs import pipeline
    from flink_jobs.options import JobOptions
    from generator import GeneratorConfig, produce
    from generator.registry import wire_header
    from generator.schema import load_project_schemas
    from kibana.templates import install_templates

    settings = stack.with_(topic_prefix=f"{stack.topic_prefix}avro-", index_prefix=f"{stack.index_prefix}avro-")
    ensure_topics(settings)
    install_templates(settings)
    config = GeneratorConfig(seed=11, customers=120, offers=10, activities=2_500, start_ms=PIPELINE_START_MS,
                             events_per_second=10.0, format="avro", customer_update_rate=0.02, late_rate=0.02,
                             duplicate_rate=0.01, malformed_rate=0.006, invalid_rate=0.006)
    ledger = produce(settings, config, rate=0, workers=1, progress=False,
                     schema_registry=settings.schema_registry_url)
    # A producer whose registry is not ours: valid Avro, but a schema id nobody here registered.
    schema = load_project_schemas(None)["customer_activity"].parsed
    topic, ts = settings.topic("customer_activity"), PIPELINE_START_MS + 60_000
    producer = Producer(settings.kafka_client_config())
    for i in range(5):
        body = io.BytesIO()
        schemaless_writer(body, schema, {
            "activity_id": f"foreign-{i}", "customer_id": 1 + i, "offer_id": None, "activity_type": "login",
            "channel": "web", "propensity_to_churn": 0.5, "ip_address": "10.0.0.1", "event_time": ts})
        producer.produce(topic, wire_header(UNKNOWN_ID) + body.getvalue(), str(1 + i).encode(), timestamp=ts)
    # A length prefix claiming a 2 GB activity id (Avro would allocate it before reading), and an
    # empty value.
    huge = (2**31 - 16) * 2      # zigzag varint of the string length
    varint = bytearray()
    while True:
        varint.append((huge & 0x7F) | (0x80 if huge > 0x7F else 0))
        huge >>= 7
        if not huge:
            break
    producer.produce(topic, wire_header(ledger["schema_ids"]["customer_activity"]) + bytes(varint) + b"abc",
                     b"1", timestamp=ts)
    producer.produce(topic, b"", b"2", timestamp=ts)
    # Customer and offer records that do not decode, mid-run, for keys the activities use: dead
    # letters, and the versions before them stay (the model never sees them).
    customers, offers = settings.topic("customer_details"), settings.topic("customer_offers")
    mid = PIPELINE_START_MS + 30_000
    producer.produce(customers, b'{"customer_id": 3, "first_name": "json on an avro topic"}', b"3", timestamp=mid)
    producer.produce(customers, wire_header(UNKNOWN_ID) + b"\x02", b"4", timestamp=mid)
    producer.produce(customers, b"", b"5", timestamp=mid)
    producer.produce(offers, wire_header(ledger["schema_ids"]["customer_offers"]) + b"\x02", b"1", timestamp=mid)
    assert producer.flush(30) == 0

    opts = JobOptions(bounded=True, format="avro")
    pipeline.run(settings, opts, wait=True)
    index_all(settings)
    as_json, undecodable = decode_all(settings.schema_registry_url, records_in_kafka(settings))
    expected = compute(as_json, opts, hash_key(settings))
    yield settings, ledger, expected, undecodable
    delete_topics(settings, [settings.topic(t.name) for t in TOPICS])


def test_every_index_matches_the_model(avro_run):
    from churnstream.verify import format_reports, verify

    settings, _, expected, _ = avro_run
    reports = [r for r in verify(settings, expected) if not r.index.endswith("dead-letters")]
    assert all(r.ok for r in reports), format_reports(reports)
    enriched = next(r for r in reports if r.index.endswith("enriched"))
    assert enriched.found == len(expected.enriched) > 2_000


def test_undecodable_records_are_dead_letters_with_reason_and_bytes(avro_run):
    from churnstream.verify import fetch_all
    from foundation.catalog import index_names

    settings, ledger, expected, undecodable = avro_run
    found = fetch_all(settings.es_client(), index_names(settings)["dead_letters"])
    want = Counter((d["reason"], _canonical(d["payload"])) for d in expected.dead_letters + undecodable)
    have = Counter((d["reason"], _canonical(d["payload"])) for _, d in found)
    assert have == want
    reasons = Counter(d["reason"] for d in expected.dead_letters + undecodable)
    kinds = ledger["kinds"]
    assert reasons["unknown_schema_id"] == 5 + 1
    assert reasons["not_avro_wire_format"] == kinds["invalid"] + 1 > 1     # JSON on an Avro topic
    assert reasons["malformed_avro"] == kinds["malformed"] + 1 + 1 > 2     # truncated records, the 2 GB claim
    assert reasons["empty_payload"] == 1 + 1
    assert reasons["duplicate_activity_id"] > 0
    # The customer and offer ones name their own topic (and the job kept running: the other tests).
    by_topic = Counter(d["source_topic"] for _, d in found)
    assert by_topic[settings.topic("customer_details")] == 3 and by_topic[settings.topic("customer_offers")] == 1, by_topic


def test_the_job_ran_with_avro_length_limits(avro_run):
    """Without them that 2 GB claim is an allocation, not a dead letter (on a small heap, a crash loop)."""
    from pyflink.java_gateway import get_gateway

    from flink_jobs.pipeline import AVRO_MAX_LENGTH

    system = get_gateway().jvm.System
    for kind in ("string", "bytes", "collectionItems"):
        assert system.getProperty(f"org.apache.flink.avro.shaded.org.apache.avro.limits.{kind}.maxLength") == \
            str(AVRO_MAX_LENGTH)

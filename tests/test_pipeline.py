"""End to end on the real services: seeded generator -> Kafka -> Flink job -> Elasticsearch,
checked against an independent plain-Python recomputation (churnstream.expected)."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from churnstream.verify import fetch_all, format_reports, verify
from foundation.catalog import index_names

pytestmark = pytest.mark.integration


def test_every_index_matches_the_independent_computation(pipeline_run):
    reports = verify(pipeline_run.settings, pipeline_run.expected)
    assert all(r.ok for r in reports), format_reports(reports)
    assert all(r.found > 0 for r in reports), format_reports(reports)


def test_counts_match_the_ledger(pipeline_run):
    kinds = pipeline_run.ledger["kinds"]
    exp = pipeline_run.expected
    assert len(exp.enriched) == pipeline_run.config.activities
    assert len(exp.dead_letters) == kinds.get("malformed", 0) + kinds.get("invalid", 0) + kinds["duplicate"] > 0
    # The seeded run exercises the invalid-UTF-8 and duplicate rules too (verify checks each reason).
    assert {d["reason"] for d in exp.dead_letters} >= {"malformed_json", "invalid_utf8", "duplicate_activity_id"}
    assert sum(d["reason"] == "duplicate_activity_id" for d in exp.dead_letters) == kinds["duplicate"] > 0
    assert pipeline_run.ledger["topics"]["customer_activity"]["failed"] == 0


def test_the_seeded_run_has_every_engagement_figure(pipeline_run):
    """Verify compares each field; this says the seeded data makes each of them non-trivial."""
    from collections import Counter

    from foundation import catalog

    docs = [d for _, d in fetch_all(pipeline_run.settings.es_client(), index_names(pipeline_run.settings)["customers"])]
    segments = Counter(d["engagement_segment"] for d in docs)
    statuses = Counter(d["engagement_status"] for d in docs)
    assert all(segments[s] >= 5 for s in catalog.ENGAGEMENT_SEGMENTS.labels), segments
    assert all(statuses[s] >= 5 for s in catalog.ENGAGEMENT_STATUSES), statuses
    assert sum(d["monthly_premium"] > 0 for d in docs) >= 20 and sum(d["monthly_premium"] == 0 for d in docs) >= 20
    assert all(d["cltv"] >= d["monthly_premium"] * 12 and 0 <= d["engagement_score"] <= 1 for d in docs)
    inactivity = fetch_all(pipeline_run.settings.es_client(), index_names(pipeline_run.settings)["inactivity"])
    assert len(inactivity) == len(pipeline_run.expected.inactivity) >= 100
    # Some customers came back after a silence: alerts that are not their customer's last.
    per_customer = Counter(d["customer_id"] for _, d in inactivity)
    assert sum(n > 1 for n in per_customer.values()) >= 10


def test_all_customers_and_offers_are_matched(pipeline_run):
    docs = [d for _, d in fetch_all(pipeline_run.settings.es_client(), index_names(pipeline_run.settings)["enriched"])]
    assert docs and all(d["customer_known"] for d in docs)
    assert all(d["offer_known"] for d in docs if d["offer_id"] is not None)


def test_dead_letter_topic_carries_reason_and_payload(pipeline_run):
    from confluent_kafka import Consumer

    s = pipeline_run.settings
    c = Consumer(dict(s.kafka_client_config(), **{"group.id": f"t{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
                                                   "enable.auto.commit": False}))
    c.subscribe([s.topic("churn_dead_letter")])
    got, deadline = [], time.monotonic() + 30
    while len(got) < len(pipeline_run.expected.dead_letters) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got.append(json.loads(m.value()))
    c.close()
    assert sorted((d["reason"], d["payload"]) for d in got) == \
        sorted((d["reason"], d["payload"]) for d in pipeline_run.expected.dead_letters)
    assert all(d["source_topic"] == s.topic("customer_activity") and d["source_offset"] >= 0 for d in got)


def test_no_raw_pii_reaches_elasticsearch(pipeline_run):
    from generator import expected_records

    emails, ips = set(), set()
    for r in expected_records(pipeline_run.config):
        try:
            doc = json.loads(r.value)
        except ValueError:
            continue
        if isinstance(doc, dict) and r.topic == "customer_details":
            emails.add(doc["email"])
        elif isinstance(doc, dict) and isinstance(doc.get("ip_address"), str):
            ips.add(doc["ip_address"])
    s = pipeline_run.settings
    es = s.es_client()
    for key, index in index_names(s).items():
        if key == "dead_letters":
            continue   # raw payloads of rejected records, kept for replay; not on PII dashboards
        text = json.dumps([d for _, d in fetch_all(es, index)])
        assert not (set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)) & emails), index
        assert not any(ip in text for ip in list(ips)[:500]), index


# --- verify must notice a single lost, duplicated or altered record ---------------------------------

def _one(es, index):
    es.indices.refresh(index=index)
    hit = es.search(index=index, size=1)["hits"]["hits"][0]
    return hit["_id"], hit["_source"]


def _report(pipeline_run, key):
    names = index_names(pipeline_run.settings)
    return next(r for r in verify(pipeline_run.settings, pipeline_run.expected) if r.index == names[key])


def test_verify_names_a_deleted_document(pipeline_run):
    es = pipeline_run.settings.es_client()
    index = index_names(pipeline_run.settings)["enriched"]
    doc_id, src = _one(es, index)
    es.delete(index=index, id=doc_id, refresh=True)
    try:
        assert _report(pipeline_run, "enriched").missing == [doc_id]
    finally:
        es.index(index=index, id=doc_id, document=src, refresh=True)
    assert _report(pipeline_run, "enriched").ok


def test_verify_names_a_duplicated_event(pipeline_run):
    es = pipeline_run.settings.es_client()
    index = index_names(pipeline_run.settings)["enriched"]
    doc_id, src = _one(es, index)
    es.index(index=index, id=doc_id + "-dup", document=src, refresh=True)
    try:
        assert _report(pipeline_run, "enriched").unexpected == [doc_id + "-dup"]
    finally:
        es.delete(index=index, id=doc_id + "-dup", refresh=True)


def test_verify_names_an_altered_field(pipeline_run):
    es = pipeline_run.settings.es_client()
    index = index_names(pipeline_run.settings)["customers"]
    doc_id, src = _one(es, index)
    es.update(index=index, id=doc_id, doc={"rolling_propensity": src["rolling_propensity"] + 0.001}, refresh=True)
    try:
        wrong = _report(pipeline_run, "customers").wrong
        assert [w[0] for w in wrong] == [doc_id] and "rolling_propensity" in wrong[0][1]
    finally:
        es.index(index=index, id=doc_id, document=src, refresh=True)


def test_verify_names_a_missing_window(pipeline_run):
    es = pipeline_run.settings.es_client()
    index = index_names(pipeline_run.settings)["segments"]
    doc_id, src = _one(es, index)
    es.delete(index=index, id=doc_id, refresh=True)
    try:
        assert _report(pipeline_run, "segments").missing == [doc_id]
    finally:
        es.index(index=index, id=doc_id, document=src, refresh=True)


def test_every_result_topic_holds_the_documents_keyed_by_their_id(pipeline_run):
    from faultkit import records_in_kafka
    from foundation.catalog import INDEX

    s = pipeline_run.settings
    es_ids = {doc_id for doc_id, _ in fetch_all(s.es_client(), index_names(s)["enriched"])}
    held = records_in_kafka(s, (INDEX["enriched"].topic,))
    assert {k.decode() for _, k, _, _ in held} == es_ids and len(held) == len(es_ids)
    one = json.loads(held[0][2])
    assert one["activity_id"] == held[0][1].decode() and "doc_id" not in one   # the key is not in the value


def test_rebuild_recreates_every_index_from_the_result_topics_alone(pipeline_run, tmp_path):
    """`churnstream index --rebuild`: no Flink run, the indices come back exact from Kafka."""
    import os
    import subprocess
    import sys

    s = pipeline_run.settings
    es = s.es_client()
    doc_id, _ = _one(es, index_names(s)["segments"])
    es.delete(index=index_names(s)["segments"], id=doc_id, refresh=True)   # damage, to be repaired
    env = {**os.environ, **s.to_env()}
    r = subprocess.run([sys.executable, "-m", "churnstream", "index", "--rebuild", "--until-caught-up",
                        "--group", f"{s.topic_prefix}rebuild"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rebuilding" in r.stderr and r.stdout.startswith("indexed ")
    reports = verify(s, pipeline_run.expected)
    assert all(r.ok for r in reports), format_reports(reports)

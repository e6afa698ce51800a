"""The indexer (indexer/): its bulk lines on literal records, and on the real Kafka and Elasticsearch:
a refused document, an indexer killed mid-run, two indexers sharing a group through a rebalance.

Every integration test writes versioned documents straight into a result topic: a document's
`rolling_propensity` is its version (the n-th record of that id), so "no document left at an older
version" is checkable per id.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import orjson
import pytest

from faultkit import indexer_process, messages_in_kafka
from indexer.kafka_to_es import POLL_SLICE_S, bulk_operation, poll_timeout


def test_a_record_becomes_an_index_line_and_its_value_untouched():
    value = b'{"alert_id":"a\\"1","x":1.5}'
    assert bulk_operation("churn-alerts", b'a"1', value, 0) == (
        b'{"index":{"_index":"churn-alerts","_id":"a\\"1","version":1,"version_type":"external"}}\n' + value + b"\n")


def test_a_tombstone_becomes_a_delete_with_the_same_version_rule():
    assert bulk_operation("churn-customers", b"42", None, 41) == (
        b'{"delete":{"_index":"churn-customers","_id":"42","version":42,"version_type":"external"}}\n')


def test_kafka_is_polled_in_slices_so_a_batch_leaves_its_wait_after_its_first_record():
    assert POLL_SLICE_S == 0.05
    assert poll_timeout(0.2, None) == 0.05          # no batch open: one slice
    assert poll_timeout(0.2, 0.0) == 0.05
    assert poll_timeout(0.2, 0.17) == pytest.approx(0.03)   # only what is left of the wait
    assert poll_timeout(0.2, 0.25) == 0.0           # overdue: take what is there and write
    assert poll_timeout(0.01, None) == 0.01         # a wait shorter than a slice
    assert poll_timeout(0.0, None) == 0.0           # --batch-wait-ms 0: never wait


def test_index_options_are_checked(capsys):
    from churnstream.cli import main

    assert main(["index", "--batch-mb", "0"]) == 2
    assert capsys.readouterr().err == "error: --batch-docs must be >= 1, --batch-mb > 0 and --batch-wait-ms >= 0.\n"


# --- on the real services -----------------------------------------------------------------------

@pytest.fixture
def topic_settings(stack, request):
    """The session stack with this test's own topic and index prefix, templates installed."""
    from foundation.catalog import TOPICS
    from foundation.topics import delete_topics, ensure_topics
    from kibana.templates import install_templates

    tag = request.node.name[5:20].replace("_", "-")
    s = stack.with_(topic_prefix=f"{stack.topic_prefix}{tag}-", index_prefix=f"{stack.index_prefix}{tag}-")
    ensure_topics(s)
    install_templates(s)
    yield s
    delete_topics(s, [s.topic(t.name) for t in TOPICS])


def alert(i: int, version: int) -> bytes:
    return orjson.dumps({"alert_id": f"a{i}", "customer_id": i, "alert_time": "2026-01-01T00:00:00.000",
                         "previous_propensity": 0.0, "rolling_propensity": float(version)})


def produce_versions(s, ids: int, versions: int, rate: float = 0.0, extra=()) -> dict[str, int]:
    """`versions` rounds over `ids` alerts into the alerts result topic: the newest version per id."""
    from confluent_kafka import Producer

    topic = s.topic("churn_alerts")
    p = Producer({**s.kafka_client_config(), "linger.ms": 5, "enable.idempotence": True})
    t0, n = time.monotonic(), 0
    for v in range(1, versions + 1):
        for i in range(ids):
            p.produce(topic, alert(i, v), f"a{i}".encode())
            n += 1
            if n % 5_000 == 0:
                p.flush()
                if rate:
                    time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
    for key, value in extra:
        p.produce(topic, value, key)
    assert p.flush(30) == 0
    return {f"a{i}": versions for i in range(ids)}


def alerts_in_es(s) -> dict[str, float]:
    from churnstream.verify import fetch_all
    from foundation.catalog import index_names

    return {doc_id: doc["rolling_propensity"] for doc_id, doc in fetch_all(s.es_client(), index_names(s)["alerts"])}


def wait_until_indexed(s, want: dict[str, int], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        have = alerts_in_es(s)
        if have == want or time.monotonic() > deadline:
            return have
        time.sleep(2)


def _has_docs(es, index: str) -> bool:
    from elasticsearch import ApiError

    try:
        return es.count(index=index)["count"] > 0
    except ApiError:   # not created yet, or its shard still starting
        return False


def index_dead_letters(s) -> list[dict]:
    from confluent_kafka import Consumer, TopicPartition

    from foundation.catalog import INDEX_DEAD_LETTERS

    topic = s.topic(INDEX_DEAD_LETTERS)
    c = Consumer({**s.kafka_client_config(), "group.id": "dlq-probe", "enable.auto.commit": False})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        out = []
        while len(out) < high:
            msg = c.poll(5)
            if msg is not None and not msg.error():
                out.append(orjson.loads(msg.value()))
        return out
    finally:
        c.close()


@pytest.mark.integration
def test_a_refused_document_is_an_index_dead_letter_and_the_rest_is_indexed(topic_settings):
    from indexer import Indexer, IndexerOptions

    s = topic_settings
    bad = [(b"bad-type", b'{"alert_id":"bad-type","customer_id":"not a number"}'),
           (b"bad-field", b'{"alert_id":"bad-field","unknown_field":1}'),
           (b"bad-json", b'{"alert_id":')]
    want = produce_versions(s, 500, 2, extra=bad)
    totals = Indexer(s, IndexerOptions(group_id=f"{s.topic_prefix}indexer", until_caught_up=True)).run()
    # caught up = searchable at once (no refresh of ours before this count)
    assert s.es_client().count(index=f"{s.index_prefix}alerts")["count"] == 500
    assert alerts_in_es(s) == want
    assert (totals.indexed, totals.dead_lettered) == (1_000, 3)
    letters = {d["id"]: d for d in index_dead_letters(s)}
    assert set(letters) == {"bad-type", "bad-field", "bad-json"}
    assert letters["bad-type"]["reason"] == "document_parsing_exception"
    assert letters["bad-field"]["reason"] == "strict_dynamic_mapping_exception"
    assert "unknown_field" in letters["bad-field"]["detail"]
    assert letters["bad-json"]["payload"] == '{"alert_id":'
    assert {d["index"] for d in letters.values()} == {f"{s.index_prefix}alerts"}
    assert {d["source_topic"] for d in letters.values()} == {s.topic("churn_alerts")}
    # Committed: a second run has nothing left to do and sends no dead letter twice.
    again = Indexer(s, IndexerOptions(group_id=f"{s.topic_prefix}indexer", until_caught_up=True)).run()
    assert again.done() == 0 and len(index_dead_letters(s)) == 3


@pytest.mark.integration
def test_indexer_killed_mid_run_and_restarted_leaves_every_document_once_at_its_newest(topic_settings, tmp_path):
    s = topic_settings
    want = produce_versions(s, 20_000, 12)          # 240k records
    log = tmp_path / "indexer.log"
    es, index = s.es_client(), f"{s.index_prefix}alerts"
    first = indexer_process(s, log)
    second = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None and not _has_docs(es, index):
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)        # mid-run: bulks in flight, offsets behind
        first.wait()
        partial = alerts_in_es(s)
        assert partial and partial != want, "the kill did not land mid-run"
        second = indexer_process(s, log, "--until-caught-up")
        assert second.wait(300) == 0, log.read_text()[-3000:]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    have = alerts_in_es(s)
    assert have == want, f"{len(set(want) - set(have))} missing, {sum(have[k] != want[k] for k in have)} older"


@pytest.mark.integration
def test_two_indexers_share_the_partitions_through_a_rebalance_without_an_older_version_winning(
        topic_settings, tmp_path):
    s = topic_settings
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a, b = indexer_process(s, logs[0]), indexer_process(s, logs[1])
    feed_done: list[dict] = []
    feed = threading.Thread(target=lambda: feed_done.append(produce_versions(s, 5_000, 40, rate=8_000)))
    b2 = None
    try:
        feed.start()
        time.sleep(8)
        os.killpg(b.pid, signal.SIGTERM)           # stopped mid-run: A takes its partitions over
        assert b.wait(60) == 0, logs[1].read_text()[-2000:]
        time.sleep(4)
        b2 = indexer_process(s, logs[1])           # back: the partitions are shared again
        feed.join(120)
        have = wait_until_indexed(s, feed_done[0], timeout=120)
    finally:
        for p in (a, b, b2):
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(60)
    assert messages_in_kafka(s, "churn_alerts") == 200_000
    older = Counter(int(feed_done[0][k] - v) for k, v in have.items() if v != feed_done[0][k])
    assert have == feed_done[0], f"{len(set(feed_done[0]) - set(have))} ids missing; versions behind: {older}"
    text = [log.read_text() for log in logs]
    assert "assigned" in text[0] and text[0].count("assigned") >= 3, text[0][-2000:]   # start, B gone, B back
    assert "stopped after" in text[1]                                               # SIGTERM: committed and left

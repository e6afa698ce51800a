"""Quiet activity partitions and late records, on the real broker and a live job with default flags.

One job, one live feed in phases (each record written to the partition the phase chooses; the job
only checks that the key is the customer id):

  A. one active customer, on partition 0 of 3: its results appear within the bound, and the job
     logs the two silent partitions going idle;
  B. partition 2 silent for 10x the partition idle timeout while 0 and 1 flow; meanwhile a
     partition is added to the topic (records on it are enriched) and a producer writes records a
     minute behind the watermark (each one is a 'late' dead letter, nothing else is late);
  C. partition 2 resumes with the others.

Then the feed's event time is closed and every index must equal the recomputation of what Kafka
holds, less the records the job found late, which must be exactly the deliberately late ones.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from faultkit import close_event_time, job, kill, records_in_kafka, wait_for_line
from test_faults import fault_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 20                  # activities per second
LATE_BEHIND_MS = 60_000    # the deliberately late records' event time, behind the wall clock


def _activity(aid: str, cid: int, t: int) -> bytes:
    from foundation import catalog

    types, channels = catalog.activity_types(), catalog.channels()
    n = int.from_bytes(hashlib.sha256(aid.encode()).digest()[:8], "big")
    # A propensity of many digits: an average of short decimals can land exactly on the alert
    # threshold, where the job's running sum and a fresh one differ in the last bit.
    return json.dumps({"activity_id": aid, "customer_id": cid, "offer_id": 1 + n % 5,
                       "activity_type": types[n % len(types)], "channel": channels[n % len(channels)],
                       "propensity_to_churn": (n % 1_000_003) / 1_000_003, "ip_address": "203.0.113.7",
                       "event_time": t}).encode()


class Feed:
    """Live activities at RATE, event time = the wall clock, each to the partition chosen for it."""

    def __init__(self, settings, customers: int):
        self.settings = settings
        self.topic = settings.topic("customer_activity")
        self.producer = None
        self.reconnect()
        self.customers = customers
        self.n = 0
        self.sent_at: dict[int, float] = {}     # partition -> monotonic time of its first record
        self.ids_by_partition: dict[int, list[str]] = {}

    def reconnect(self) -> None:
        """A new producer, which knows every partition the topic has now (an old one learns of new
        ones only at its metadata refresh, every 5 minutes)."""
        from confluent_kafka import Producer

        if self.producer is not None:
            assert self.producer.flush(30) == 0
        self.producer = Producer({**self.settings.kafka_client_config(), "linger.ms": 5, "enable.idempotence": True})
        self.producer.list_topics(self.topic, timeout=10)

    def send(self, aid: str, cid: int, partition: int, event_ms: int) -> None:
        self.producer.produce(self.topic, key=str(cid).encode(), value=_activity(aid, cid, event_ms),
                              partition=partition, timestamp=event_ms)
        self.producer.poll(0)
        self.sent_at.setdefault(partition, time.monotonic())
        self.ids_by_partition.setdefault(partition, []).append(aid)

    def run(self, seconds: float, partitions, customer=None, every=None) -> None:
        """RATE records a second for ``seconds``, customers spread over ``partitions`` (or one
        ``customer`` on the first); ``every``: (seconds, callable) called once after that long."""
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            if every and time.monotonic() >= end - seconds + every[0]:
                every[1]()
                every = None
            cid = customer or 1 + self.n % self.customers
            self.send(f"q-{self.n}", cid, partitions[self.n % len(partitions)], int(time.time() * 1000))
            self.n += 1
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))
        assert self.producer.flush(30) == 0


def _first_enriched_after(s, since: float, timeout: float) -> float | None:
    """Seconds from ``since`` until the enriched result topic holds a record (None: not within timeout)."""
    from faultkit import messages_in_kafka
    from foundation.catalog import INDEX

    while time.monotonic() < since + timeout:
        if messages_in_kafka(s, INDEX["enriched"].topic) > 0:
            return time.monotonic() - since
        time.sleep(0.5)
    return None


def test_quiet_partitions_delay_results_by_at_most_the_timeout_and_late_records_are_dead_letters(stack, tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewPartitions

    from churnstream.expected import compute
    from churnstream.verify import fetch_all, format_reports, verify_accounting_late
    from churnstream.verify import late_payloads as job_late_payloads
    from foundation.catalog import index_names
    from faultkit import indexing
    from flink_jobs.options import JobOptions
    from generator import GeneratorConfig, expected_records

    opts = JobOptions()
    timeout_s = opts.partition_idle_timeout_seconds
    s = fault_settings(stack, "quiet", tmp_path)
    config = GeneratorConfig(seed=28, customers=200, offers=5, activities=0, start_ms=int(time.time() * 1000))
    snapshot = Producer(s.kafka_client_config())
    for r in expected_records(config):          # the customers and offers, before the job starts
        snapshot.produce(s.topic(r.topic), key=r.key, value=r.value, timestamp=r.timestamp_ms)
    assert snapshot.flush(30) == 0

    log = tmp_path / "job.log"
    proc = job(s, log)
    late_payloads: list[str] = []
    try:
        wait_for_line(proc, log, "job: submitted")
        feed = Feed(s, config.customers)

        # A. One active customer: partitions 1 and 2 never receive a record. The first result is
        # watched for while the feed runs.
        started = time.monotonic()
        phase_a = threading.Thread(target=feed.run, args=(timeout_s + 15, [0]), kwargs={"customer": 7})
        phase_a.start()
        delay = _first_enriched_after(s, started, timeout=timeout_s + 60)
        phase_a.join()
        bound = timeout_s + opts.out_of_orderness_seconds + 15   # + the job's start-up and a checkpoint
        assert delay is not None and delay <= bound, (delay, bound)
        # The job's Flink log is in its run folder (faultkit.env_for), and the job says where.
        flink_log = max((Path(s.run_dir) / "logs").glob("flink-*-python-*.log"), key=lambda f: f.stat().st_mtime)
        assert str(flink_log.resolve()) in log.read_text(errors="replace")
        for p in (1, 2):
            assert f"[{feed.topic}-{p}] Marking split idle" in flink_log.read_text(errors="replace")

        # B. Partition 2 silent for 10x the timeout while 0 and 1 flow; a partition is added after 60 s,
        # and records a minute behind the watermark are written after 120 s.
        admin = AdminClient(s.kafka_client_config())

        def add_partition():
            admin.create_partitions([NewPartitions(feed.topic, 4)])[feed.topic].result(30)
            feed.reconnect()

        # The job discovers it within the discovery interval; records go to it from a minute later.
        feed.run(60, partitions=[0, 1], every=(1, add_partition))

        def write_late():
            for i in range(5):
                aid = f"late-{i}"
                payload = _activity(aid, 11 + i, int(time.time() * 1000) - LATE_BEHIND_MS)
                late_payloads.append(payload.decode())
                feed.producer.produce(feed.topic, key=str(11 + i).encode(), value=payload, partition=i % 2)
            feed.producer.flush(30)

        feed.run(10 * timeout_s - 60, partitions=[0, 1, 3], every=(45, write_late))

        # C. Partition 2 resumes.
        feed.run(30, partitions=[0, 1, 2, 3])
        held = records_in_kafka(s)
        assert close_event_time(s, config) == 4 + 3 + 1        # activity now has 4 partitions
        recomputed = {}

        def recompute(late):
            key = tuple(sorted(late.items(), key=repr))
            if key not in recomputed:
                recomputed[key] = compute(held, opts, b"fault-test-key", late=late)
            return recomputed[key]

        deadline = time.monotonic() + 240
        with indexing(s):
            while True:
                reports, late = verify_accounting_late(s, recompute)
                if (all(r.ok for r in reports) and late == len(late_payloads)) or time.monotonic() > deadline \
                        or proc.poll() is not None:
                    break
                time.sleep(5)
            found_late = job_late_payloads(s)
            enriched_ids = {doc_id for doc_id, _ in fetch_all(s.es_client(), index_names(s)["enriched"])}
    finally:
        kill(proc)
    table = format_reports(reports)
    print(f"first enriched result {delay:.1f} s after the first record (bound {bound} s)\n{table}")
    text = flink_log.read_text(errors="replace")
    assert f"[{feed.topic}-2] Marking split not idle" in text and f"[{feed.topic}-3] Marking split idle" in text
    # Exactly the deliberately late records are late, each once; nothing else (partition 2's return,
    # the new partition's first records) is.
    assert sorted(found_late.elements()) == sorted(late_payloads), found_late
    assert all(r.ok for r in reports), table
    # Records on the partition added while the job ran are enriched.
    assert feed.ids_by_partition[3] and set(feed.ids_by_partition[3]) <= enriched_ids
    assert set(feed.ids_by_partition[2]) <= enriched_ids

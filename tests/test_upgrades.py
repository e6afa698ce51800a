"""Upgrades through savepoints, on the real services: stop the job with a savepoint, change what
keeps its state (here the alert threshold), resume from the savepoint, and every index is exact.

The test sends the generator's records itself, in two halves with the stop in between, so that it
knows the watermark at the stop: alerts of events up to it were matched with the old threshold,
those after it with the new one (churnstream.expected, threshold_changes)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import zlib

import pytest

from faultkit import close_event_time, env_for, job, kill, messages_in_kafka, settle, wait_for_line
from test_faults import FEED, assert_exact, fault_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NEW_THRESHOLD = 0.6


def _send(s, records, partitions: int) -> dict[int, int]:
    """Produce `records` (activities to a partition chosen from their key) and return the newest
    event time of each activity partition, as the job's source computes it (sql/sources.sql)."""
    from confluent_kafka import Producer

    from foundation import catalog

    p = Producer({**s.kafka_client_config(), "linger.ms": 20, "enable.idempotence": True})
    newest: dict[int, int] = {}
    entities_unacked = False
    for r in records:
        if r.topic == catalog.ACTIVITY:
            if entities_unacked:     # customers and offers acknowledged before the activities that use them
                assert p.flush(30) == 0
                entities_unacked = False
            part = zlib.crc32(r.key or b"") % partitions
            p.produce(s.topic(r.topic), key=r.key, value=r.value, timestamp=r.timestamp_ms, partition=part)
            newest[part] = max(newest.get(part, _rowtime(r)), _rowtime(r))
        else:
            p.produce(s.topic(r.topic), key=r.key, value=r.value, timestamp=r.timestamp_ms)
            entities_unacked = True
    assert p.flush(30) == 0
    return newest


def _rowtime(r) -> int:
    """The activity source's event time: the payload's event_time when within 24 h of the Kafka
    timestamp, else the Kafka timestamp (a bad record must not push the watermark)."""
    try:
        t = json.loads(r.value)["event_time"]
    except (ValueError, KeyError, TypeError):
        return r.timestamp_ms
    if isinstance(t, int) and not isinstance(t, bool) and abs(t - r.timestamp_ms) <= 24 * 3_600_000:
        return t
    return r.timestamp_ms


def _wait_until_quiet(s, topic: str, quiet_s: float, timeout: float) -> int:
    """Until the result topic has not grown for `quiet_s`: the job has taken in what was sent."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        n = messages_in_kafka(s, topic)
        if n != last:
            last, since = n, time.monotonic()
        elif n > 0 and time.monotonic() - since >= quiet_s:
            return n
        time.sleep(0.5)
    raise AssertionError(f"{topic} never settled (last count {last})")


def test_stop_with_a_savepoint_change_the_alert_threshold_resume_every_index_exact(stack, tmp_path):
    from churnstream.expected import compute
    from flink_jobs.options import JobOptions
    from foundation import catalog
    from generator import GeneratorConfig, expected_records

    s = fault_settings(stack, "upgrade", tmp_path)
    # 100 events per second of event time: each half spans 30 s, so the watermark (5 s behind) passes
    # most of the first half before the stop.
    config = GeneratorConfig(seed=17, activities=6_000, **{**FEED, "events_per_second": 100.0})
    records = list(expected_records(config))
    activity_at = [i for i, r in enumerate(records) if r.topic == catalog.ACTIVITY]
    half = activity_at[len(activity_at) // 2]
    partitions = next(t.partitions for t in catalog.TOPICS if t.name == catalog.ACTIVITY)

    log1, log2 = tmp_path / "job1.log", tmp_path / "job2.log"
    first = job(s, log1)
    try:
        wait_for_line(first, log1, "job: submitted")
        newest = _send(s, records[:half], partitions)
        # Customers and offers go idle 5 s after their last record; then the joins follow the activities.
        _wait_until_quiet(s, catalog.INDEX["enriched"].topic, quiet_s=10, timeout=180)
        stop = subprocess.run([sys.executable, "-m", "churnstream", "job", "--stop"], env=env_for(s),
                              capture_output=True, text=True, timeout=360)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        first.wait(120)
    finally:
        kill(first)
    savepoint = re.search(r"^savepoint: (\S+)$", stop.stdout, re.M)
    assert savepoint, stop.stdout
    assert first.returncode == 0, log1.read_text(errors="replace")[-3000:]     # stopped, not failed
    # The watermark at the stop: the activity partitions' slowest, less the out-of-orderness.
    stopped_at = min(newest.values()) - JobOptions().out_of_orderness_seconds * 1000

    second = job(s, log2, "--resume-from", savepoint.group(1), "--alert-threshold", str(NEW_THRESHOLD))
    try:
        wait_for_line(second, log2, "job: submitted")
        _send(s, records[half:], partitions)
        close_event_time(s, config)
        rows = [(r.topic, r.key, r.value, r.timestamp_ms) for r in records]
        expected = compute(rows, JobOptions(), b"fault-test-key", ((stopped_at, NEW_THRESHOLD),))
        reports = settle(s, expected, second, timeout=240)
    finally:
        kill(second)
    assert "resuming from" in log2.read_text(errors="replace")
    # The change shows: one threshold throughout gives other alerts, on either side of the stop.
    before = compute(rows, JobOptions(), b"fault-test-key").alerts
    after = compute(rows, JobOptions(alert_threshold=NEW_THRESHOLD), b"fault-test-key").alerts
    assert expected.alerts not in (before, after)
    assert_exact(reports, f"stopped with {savepoint.group(1)}, resumed with --alert-threshold {NEW_THRESHOLD}")

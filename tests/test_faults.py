"""Faults on the real services, each with exact accounting: nothing lost, nothing duplicated."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from churnstream.verify import format_reports
from faultkit import close_event_time, job, kill, messages_in_kafka, settle, wait_for_line

pytestmark = [pytest.mark.integration, pytest.mark.slow]


FEED = dict(customers=1_000, offers=20, start_ms=1_767_225_600_000, events_per_second=1_000.0,
            customer_update_rate=0.01, late_rate=0.01, duplicate_rate=0.005, malformed_rate=0.002,
            invalid_rate=0.002)


def fault_settings(base, name, tmp_path):
    from foundation.topics import ensure_topics
    from kibana.templates import install_templates

    s = base.with_(topic_prefix=f"{base.topic_prefix}{name}-", index_prefix=f"{base.index_prefix}{name}-",
                   run_dir=str(tmp_path / "run"), pii_hash_key="fault-test-key")
    ensure_topics(s)
    install_templates(s)
    return s


def expected_for(config):
    from churnstream.expected import compute
    from flink_jobs.options import JobOptions
    from generator import expected_records

    return compute([(r.topic, r.key, r.value, r.timestamp_ms) for r in expected_records(config)],
                   JobOptions(), b"fault-test-key")


def assert_exact(reports, note=""):
    table = format_reports(list(reports.values()))
    print(note + "\n" + table)
    # Every index exactly: nothing lost, nothing doubled, no value different from the plain-Python answer.
    assert all(r.ok for r in reports.values()), table


# How long the killed job stays down while the generator keeps producing (issue 20 asks for 3
# minutes; the suite's time budget runs less by default, and nothing in the mechanism depends on the
# length: a resumed job's partitions start with fresh idle timers, and a backlog is never silent.
# CHURNSTREAM_TEST_JOB_DOWN_S=180 runs the long one).
JOB_DOWN_S = float(os.environ.get("CHURNSTREAM_TEST_JOB_DOWN_S", "40"))


@contextlib.contextmanager
def cpu_burners(n: int = os.cpu_count() or 2):
    """Keep every core busy (one spinning process each), as a machine busy with other work would."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_job_killed_hard_mid_stream_and_down_while_data_arrives_resumes_exactly_on_a_busy_machine(stack, tmp_path):
    """Default flags: killed (SIGKILL) after a checkpoint, kept down while the generator goes on, resumed
    from the checkpoint with every core busy with other work: every index exact."""
    from foundation.catalog import INDEX
    from generator import GeneratorConfig, produce

    s = fault_settings(stack, "kill", tmp_path)
    rate = 500
    # Event time advances with the send rate, as in a live feed; the feed outlasts the downtime.
    config = GeneratorConfig(seed=11, activities=int(rate * (JOB_DOWN_S + 90)), **FEED)

    # Live, as in production: the job runs first, the data arrives (customers and offers before
    # the activities that use them), and the job is killed mid-stream.
    log1, log2 = tmp_path / "job1.log", tmp_path / "job2.log"
    first = job(s, log1)
    wait_for_line(first, log1, "job: submitted")
    feed = threading.Thread(target=produce, args=(s, config), kwargs={"rate": rate, "progress": False})
    feed.start()
    with cpu_burners():
        try:
            killed_at = _kill_when_checkpointed(first, s, INDEX["enriched"].topic, time.monotonic() + 240)
        finally:
            kill(first)         # never leave a job running behind a failed test
        assert killed_at is not None, "the job finished (or never wrote) before it could be killed"
        time.sleep(JOB_DOWN_S)
        assert feed.is_alive(), "the generator finished while the job was down: nothing arrives after the resume"
        resumed = job(s, log2, "--resume")
        try:
            feed.join()
            close_event_time(s, config)
            reports = settle(s, expected_for(config), resumed, timeout=300)
        finally:
            kill(resumed)
    assert "resuming from" in log2.read_text(errors="replace")
    assert_exact(reports, f"killed with {killed_at} enriched results in Kafka, down {JOB_DOWN_S:.0f} s, cores busy")


def _kill_when_checkpointed(job, s, enriched_topic, deadline, at_least: int = 2_000):
    """SIGKILL the job's whole process group once it has written `at_least` results and completed a
    checkpoint: mid-stream, with windows, sessions and per-customer state open."""
    from flink_jobs import pipeline

    while time.monotonic() < deadline and job.poll() is None:
        count = messages_in_kafka(s, enriched_topic)
        if count >= at_least and pipeline.latest_checkpoint(s) is not None:
            os.killpg(job.pid, signal.SIGKILL)        # a crash, not a cancel
            job.wait()
            return count
        time.sleep(0.2)
    return None



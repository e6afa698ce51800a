"""Faults on the real services, each with exact accounting: nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from churnstream.verify import format_reports
from faultkit import close_event_time, job, kill, settle, wait_for_line

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


# Issue 20: after a kill and resume with the default --idle-timeout, window results can be dropped as
# late. Whether it shows depends on timing alone (clean clones: 2 of the last 4 runs failed with the
# same figures, 168 of 189 windows missing); the test keeps running and reports XPASS when it holds.
@pytest.mark.xfail(strict=False, reason="issue 20: windows dropped as late after a resume, timing-dependent")
def test_job_killed_hard_mid_stream_resumes_from_checkpoint_without_loss_or_duplicates(stack, tmp_path):
    from foundation.catalog import index_names
    from generator import GeneratorConfig, produce

    s = fault_settings(stack, "kill", tmp_path)
    # Event time advances with the send rate, as in a live feed.
    config = GeneratorConfig(seed=11, activities=10_000, **FEED)
    es = s.es_client()
    index = index_names(s)["enriched"]

    # Live, as in production: the job runs first, the data arrives (customers and offers before
    # the activities that use them), and the job is killed mid-stream.
    log1, log2 = tmp_path / "job1.log", tmp_path / "job2.log"
    first = job(s, log1)
    wait_for_line(first, log1, "job: submitted")
    feed = threading.Thread(target=produce, args=(s, config), kwargs={"rate": 1_000, "progress": False})
    feed.start()
    try:
        killed_at = _kill_when_checkpointed(first, s, es, index, time.monotonic() + 240)
    finally:
        kill(first)         # never leave a job running behind a failed test
    assert killed_at is not None, "the job finished (or never wrote) before it could be killed"
    assert killed_at < config.activities, "killed too late to prove anything"

    resumed = job(s, log2, "--resume")
    try:
        feed.join()
        close_event_time(s, config)
        reports = settle(s, expected_for(config), resumed)
    finally:
        kill(resumed)
    assert "resuming from" in log2.read_text(errors="replace")
    assert_exact(reports, f"killed with {killed_at} enriched documents written")


def _kill_when_checkpointed(job, s, es, index, deadline):
    """SIGKILL the job's whole process group once it has written and completed a checkpoint."""
    from flink_jobs import pipeline

    while time.monotonic() < deadline and job.poll() is None:
        try:
            es.indices.refresh(index=index)
            count = es.count(index=index)["count"]
        except Exception:  # noqa: BLE001 - index not created yet
            count = 0
        if count > 0 and pipeline.latest_checkpoint(s) is not None:
            os.killpg(job.pid, signal.SIGKILL)        # a crash, not a cancel
            job.wait()
            return count
        time.sleep(0.1)
    return None



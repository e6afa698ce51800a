"""Faults on the real services, each with exact accounting: nothing lost, nothing duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from churnstream.verify import format_reports, verify

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _job(settings, *flags):
    env = dict(os.environ, CHURNSTREAM_TOPIC_PREFIX=settings.topic_prefix, CHURNSTREAM_INDEX_PREFIX=settings.index_prefix,
               CHURNSTREAM_RUN_DIR=settings.run_dir, CHURNSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
               CHURNSTREAM_ES_URL=settings.es_url, CHURNSTREAM_CHECKPOINT_INTERVAL_MS="1000",
               CHURNSTREAM_PII_HASH_KEY="fault-test-key")
    return subprocess.Popen([sys.executable, "-m", "churnstream", "job", *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def test_job_killed_hard_mid_stream_resumes_from_checkpoint_without_loss_or_duplicates(stack, tmp_path):
    from churnstream.expected import compute
    from churnstream.topics import ensure_topics
    from flink_jobs import pipeline
    from flink_jobs.params import JobOptions, index_names
    from generator import GeneratorConfig, expected_records, produce
    from kibana.templates import install_templates

    s = stack.with_(topic_prefix=stack.topic_prefix + "kill-", index_prefix=stack.index_prefix + "kill-",
                    run_dir=str(tmp_path / "run"), pii_hash_key="fault-test-key")
    ensure_topics(s)
    install_templates(s)
    config = GeneratorConfig(seed=11, customers=2_000, offers=20, activities=60_000, start_ms=1_767_225_600_000,
                             events_per_second=50.0, customer_update_rate=0.01, late_rate=0.01,
                             malformed_rate=0.002, invalid_rate=0.002)
    produce(s, config, progress=False)
    es = s.es_client()
    index = index_names(s)["enriched"]

    job = _job(s)
    killed_at = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and job.poll() is None:
        try:
            es.indices.refresh(index=index)
            count = es.count(index=index)["count"]
        except Exception:  # noqa: BLE001 - index not created yet
            count = 0
        if count > 0 and pipeline.latest_checkpoint(s) is not None:
            os.killpg(job.pid, signal.SIGKILL)        # a crash, not a cancel
            job.wait()
            killed_at = count
            break
        time.sleep(0.1)
    assert killed_at is not None, "the job finished (or never wrote) before it could be killed"
    assert killed_at < config.activities, "killed too late to prove anything"

    resumed = _job(s, "--resume")
    try:
        # A live job only emits what the watermark has passed. One event a day later (on one
        # partition; the others go idle) moves it past everything we sent; its own results stay
        # pending, so what must be in Elasticsearch is exactly the results of `config`'s records.
        _close_event_time(s, config)
        expected = compute([(r.topic, r.key, r.value, r.timestamp_ms) for r in expected_records(config)],
                           JobOptions(), b"fault-test-key")
        deadline = time.monotonic() + 240
        while True:
            reports = verify(s, expected)
            if all(r.ok for r in reports) or time.monotonic() > deadline or resumed.poll() is not None:
                break
            time.sleep(5)
    finally:
        os.killpg(resumed.pid, signal.SIGKILL)
        out = resumed.communicate()[0].decode()
    assert "resuming from" in out, out[-2000:]
    print(f"killed with {killed_at} enriched documents written\n" + format_reports(reports))
    assert all(r.ok for r in reports), format_reports(reports)


def _close_event_time(s, config):
    import orjson
    from confluent_kafka import Producer

    t = config.start_ms + 86_400_000
    doc = {"activity_id": "closing-event", "customer_id": 1, "offer_id": None, "activity_type": "login",
           "channel": "branch", "propensity_to_churn": 0.5, "ip_address": "192.0.2.1", "event_time": t}
    p = Producer(s.kafka_client_config())
    p.produce(s.topic("customer_activity"), key=b"1", value=orjson.dumps(doc), timestamp=t)
    assert p.flush(10) == 0

"""Service outages under load, on a stack of their own (so stopping a service never disturbs other
tests): the broker down for 30 s, Elasticsearch down for 60 s (the job on a session cluster, the
indexer as its own process), the generator killed mid-run. Each ends with exact accounting: what
the generator says it delivered is what Kafka holds, and every Elasticsearch index equals the
plain-Python recomputation (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import os
from collections import Counter
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from foundation.localstack import process
from foundation.localstack import stack as local_stack
from foundation.localstack.elasticsearch import ElasticsearchServer
from foundation.localstack.kafka import KafkaServer
from foundation.settings import Settings
from faultkit import (ClusterJob, close_event_time, indexer_process, job, kill, messages_in_kafka, records_in_kafka,
                      settle, submit_detached, wait_for_docs, wait_for_line)
from test_faults import FEED, assert_exact, expected_for, fault_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory):
    kafka_port, controller_port, es_port, registry_port = _free_ports(4)
    base = Settings.from_env().with_(run_dir=str(tmp_path_factory.mktemp("outage-stack")), kafka_port=kafka_port,
                                     kafka_controller_port=controller_port, es_port=es_port,
                                     registry_port=registry_port, es_heap="512m", kafka_heap="512m")
    local = local_stack.up(base)
    try:
        yield local.with_(topic_prefix="outage-", index_prefix="outage-churn-")
    finally:
        local_stack.down(base)
        shutil.rmtree(ElasticsearchServer(base).base, ignore_errors=True)


def _stop(server, what: str) -> None:
    assert process.stop(server.pidfile), f"{what} was not running"
    assert not server.ready()


def _start(server) -> None:
    server.launch()
    process.wait_until(server.ready, 120, server.name, server.log_file, server.pid())


# The broker outage (issue 20 asks for 2 minutes; the suite runs 40 s by default, longer than the
# partition idle timeout: the partitions fall silent together, so none may go idle, and the reader
# keeps its watermark; CHURNSTREAM_TEST_BROKER_DOWN_S=120 runs the long one).
BROKER_DOWN_S = float(os.environ.get("CHURNSTREAM_TEST_BROKER_DOWN_S", "40"))


def _job_after_snapshot(s, log, *flags):
    """Start the live job once the customer/offer snapshot is in Kafka, as a deployment would (the
    tables loaded, then the stream): a job that starts on empty topics races its own idle-partition
    handling and may enrich the first activities before their customers (see the README)."""
    deadline = time.monotonic() + 60
    while messages_in_kafka(s, "customer_offers") == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc = job(s, log, *flags)
    wait_for_line(proc, log, "job: submitted")
    return proc


def _ledger_matches_kafka(s, ledger) -> None:
    for logical, t in ledger["topics"].items():
        assert t["failed"] == 0, ledger
        assert messages_in_kafka(s, logical) == t["delivered"], (logical, t)


def test_broker_stopped_under_load_generator_retries_and_job_resumes_with_default_flags(outage_stack, tmp_path):
    from churnstream.expected import compute
    from flink_jobs.options import JobOptions
    from generator import GeneratorConfig, expected_records, produce

    s = fault_settings(outage_stack, "broker", tmp_path)
    config = GeneratorConfig(seed=21, activities=30_000, **FEED)
    log = tmp_path / "job.log"
    ledgers = []
    feed = threading.Thread(target=lambda: ledgers.append(produce(s, config, rate=1_000, progress=False)))
    feed.start()
    # The job's default flags: the activity partitions fall silent together, so none goes idle and
    # the reader keeps its watermark through the outage (for up to --reader-idle-timeout), and
    # neither the first partition back nor the customer table's records can move event time past
    # the backlog (with Flink's own 5 s idle timeout on every source this outage dropped 2 of 237
    # window results, 35 were wrong and 5 of 9 alerts missing; an idle reader let the customer
    # table's watermark run ahead and the windows missed ~200 events each).
    # No record may be late: settle() compares without accounting for any.
    proc = _job_after_snapshot(s, log)
    broker = KafkaServer(outage_stack)    # the stack's own run folder holds its pid file
    try:
        time.sleep(8)                       # under load: ~8k records in, the job running
        _stop(broker, "Kafka")
        t_down = time.monotonic()
        time.sleep(BROKER_DOWN_S)
        _start(broker)
        print(f"broker down for {time.monotonic() - t_down:.1f} s")
        feed.join(timeout=240)
        assert ledgers, "the generator did not finish"
        ledger = ledgers[0]
        assert ledger["failed"] == 0, ledger           # retried through the outage, none given up
        held = records_in_kafka(s)
        # Nothing acknowledged is lost: every record the ledger says was delivered is in Kafka.
        sent = Counter((r.topic, r.key, r.value) for r in expected_records(config))
        in_kafka = Counter((t, k, v) for t, k, v, _ in held)
        assert not sent - in_kafka, f"lost: {list((sent - in_kafka).items())[:3]}"
        doubled = sum((in_kafka - sent).values())
        close_event_time(s, config)
        # The job's output is compared with a recomputation over what Kafka really holds (the
        # idempotent producer can still write a batch twice across a broker restart, see the note).
        reports = settle(s, compute(held, JobOptions(), b"fault-test-key"), proc, timeout=240)
    finally:
        kill(proc)
    print(f"records written twice by the producer across the restart: {doubled}")
    assert_exact(reports, f"broker stopped for {BROKER_DOWN_S:.0f} s")


def test_elasticsearch_stopped_60s_the_job_never_restarts_and_the_indexer_catches_up(outage_stack, cluster, tmp_path):
    """The job writes Kafka only: an Elasticsearch outage is the indexer's to wait out."""
    from flink_jobs.rest import FlinkRest
    from foundation.catalog import index_names
    from generator import GeneratorConfig, produce

    s = fault_settings(outage_stack, "es", tmp_path)
    config = GeneratorConfig(seed=22, activities=20_000, **FEED)
    log = tmp_path / "indexer.log"
    # As compose runs it: the job is up before the generator starts.
    rest = FlinkRest(cluster.address)
    jid, _, _ = submit_detached(s, cluster.address)
    indexer = indexer_process(s, log)
    feed = threading.Thread(target=produce, args=(s, config), kwargs={"rate": 1_000, "progress": False})
    feed.start()
    es_server = ElasticsearchServer(outage_stack)
    try:
        written = wait_for_docs(s.es_client(), index_names(s)["enriched"], 1, 180)
        assert written, "nothing was indexed before the outage"
        _stop(es_server, "Elasticsearch")
        time.sleep(60)
        _start(es_server)
        feed.join()
        close_event_time(s, config)
        reports = settle(s, expected_for(config), ClusterJob(rest, jid), timeout=300, index=False)
        restarts = rest.num_restarts(jid)
    finally:
        rest.cancel(jid)
        if indexer.poll() is None:
            os.killpg(indexer.pid, signal.SIGTERM)
            indexer.wait(60)
    assert_exact(reports, f"Elasticsearch stopped for 60 s after {written} documents")
    assert restarts == 0, f"the job restarted {restarts} times"
    text = log.read_text()
    assert "unavailable" in text and "nothing is committed" in text, text[-3000:]   # it waited, and said so
    assert "stopped after" in text                                                  # SIGTERM: committed and left


def _generate(s, ledger_file: Path, *flags) -> subprocess.Popen:
    env = dict(os.environ, CHURNSTREAM_KAFKA_BOOTSTRAP=s.kafka_bootstrap, CHURNSTREAM_TOPIC_PREFIX=s.topic_prefix)
    return subprocess.Popen([sys.executable, "-m", "churnstream", "generate", "--seed", "5", "--count", "2000000",
                             "--rate", "20000", "--ledger", str(ledger_file), *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_generator_interrupted_mid_run_reports_exactly_what_kafka_holds(outage_stack, tmp_path):
    from foundation.topics import ensure_topics

    s = outage_stack.with_(topic_prefix="genkill-")
    ensure_topics(s)
    ledger_file = tmp_path / "ledger.json"
    gen = _generate(s, ledger_file)
    time.sleep(6)
    assert gen.poll() is None, gen.stderr.read()
    gen.send_signal(signal.SIGTERM)
    _, err = gen.communicate(timeout=120)
    assert gen.returncode == 0, err
    ledger = json.loads(ledger_file.read_text())
    assert ledger["stopped_by"] != "done" and 0 < ledger["activities"] < 2_000_000, ledger
    _ledger_matches_kafka(s, ledger)
    # ...and the ledger recomputes those very records (what `verify` builds on).
    from generator import expected_records
    sent = {}
    for r in expected_records(ledger):
        sent[r.topic] = sent.get(r.topic, 0) + 1
    assert sent == {t: v["delivered"] for t, v in ledger["topics"].items()}


def test_generator_killed_hard_never_reported_more_than_kafka_holds(outage_stack, tmp_path):
    """SIGKILL leaves no ledger; the last progress line (acked=N) is a lower bound of what Kafka holds."""
    from foundation.topics import ensure_topics

    s = outage_stack.with_(topic_prefix="genkill9-")
    ensure_topics(s)
    gen = _generate(s, tmp_path / "ledger.json")
    time.sleep(8)                           # past the first 5-second progress line
    gen.send_signal(signal.SIGKILL)
    _, err = gen.communicate(timeout=30)
    reported = [int(x) for x in _acked_numbers(err)]
    assert reported, err[-2000:]
    in_kafka = sum(messages_in_kafka(s, t) for t in ("customer_activity", "customer_details", "customer_offers"))
    assert in_kafka >= reported[-1]
    assert not (tmp_path / "ledger.json").exists()


def _acked_numbers(text: str):
    import re

    return re.findall(r"acked=(\d+)", text.replace(",", ""))

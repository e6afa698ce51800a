"""Helpers for the fault tests: live jobs as subprocesses, watermark closing, exact accounting."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time

import yaml

from generator.closing import close_event_time  # noqa: F401 - the tests import it from here

from foundation import PROJECT_ROOT

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def compose_flink() -> tuple[dict[str, str], str]:
    """The TaskManager's FLINK_PROPERTIES (as key -> value) and JVM_ARGS from docker-compose.yml."""
    env = COMPOSE["services"]["taskmanager"]["environment"]
    props = dict(line.split(": ", 1) for line in env["FLINK_PROPERTIES"].strip().splitlines())
    return props, env["JVM_ARGS"]


def env_for(settings, **extra: str) -> dict[str, str]:
    """This process's environment with every one of `settings` in it: what a `churnstream`
    subprocess (job, index, job --stop) needs to work on the same topics, indices and run folder."""
    env = {**os.environ, **settings.to_env(), **extra}
    # A child's Flink log goes to its own run folder: this process's FLINK_LOG_DIR, if an earlier
    # test's table environment set it, names another test's folder.
    env.pop("FLINK_LOG_DIR", None)
    return env


class ClusterJob:
    """What settle() needs of a job: poll() is None while it runs (here: on the cluster)."""

    def __init__(self, rest, jid: str):
        self.rest, self.jid = rest, jid

    def poll(self):
        return None if self.rest.job(self.jid)["state"] in ("RUNNING", "CREATED", "RESTARTING") else 1


def submit_detached(settings, address: str, *flags: str):
    """`churnstream job --jobmanager ADDRESS --detach [flags]` for `settings`, as the compose job
    services run it: returns (job id, the finished client process, its environment)."""
    env = env_for(settings, CHURNSTREAM_CHECKPOINT_INTERVAL_MS="2000")
    env.pop("CHURNSTREAM_ES_URL", None)   # the job needs no Elasticsearch
    client = subprocess.run([sys.executable, "-m", "churnstream", "job", "--jobmanager", address, "--detach", *flags],
                            env=env, capture_output=True, text=True, timeout=300)
    assert client.returncode == 0, client.stdout + client.stderr
    # The job id from our own line (the client JVM may print a log4j status line on stdout first).
    running = re.search(r"^job ([0-9a-f]{32}) is running on ", client.stdout, re.M)
    assert running, client.stdout
    return running.group(1), client, env


def job(settings, log_file, *flags):
    """`churnstream job` (live) for `settings`, as its own process group, logging to a file."""
    env = env_for(settings, CHURNSTREAM_CHECKPOINT_INTERVAL_MS="1000")
    # Output to a file, never a pipe nobody reads: a full pipe would stall the job.
    with open(log_file, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "churnstream", "job", *flags], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_line(proc, log_file, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if text in log_file.read_text(errors="replace"):
            return
        time.sleep(0.5)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    raise AssertionError(f"the job never logged {text!r}:\n{log_file.read_text(errors='replace')[-2000:]}")


def wait_for_docs(es, index: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        try:
            es.indices.refresh(index=index, ignore_unavailable=True)
            count = es.count(index=index)["count"]
        except Exception:  # noqa: BLE001 - index not created yet / node restarting
            count = 0
        if count >= at_least:
            return count
        time.sleep(0.2)
    return count


def settle(settings, expected, proc, timeout: float = 180, index: bool = True):
    """verify() until every index matches (or the timeout / the job dies); returns the reports by index.

    ``index``: run an indexer meanwhile (in this process); False when the test runs its own."""
    from churnstream.verify import verify

    deadline = time.monotonic() + timeout
    with indexing(settings, enabled=index):
        while True:
            reports = {r.index: r for r in verify(settings, expected)}
            if all(r.ok for r in reports.values()) or time.monotonic() > deadline or proc.poll() is not None:
                return reports
            time.sleep(5)


@contextlib.contextmanager
def indexing(settings, enabled: bool = True):
    """An indexer over `settings`' result topics in a thread of this process, for the duration."""
    if not enabled:
        yield None
        return
    from indexer import Indexer, IndexerOptions

    indexer = Indexer(settings, IndexerOptions(group_id=f"{settings.topic_prefix}indexer"))
    thread = threading.Thread(target=indexer.run, name="indexer", daemon=True)
    thread.start()
    try:
        yield indexer
    finally:
        indexer.stop()
        thread.join(60)


def indexer_process(settings, log_file, *flags):
    """`churnstream index` for `settings`, as its own process group, logging to a file."""
    env = env_for(settings)
    with open(log_file, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "churnstream", "index", "--group",
                                 f"{settings.topic_prefix}indexer", *flags], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def messages_in_kafka(settings, logical: str) -> int:
    """Records in a topic (sum over partitions of high - low watermark): nothing is compacted or deleted
    in a fresh test topic within a test, so this is what reached the broker."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka_client_config(), "group.id": "count-probe", "enable.auto.commit": False})
    try:
        topic = settings.topic(logical)
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += hi - lo
        return total
    finally:
        c.close()


def records_in_kafka(settings, logical_topics=("customer_details", "customer_offers", "customer_activity")):
    """Every record the broker holds, as (logical topic, key, value, timestamp ms), partition by
    partition in offset order: the input an independent recomputation needs when Kafka itself may
    hold more than the producer meant to write."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka_client_config(), "group.id": "dump-probe", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    out = []
    try:
        for logical in logical_topics:
            topic = settings.topic(logical)
            for p in sorted(c.list_topics(topic, timeout=10).topics[topic].partitions):
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if hi <= lo:
                    continue
                c.assign([TopicPartition(topic, p, lo)])
                got = 0
                while got < hi - lo:
                    for m in c.consume(10_000, timeout=5):
                        if m.error():
                            raise RuntimeError(m.error().str())
                        out.append((logical, m.key(), m.value(), m.timestamp()[1]))
                        got += 1
    finally:
        c.close()
    return out

"""The cluster topology under load: 3 Kafka brokers, a Flink session cluster of 2 TaskManagers,
2 Elasticsearch data nodes (and a master-only tiebreaker), 2 indexers in one group
(foundation/localstack/cluster.py), all on this machine from the same binaries as the local stack.

One live feed, one job, in phases; each ends with the next one's start:

  1. the job at parallelism 2; a broker killed (-9) under load and started again 15 s later;
  2. rescaled 2 -> 4 through a savepoint;
  3. at 4 (spread 2 + 2), a TaskManager killed: the job restarts from its checkpoint on the other
     TaskManager's slots, without waiting for a replacement (which is started afterwards);
  4. the Elasticsearch data node that is the elected master killed: the indexers go on against
     the other node (documents keep arriving while it is down);
  5. an indexer killed: the other takes over all of its partitions;
  6. rescaled 4 -> 2 through a savepoint.

Each node lost is started again right after (the test goes on meanwhile) and must be back before
the end. Then: every record the generator's ledger says was delivered is in Kafka, and every index equals
the independent recomputation of what Kafka holds (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from foundation.localstack import process
from foundation.localstack.cluster import TASKMANAGERS, ClusterPorts, ClusterTopology
from foundation.settings import Settings
from faultkit import (ClusterJob, close_event_time, compose_flink, env_for, indexer_process, records_in_kafka,
                      settle, submit_detached, wait_for_docs)
from test_faults import FEED, assert_exact, fault_settings
from test_outages import _free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.scaleout]

RATE = 250            # records/s: the feed lasts through every phase
ACTIVITIES = 35_000


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    props, jvm_args = compose_flink()
    memory = {k: v for k, v in props.items() if k.endswith("memory.process.size")}
    base = Settings.from_env().with_(run_dir=str(tmp_path_factory.mktemp("scaleout")))
    t = ClusterTopology(base, ClusterPorts.from_list(_free_ports(15)), flink_properties=memory,
                        flink_jvm_args=jvm_args)
    try:
        yield t.up()
    finally:
        t.down()
        for node in t.es_nodes:
            shutil.rmtree(node.base, ignore_errors=True)


T0 = time.monotonic()


def _say(text: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {text}", flush=True)


def _kill(pid: int | None, what: str) -> None:
    """kill -9 the node's whole process group (a wrapper script and its JVM alike)."""
    assert pid is not None, f"{what} is not running"
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _say(f"killed {what} (pid {pid})")


def _ready(node) -> None:
    process.wait_until(node.ready, 180, node.name, node.log_file, node.pid())


def _running_at(rest, jid: str, parallelism: int, timeout: float = 180) -> dict:
    """The job's detail once every task runs, checked to run at ``parallelism``."""
    detail = rest.wait_running(jid, timeout=timeout)
    found = {v["name"][:40]: v["parallelism"] for v in detail["vertices"]}
    assert set(found.values()) == {parallelism}, found
    return detail


def _rescale(s, address: str, parallelism: int, log_file) -> str:
    """Stop the job with a savepoint and resume it from there at ``parallelism``; the new job id."""
    env = env_for(s)
    stop = subprocess.run([sys.executable, "-m", "churnstream", "job", "--stop"], env=env, capture_output=True,
                          text=True, timeout=300)
    log_file.write_text(stop.stdout + stop.stderr)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    savepoint = re.search(r"^savepoint: (\S+)", stop.stdout, re.M).group(1)
    jid, _, _ = submit_detached(s.with_(parallelism=parallelism), address, "--resume-from", savepoint)
    _say(f"rescaled to {parallelism} from {savepoint}: job {jid}")
    return jid


def _result_partitions(s) -> int:
    """The partitions of every result topic the indexers share."""
    from confluent_kafka.admin import AdminClient

    from foundation.catalog import result_topics

    topics = AdminClient(s.kafka_client_config()).list_topics(timeout=10).topics
    return sum(len(topics[t].partitions) for t in result_topics(s).values())


def _elected_master(es) -> str:
    return es.cat.master(format="json")[0]["node"]


def test_exact_on_the_cluster_topology_through_rescaling_and_the_loss_of_each_node(topology, tmp_path):
    from churnstream.expected import compute
    from flink_jobs.options import JobOptions
    from flink_jobs.rest import FlinkRest
    from foundation.catalog import index_names
    from generator import GeneratorConfig, expected_records, produce

    s = fault_settings(topology.settings(Settings.from_env()), "scale", tmp_path)
    s = s.with_(checkpoint_interval_ms=2000)
    address = topology.flink.address
    rest = FlinkRest(address)
    es = s.es_client()
    enriched = index_names(s)["enriched"]
    config = GeneratorConfig(seed=29, activities=ACTIVITIES, **FEED)
    ledgers: list[dict] = []
    feed = threading.Thread(target=lambda: ledgers.append(produce(s, config, rate=RATE, progress=False)),
                            daemon=True)
    logs = [tmp_path / f"indexer-{i}.log" for i in (1, 2)]
    indexers = [indexer_process(s, f) for f in logs]
    jid, _, _ = submit_detached(s.with_(parallelism=2), address)
    feed.start()
    _say("cluster up, job submitted at parallelism 2, feed started")
    try:
        # 1. At parallelism 2, a broker lost under load.
        _running_at(rest, jid, 2)
        assert wait_for_docs(es, enriched, 1, 180), "nothing was indexed"
        broker = topology.brokers[0]
        _kill(broker.pid(), broker.name)
        time.sleep(15)
        broker.launch()          # back while the test goes on; every node lost is waited for at the end

        # 2. 2 -> 4 through a savepoint.
        jid = _rescale(s, address, 4, tmp_path / "stop-1.log")
        detail = _running_at(rest, jid, 4)
        spread = Counter(t["taskmanager-id"] for v in detail["vertices"]
                         for t in rest._call(f"/jobs/{jid}/vertices/{v['id']}")["subtasks"])
        _say(f"subtasks per TaskManager: {dict(spread)}")
        assert len(spread) == TASKMANAGERS and len(set(spread.values())) == 1, spread   # 2 + 2 slots

        # 3. A TaskManager lost: the job restarts on the other's slots, no replacement needed.
        time.sleep(10)                                  # a checkpoint or more at 4
        lost = topology.flink.taskmanagers[0]
        _kill(topology.flink.pid(lost), f"Flink {lost}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if rest.num_restarts(jid) >= 1 and rest.job(jid)["state"] == "RUNNING":
                try:
                    _running_at(rest, jid, 4, timeout=5)
                    break
                except (RuntimeError, OSError, AssertionError):
                    pass
            time.sleep(1)
        else:
            raise AssertionError(f"the job did not run again without {lost}: {rest.last_failure(jid)}")
        assert rest._call("/overview")["taskmanagers"] == TASKMANAGERS - 1
        _say(f"the job runs again on the remaining TaskManager after {rest.num_restarts(jid)} restart(s)")
        topology.flink.start(lost)

        # 4. The Elasticsearch data node that is the elected master lost: the indexers go on.
        master = _elected_master(es)
        node = next((n for n in topology.data_nodes() if n.node.name == master), topology.data_nodes()[0])
        before = wait_for_docs(es, enriched, 1, 10)
        _kill(node.pid(), node.name)
        during = wait_for_docs(es, enriched, before + 1_000, 120)
        assert during >= before + 1_000, f"indexing stopped with {node.name} down ({before} -> {during})"
        _say(f"{node.name} (master {master}) down: {before} -> {during} enriched documents")
        node.launch()

        # 5. An indexer lost: the other takes over its partitions.
        os.killpg(indexers[0].pid, signal.SIGKILL)
        indexers[0].wait()
        partitions = _result_partitions(s)
        deadline = time.monotonic() + 60
        while f"assigned {partitions} partitions" not in logs[1].read_text() and time.monotonic() < deadline:
            time.sleep(1)
        assert f"assigned {partitions} partitions" in logs[1].read_text(), logs[1].read_text()[-2000:]
        _say(f"the other indexer took over all {partitions} partitions")

        # 6. 4 -> 2 through a savepoint.
        jid = _rescale(s, address, 2, tmp_path / "stop-2.log")
        _running_at(rest, jid, 2)

        _ready(broker)
        _ready(node)
        process.wait_until(topology.flink.ready, 120, lost, topology.flink.base / "log" / f"{lost}.out")
        _say("the broker, the TaskManager and the Elasticsearch node lost are back")
        feed.join(timeout=600)
        assert ledgers, "the generator did not finish"
        ledger = ledgers[0]
        assert ledger["failed"] == 0, ledger
        held = records_in_kafka(s)
        sent = Counter((r.topic, r.key, r.value) for r in expected_records(config))
        in_kafka = Counter((t, k, v) for t, k, v, _ in held)
        assert not sent - in_kafka, f"lost: {list((sent - in_kafka).items())[:3]}"
        doubled = sum((in_kafka - sent).values())
        _say("feed done, closing event time")
        close_event_time(s, config)
        reports = settle(s, compute(held, JobOptions(), b"fault-test-key"), ClusterJob(rest, jid), timeout=300,
                         index=False)
    finally:
        try:
            rest.cancel(jid)
        except OSError:
            pass
        for proc in indexers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
    _say(f"settled; records the producer wrote twice across the broker's loss: {doubled}")
    assert_exact(reports, "the cluster topology: rescaled 2 -> 4 -> 2, a broker, a TaskManager, an "
                          "Elasticsearch node and an indexer lost")
    print(json.dumps({"ledger": ledger["topics"]}, indent=1))

"""The compose stack's Flink path, run here as real processes.

A standalone session cluster (a JobManager and a TaskManager, two processes of the Flink that PyFlink
ships) gets the Flink properties and JVM_ARGS of docker-compose.yml; `churnstream job --jobmanager
... --detach` submits the pipeline to it as the compose `job` service does, and exits; the generator
keeps producing; every index must then equal the plain-Python recomputation. The compose `job`
healthcheck runs against that cluster too. What cannot run here (the images, Docker itself) is
checked in test_compose.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faultkit import COMPOSE, ClusterJob, close_event_time, compose_flink, messages_in_kafka, settle, submit_detached
from flink_jobs.rest import ENDED, FlinkRest
from test_faults import FEED, assert_exact, expected_for, fault_settings

def test_a_job_for_a_session_cluster_runs_its_python_functions_in_the_taskmanager():
    """No loopback worker pool for a remote target: the job would call back into its client."""
    from foundation.settings import Settings
    from flink_jobs.pipeline import table_env

    s = Settings.from_env()
    remote = table_env(s.with_(flink_jobmanager="127.0.0.1:1")).get_config()
    assert remote.get("python.loopback-server.address", None) is None
    assert remote.get("execution.target", None) == "remote" and remote.get("rest.port", None) == "1"
    assert "_python_worker_execution_mode" not in os.environ
    # The local mini-cluster keeps loopback mode (Python workers in this process: fastest locally).
    assert table_env(s).get_config().get("python.loopback-server.address", None)


pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_session_cluster_job_outlives_its_client_and_every_index_is_exact(stack, cluster, tmp_path):
    """In compose order: the job is submitted and healthy before the generator starts, and its client
    is gone by then; every record is produced after the client exited."""
    from generator import GeneratorConfig, produce

    s = fault_settings(stack, "session", tmp_path)
    config = GeneratorConfig(seed=31, activities=10_000, **FEED)
    rest = FlinkRest(cluster.address)
    jid = None
    try:
        jid, client, env = submit_detached(s, cluster.address)
        assert f"job {jid} is running on {cluster.address}" in client.stdout
        assert "all tasks up" in client.stderr
        assert messages_in_kafka(s, "customer_activity") == 0

        _the_compose_healthcheck_turns_healthy(cluster, tmp_path, env)

        # Submitting again (e.g. a recreated compose job service) follows the running job instead.
        again = subprocess.run([sys.executable, "-m", "churnstream", "job", "--jobmanager", cluster.address,
                                "--detach"], env=env, capture_output=True, text=True, timeout=120)
        assert (again.returncode, again.stdout) == (0, (
            f"job {jid} is already running on {cluster.address}; nothing submitted (this command's flags apply only "
            "to a new job: cancel that one first to change it)\n")), again.stderr
        assert [j["jid"] for j in rest.jobs() if j["state"] not in ENDED] == [jid]

        produce(s, config, rate=1_000, progress=False)
        close_event_time(s, config)
        reports = settle(s, expected_for(config), ClusterJob(rest, jid), timeout=240)
        restarts = rest.num_restarts(jid)
        workers = _python_workers_of(cluster.pid("taskmanager"))
    finally:
        if jid:
            rest.cancel(jid)
    assert_exact(reports, "every record produced after the submitting client exited")
    assert restarts == 0, f"the job restarted {restarts} times on the cluster"
    # The job's only function is Java (shipped in pipeline.jars with the connectors): no row of it
    # goes through a Python worker, on the cluster as locally.
    assert workers == [], f"Python workers under the TaskManager: {workers}"
    # The Avro limits reached the TaskManager's JVM, the way compose passes them (JVM_ARGS).
    cmdline = Path(f"/proc/{cluster.pid('taskmanager')}/cmdline").read_bytes().split(b"\0")
    assert all(opt.encode() in cmdline for opt in compose_flink()[1].split())


def test_the_avro_job_runs_beside_the_json_job_on_one_cluster(stack, cluster, tmp_path):
    """The compose avro profile's path: a second job (--format avro, on the avro topics) submitted to
    the same session cluster under its own name, its Java function shipped with it (USING JAR), both
    jobs running without restarts, the Avro one healthy by its own probe and enriching an Avro feed."""
    from flink_jobs.rest import job_name
    from generator import GeneratorConfig, produce

    rest = FlinkRest(cluster.address)
    s_json = fault_settings(stack, "duo-json", tmp_path / "json")
    s_avro = fault_settings(stack, "duo-avro", tmp_path / "avro")
    jids = []
    try:
        jids.append(submit_detached(s_json, cluster.address)[0])
        jid_avro, _, env_avro = submit_detached(s_avro, cluster.address, "--format", "avro")
        jids.append(jid_avro)
        names = {j["jid"]: j["name"] for j in rest.jobs() if j["state"] == "RUNNING"}
        assert names == {jids[0]: job_name(s_json.topic_prefix), jid_avro: job_name(s_avro.topic_prefix)}
        _the_compose_healthcheck_turns_healthy(cluster, tmp_path, env_avro)
        # 30 s of event time sent in 3 s: the watermark passes most of it, so results must appear.
        config = GeneratorConfig(seed=41, activities=3_000, **{**FEED, "events_per_second": 100.0, "format": "avro"})
        produce(s_avro, config, rate=1_000, progress=False, schema_registry=s_avro.schema_registry_url)
        deadline = time.monotonic() + 120
        while messages_in_kafka(s_avro, "churn_enriched") < 1_000 and time.monotonic() < deadline:
            time.sleep(1)
        enriched = messages_in_kafka(s_avro, "churn_enriched")
        restarts = [rest.num_restarts(j) for j in jids]
        states = [rest.job(j)["state"] for j in jids]
    finally:
        for j in jids:
            rest.cancel(j)
    assert enriched >= 1_000, f"the Avro job enriched {enriched} activities"
    assert restarts == [0, 0] and states == ["RUNNING", "RUNNING"], (restarts, states)


def _python_workers_of(pid: int) -> list[str]:
    """Command lines of the PyFlink workers among the descendants of ``pid``."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "pyflink.fn_execution.beam.beam_boot" in cmd:
            found.append(cmd)
    return found


def _the_compose_healthcheck_turns_healthy(cluster, tmp_path, job_env: dict) -> None:
    """The compose job service's healthcheck command itself, against this cluster, in the job's
    environment (its topic prefix names the job it looks for, as in the job-avro container)."""
    test = COMPOSE["services"]["job"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    cmd = [sys.executable if a == "python" else a.replace("jobmanager:8081", cluster.address) for a in test[1:]]
    env = dict(job_env, TMPDIR=str(tmp_path))
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert first.returncode == 1 and "healthy if still so at the next probe" in first.stdout, first.stdout
    time.sleep(3)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.startswith("healthy: job ") and "0 restarts" in second.stdout

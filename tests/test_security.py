"""Kafka SASL (PLAIN, SCRAM-SHA-256/512) and TLS, and Elasticsearch authentication, from
configuration, against a real broker and a real Elasticsearch node.

The module starts its own Apache Kafka (the project's KafkaServer with a KafkaSecurity) and its own
Elasticsearch with security on (ElasticsearchServer with an EsSecurity) on free ports with their own
data folders, so the shared stack is never touched, and stops them at the end. Users and passwords
are random per run; the TLS certificate is made with openssl per run. Every client is configured
the way users configure it: CHURNSTREAM_* variables read by Settings.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from foundation import UserError
from foundation.health import require_elasticsearch, require_kafka
from foundation.localstack import process
from foundation.localstack.elasticsearch import ElasticsearchServer, EsSecurity
from foundation.localstack.kafka import KafkaSecurity, KafkaServer, make_tls
from foundation.settings import Settings
from foundation.catalog import Topic
from foundation.topics import ensure_topics

pytestmark = pytest.mark.integration


# The ports of local stacks: the defaults and the same ports shifted by tens of thousands, as parallel
# clones set them (CHURNSTREAM_ES_PORT=19200, 29200, ...). A test server never takes one of them, so a
# stack started later on such a port does not find it taken.
STACK_PORTS = {9092, 9093, 9200, 8085, 8081, 5601}


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        while len(socks) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] % 10_000 in STACK_PORTS:
                s.close()            # let the OS pick another
                continue
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Broker:
    ports: dict[str, int]     # listener name -> port
    user: str
    password: str
    ca: Path
    run_dir: Path

    def env(self, protocol: str, mechanism: str = "", password: str | None = None, ca: bool = True,
            user: str | None = None) -> dict[str, str]:
        """The CHURNSTREAM_* variables a user would set for this listener."""
        env = {"CHURNSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.ports[protocol]}",
               "CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": protocol}
        if mechanism:
            env.update({"CHURNSTREAM_KAFKA_SASL_MECHANISM": mechanism,
                        "CHURNSTREAM_KAFKA_SASL_USERNAME": self.user if user is None else user,
                        "CHURNSTREAM_KAFKA_SASL_PASSWORD": self.password if password is None else password})
        if ca and "SSL" in protocol:
            env["CHURNSTREAM_KAFKA_SSL_CA_LOCATION"] = str(self.ca)
        return env

    def settings(self, *args, **kwargs) -> Settings:
        return Settings.from_env(self.env(*args, **kwargs)).with_(topic_prefix=f"sec{uuid.uuid4().hex[:6]}-")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    base = tmp_path_factory.mktemp("sasl-broker")
    plain, controller, sasl, sasl_ssl, ssl = _free_ports(5)
    user, password = f"u{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    tls = make_tls(base / "tls")
    security = KafkaSecurity(users={user: password}, sasl_port=sasl, sasl_ssl_port=sasl_ssl, ssl_port=ssl, tls=tls)
    settings = Settings.from_env({}).with_(run_dir=str(base / "run"), kafka_port=plain, kafka_controller_port=controller,
                                           kafka_heap="256m")
    server = KafkaServer(settings, security)
    pid = server.launch()
    try:
        process.wait_until(server.ready, 90, "the SASL test broker", server.log_file, pid)
        yield Broker({"PLAINTEXT": plain, "SASL_PLAINTEXT": sasl, "SASL_SSL": sasl_ssl, "SSL": ssl},
                     user, password, tls.ca, base / "run")
    finally:
        process.stop(server.pidfile, timeout=30)
        assert not process.alive(pid)
        assert not any(process.port_open(p) for p in (plain, sasl, sasl_ssl, ssl))


@dataclass
class SecuredEs:
    url: str
    user: str
    password: str

    def env(self, password: str | None = None, user: str | None = None) -> dict[str, str]:
        return {"CHURNSTREAM_ES_URL": self.url, "CHURNSTREAM_ES_USERNAME": self.user if user is None else user,
                "CHURNSTREAM_ES_PASSWORD": self.password if password is None else password}


@pytest.fixture(scope="module")
def secured_es(tmp_path_factory):
    (port,) = _free_ports(1)
    security = EsSecurity(password=secrets.token_urlsafe(24))
    settings = Settings.from_env({}).with_(run_dir=str(tmp_path_factory.mktemp("secured-es")), es_port=port,
                                           es_heap="512m")
    server = ElasticsearchServer(settings, security)
    pid = server.launch()
    try:
        process.wait_until(server.ready, 180, "the secured test Elasticsearch", server.log_file, pid)
        yield SecuredEs(f"http://127.0.0.1:{port}", security.user, security.password)
    finally:
        process.stop(server.pidfile, timeout=60)
        assert not process.port_open(port)
        shutil.rmtree(server.base, ignore_errors=True)


def _round_trip(s: Settings, n: int = 50) -> dict[bytes, bytes]:
    """Create a topic, produce with the generator's producer settings, consume it back."""
    from confluent_kafka import Consumer, Producer
    from generator.sinks import producer_config

    ensure_topics(s, [Topic("probe", 2)])
    topic = s.topic("probe")
    p = Producer(producer_config(s))
    sent = {f"k{i}".encode(): secrets.token_bytes(8) for i in range(n)}
    for k, v in sent.items():
        p.produce(topic, key=k, value=v)
    assert p.flush(15) == 0
    c = Consumer(dict(s.kafka_client_config(), **{"group.id": f"g{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got, deadline = {}, time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got[m.key()] = m.value()
    c.close()
    return got if got == sent else {"sent": len(sent), "got": len(got)}


@pytest.mark.parametrize("protocol,mechanism", [
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
    ("SASL_SSL", "SCRAM-SHA-256"),
    ("SSL", ""),
])
def test_producer_and_consumer_authenticate_from_settings(broker, protocol, mechanism):
    s = broker.settings(protocol, mechanism)
    require_kafka(s)
    sent_back = _round_trip(s)
    assert len(sent_back) == 50 and "sent" not in sent_back


def _cli(*args, env, timeout=60):
    # Where the CLI's Flink gateway finds its log4j configuration is its own business: a loopback UDF
    # run earlier in this process merges its worker's environment into ours (Beam's worker pool),
    # and a clean-clone run once gave a job with an empty Flink log (log4j: "No configuration found").
    inherited = {k: v for k, v in os.environ.items() if k not in ("FLINK_CONF_DIR", "LOG4J_PROPERTIES")}
    return subprocess.run([sys.executable, "-m", "churnstream", *args], capture_output=True, text=True,
                          env=dict(inherited, **env), timeout=timeout)


def _diagnosis(s: Settings, within: float = 3.0) -> str:
    """What require_kafka says, which must come within `within` seconds."""
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        require_kafka(s)
    assert time.monotonic() - t0 < within
    return str(e.value)


def test_wrong_password_is_one_sentence_within_a_second(broker):
    wrong = secrets.token_urlsafe(16)
    s = broker.settings("SASL_PLAINTEXT", "SCRAM-SHA-256", password=wrong)
    assert _diagnosis(s) == (
        f"Kafka at 127.0.0.1:{broker.ports['SASL_PLAINTEXT']} rejected the SCRAM-SHA-256 login of user "
        f"'{broker.user}'; check CHURNSTREAM_KAFKA_SASL_USERNAME, CHURNSTREAM_KAFKA_SASL_PASSWORD and "
        "CHURNSTREAM_KAFKA_SASL_MECHANISM.")


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_cli_with_wrong_password_exits_2_with_one_line(broker, mechanism):
    wrong = secrets.token_urlsafe(16)
    t0 = time.monotonic()
    r = _cli("topics", env=broker.env("SASL_PLAINTEXT", mechanism, password=wrong))
    assert time.monotonic() - t0 < 10
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: Kafka at 127.0.0.1:{broker.ports['SASL_PLAINTEXT']} rejected the {mechanism} login of user "
        f"'{broker.user}'; check CHURNSTREAM_KAFKA_SASL_USERNAME, CHURNSTREAM_KAFKA_SASL_PASSWORD and "
        "CHURNSTREAM_KAFKA_SASL_MECHANISM.\n"))


def test_unknown_user_is_rejected_the_same_way(broker):
    stranger = f"x{secrets.token_hex(4)}"
    s = broker.settings("SASL_PLAINTEXT", "SCRAM-SHA-512", user=stranger, password=secrets.token_urlsafe(16))
    with pytest.raises(UserError, match=f"rejected the SCRAM-SHA-512 login of user '{stranger}'"):
        require_kafka(s)


def test_untrusted_broker_certificate_is_one_sentence(broker):
    s = broker.settings("SASL_SSL", "PLAIN", ca=False)     # the system CAs do not know our test CA
    assert _diagnosis(s) == (
        f"Kafka at 127.0.0.1:{broker.ports['SASL_SSL']} presented a TLS certificate this client does not trust; "
        "set CHURNSTREAM_KAFKA_SSL_CA_LOCATION to the PEM file of the CA that signed it.")


def test_plaintext_client_on_a_sasl_listener_names_the_protocol(broker):
    s = Settings.from_env({"CHURNSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker.ports['SASL_PLAINTEXT']}"})
    with pytest.raises(UserError) as e:
        require_kafka(s)
    assert str(e.value) == (
        f"Kafka at 127.0.0.1:{broker.ports['SASL_PLAINTEXT']} closed the connection during the handshake; check "
        "that CHURNSTREAM_KAFKA_SECURITY_PROTOCOL (PLAINTEXT) is what the broker's listener on that port expects.")


def test_elasticsearch_refuses_requests_without_credentials(secured_es):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{secured_es.url}/_cluster/health", timeout=10)
    assert e.value.code == 401
    require_elasticsearch(Settings.from_env(secured_es.env()))      # and the right login gets in


@pytest.mark.parametrize("who", ["wrong password", "unknown user"])
def test_elasticsearch_rejected_login_is_one_sentence(secured_es, tmp_path, who):
    user = secured_es.user if who == "wrong password" else f"x{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    t0 = time.monotonic()
    r = _cli("kibana", "report", "--out", str(tmp_path / "r.html"), env=secured_es.env(password, user))
    assert time.monotonic() - t0 < 15
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: Elasticsearch at {secured_es.url} rejected the login of user '{user}' (HTTP 401); "
        "check CHURNSTREAM_ES_USERNAME and CHURNSTREAM_ES_PASSWORD.\n"))
    assert password not in r.stderr


def test_cli_generate_and_flink_job_over_sasl_ssl_scram_512_into_secured_es_leak_no_password(
        broker, secured_es, tmp_path):
    """The project's own commands, configured only by the environment: topics, generator, Flink job,
    indexer.

    The job reads the three topics and writes the result topics with the Flink SQL Kafka
    connectors (Java client, JAAS from Settings, PEM truststore); the indexer reads those over the
    same listener and writes every index into Elasticsearch with security on (username/password).
    No password appears in any output, in anything the commands wrote to their run folder, or in
    the Flink log (FLINK_LOG_DIR).
    Event time is now (the default): records dated in the past would fall to the broker's 7-day
    retention before the job reads them.
    """
    run_dir, flink_logs = tmp_path / "run", tmp_path / "flink-log"
    pii_key = secrets.token_hex(16)
    prefix = f"sec{uuid.uuid4().hex[:6]}-"
    env = dict(broker.env("SASL_SSL", "SCRAM-SHA-512"), **secured_es.env(), CHURNSTREAM_RUN_DIR=str(run_dir),
               FLINK_LOG_DIR=str(flink_logs), CHURNSTREAM_TOPIC_PREFIX=prefix, CHURNSTREAM_INDEX_PREFIX=prefix,
               CHURNSTREAM_PII_HASH_KEY=pii_key)
    ledger_file = tmp_path / "ledger.json"

    topics = _cli("-v", "topics", env=env)
    assert topics.returncode == 0, topics.stderr
    assert topics.stdout.startswith("created: ") and "customer_activity" in topics.stdout
    gen = _cli("-v", "generate", "--count", "120", "--customers", "15", "--offers", "3", "--seed", "5",
               "--quiet", "--ledger", str(ledger_file), env=env)
    assert gen.returncode == 0, gen.stderr
    ledger = json.loads(ledger_file.read_text())
    assert ledger["failed"] == 0 and ledger["topics"]["customer_activity"]["delivered"] == 120
    job = _cli("-v", "job", "--bounded", env=env, timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    index = _cli("-v", "index", "--until-caught-up", env=env, timeout=300)
    assert index.returncode == 0, index.stderr[-3000:]
    es = Settings.from_env(env).es_client()
    es.indices.refresh(index=f"{prefix}*")
    assert es.count(index=f"{prefix}enriched")["count"] == 120

    for r in (topics, gen, job, index):
        for secret in (broker.password, secured_es.password, pii_key):
            assert secret not in r.stdout and secret not in r.stderr
    written = [p for folder in (run_dir, flink_logs) for p in folder.rglob("*") if p.is_file()] + [ledger_file]
    flink_log = "".join(p.read_text(errors="replace") for p in flink_logs.glob("*.log"))
    # The Kafka clients in the job logged their configuration there, with the JAAS line hidden.
    assert f"127.0.0.1:{broker.ports['SASL_SSL']}" in flink_log and "sasl.jaas.config = [hidden]" in flink_log
    # Beam logs the whole environment of the Python UDF workers in the Flink log: the CLI must have
    # removed the secret variables before the Flink JVM started.
    leaks = [(str(p), name) for p in written
             for name, secret in (("Kafka password", broker.password), ("Elasticsearch password", secured_es.password),
                                  ("PII key", pii_key))
             if secret.encode() in p.read_bytes()]
    assert leaks == []

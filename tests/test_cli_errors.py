"""Bad flags, bad configuration and unreachable services: one sentence on stderr, exit 2, within seconds.

Every case runs the real entry point (`python -m churnstream ...`) in a subprocess and compares the
whole of stderr, so a traceback or a library's log line would fail the test as surely as a wrong
message. Nothing here needs the local stack: "unreachable" means a free port nobody listens on.
Rejected logins are tested against a real broker and a real Elasticsearch with security on, in
test_security.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


def cli(*args, env=None, timeout=30):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "churnstream", *args], capture_output=True, text=True,
                       env=dict(clean, **(env or {})), timeout=timeout)
    r.elapsed = time.monotonic() - t0
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HELP = "run '{}' for the valid options."


@pytest.mark.parametrize("args,message", [
    ((), "error: a command is required, one of: fetch, stack, schema-registry, topics, verify, settings, generate, job, "
         "index, demo, kibana; "
         + HELP.format("churnstream --help")),
    (("--nope",), "error: unrecognized arguments: --nope; " + HELP.format("churnstream --help")),
    (("topics", "--nope"), "error: unrecognized arguments: --nope; " + HELP.format("churnstream topics --help")),
    (("generate", "--count", "5", "--colour", "red"),
     "error: unrecognized arguments: --colour red; " + HELP.format("churnstream generate --help")),
    (("kibana", "report", "--bogus"),
     "error: unrecognized arguments: --bogus; " + HELP.format("churnstream kibana report --help")),
    (("job", "--window-size", "abc"),
     "error: argument --window-size: invalid int value: 'abc'; " + HELP.format("churnstream job --help")),
    (("job", "--sink", "elasticsearch"),
     "error: argument --sink: invalid choice: 'elasticsearch' (choose from 'kafka', 'print'); "
     + HELP.format("churnstream job --help")),
    (("index", "--batch-docs", "0"), "error: --batch-docs must be >= 1, --batch-mb > 0 and --batch-wait-ms >= 0."),
    (("verify",), "error: the following arguments are required: --ledger; " + HELP.format("churnstream verify --help")),
    (("generate", "--rate", "-5"), "error: --rate must be >= 0 (0 means as fast as possible)."),
    (("generate", "--count", "5", "--close"),
     "error: --close needs --start: the closing records' time, and 'churnstream verify', come from the feed's "
     "start; give one, e.g. --start 2026-01-01T00:00:00Z."),
    (("job", "--window-size", "60", "--window-slide", "7"),
     "error: --window-size must be a multiple of --window-slide (e.g. 60 and 10)."),
    (("job", "--idle-timeout", "0"),
     "error: --idle-timeout must be a positive number of seconds (e.g. 5)."),
    (("job", "--partition-idle-timeout", "-1"),
     "error: --partition-idle-timeout must be a positive number of seconds (e.g. 30)."),
    (("job", "--reader-idle-timeout", "10"),
     "error: --reader-idle-timeout must be at least --partition-idle-timeout (e.g. 300 and 30)."),
    (("job", "--customer-interval", "-1"),
     "error: --customer-interval must be a positive number of seconds (e.g. 1)."),
    (("job", "--dedup-horizon", "0"),
     "error: --dedup-horizon must be a positive number of minutes (e.g. 10)."),
    (("job", "--inactivity-gap", "0"),
     "error: --inactivity-gap and --engagement-refresh must be positive numbers of seconds (e.g. 604800 and 86400)."),
    (("job", "--engagement-window", "29"),
     "error: --engagement-window must be at least 30 seconds (it is counted in 30 buckets; e.g. 2592000 for 30 days)."),
    (("job", "--stop", "--resume"),
     "error: --stop stops the running job; it takes no --resume, --resume-from or --detach."),
    (("job", "--detach"),
     "error: --detach needs a session cluster (--jobmanager HOST:PORT): a local mini-cluster job runs inside this "
     "process and ends with it."),
])
def test_bad_flags(args, message):
    r = cli(*args)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", message + "\n")
    assert r.elapsed < 10


def test_missing_ledger_file(tmp_path):
    missing = tmp_path / "nope.json"
    r = cli("verify", "--ledger", str(missing))
    assert (r.returncode, r.stderr) == (2, f"error: cannot read the ledger {missing} ([Errno 2] No such file or "
                                           f"directory: '{missing}'); pass the file 'churnstream generate --ledger' wrote.\n")


BAD_CONFIG = [
    ({"CHURNSTREAM_ES_URL": "not-a-url"},
     "CHURNSTREAM_ES_URL='not-a-url' is not a valid http:// or https:// URL (or several, comma-separated); set it to one, "
     "e.g. CHURNSTREAM_ES_URL=http://127.0.0.1:9200."),
    ({"CHURNSTREAM_ES_URL": "http://127.0.0.1:notaport"},
     "CHURNSTREAM_ES_URL='http://127.0.0.1:notaport' is not a valid http:// or https:// URL (or several, comma-separated); "
     "set it to one, "
     "e.g. CHURNSTREAM_ES_URL=http://127.0.0.1:9200."),
    ({"CHURNSTREAM_ES_URL": "ftp://127.0.0.1:9200"},
     "CHURNSTREAM_ES_URL='ftp://127.0.0.1:9200' is not a valid http:// or https:// URL (or several, comma-separated); "
     "set it to one, "
     "e.g. CHURNSTREAM_ES_URL=http://127.0.0.1:9200."),
    ({"CHURNSTREAM_KIBANA_URL": "localhost:5601"},
     "CHURNSTREAM_KIBANA_URL='localhost:5601' is not a valid http:// or https:// URL; set it to one, "
     "e.g. CHURNSTREAM_KIBANA_URL=http://127.0.0.1:5601."),
    ({"CHURNSTREAM_KAFKA_BOOTSTRAP": "host:notaport"},
     "CHURNSTREAM_KAFKA_BOOTSTRAP='host:notaport' is not a comma-separated list of host:port; set it to one, "
     "e.g. CHURNSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:9092."),
    ({"CHURNSTREAM_KAFKA_BOOTSTRAP": "a:9092,b"},
     "CHURNSTREAM_KAFKA_BOOTSTRAP='a:9092,b' is not a comma-separated list of host:port; set it to one, "
     "e.g. CHURNSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:9092."),
    ({"CHURNSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:99999"},
     "CHURNSTREAM_KAFKA_BOOTSTRAP='127.0.0.1:99999' is not a comma-separated list of host:port; set it to one, "
     "e.g. CHURNSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:9092."),
    ({"CHURNSTREAM_FLINK_JOBMANAGER": "http://jm:8081"},
     "CHURNSTREAM_FLINK_JOBMANAGER='http://jm:8081' is not a host:port; set it to one, "
     "e.g. CHURNSTREAM_FLINK_JOBMANAGER=127.0.0.1:8081."),
    ({"CHURNSTREAM_ES_PORT": "nine"},
     "CHURNSTREAM_ES_PORT='nine' is not a whole number; set it to one, e.g. CHURNSTREAM_ES_PORT=9200."),
    ({"CHURNSTREAM_KAFKA_PORT": "70000"},
     "CHURNSTREAM_KAFKA_PORT=70000 is not a TCP port (1 to 65535); set it to one, e.g. CHURNSTREAM_KAFKA_PORT=9092."),
    ({"CHURNSTREAM_ES_HEAP": "lots"},
     "CHURNSTREAM_ES_HEAP='lots' is not a JVM heap size; set it to one, e.g. CHURNSTREAM_ES_HEAP=1g."),
    ({"CHURNSTREAM_PARALLELISM": "0"},
     "CHURNSTREAM_PARALLELISM=0 is not a parallelism of at least 1; set it to one, e.g. CHURNSTREAM_PARALLELISM=1."),
    ({"CHURNSTREAM_STATE_BACKEND": "memory"},
     "CHURNSTREAM_STATE_BACKEND='memory' is not a state backend; set it to hashmap or rocksdb."),
    ({"CHURNSTREAM_TOPIC_REPLICATION": "0"},
     "CHURNSTREAM_TOPIC_REPLICATION=0 is not a replication factor of at least 1; set it to one, "
     "e.g. CHURNSTREAM_TOPIC_REPLICATION=1."),
    ({"CHURNSTREAM_ES_URL": "http://127.0.0.1:9200,nope"},
     "CHURNSTREAM_ES_URL='http://127.0.0.1:9200,nope' is not a valid http:// or https:// URL (or several, "
     "comma-separated); set it to one, e.g. CHURNSTREAM_ES_URL=http://127.0.0.1:9200."),
    ({"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": "TLS"},
     "CHURNSTREAM_KAFKA_SECURITY_PROTOCOL='TLS' is not a Kafka security protocol; "
     "set it to PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."),
    ({"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
     "CHURNSTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs CHURNSTREAM_KAFKA_SASL_MECHANISM; "
     "set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."),
    ({"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "CHURNSTREAM_KAFKA_SASL_MECHANISM": "GSSAPI"},
     "CHURNSTREAM_KAFKA_SASL_MECHANISM='GSSAPI' is not supported; set it to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."),
    ({"CHURNSTREAM_KAFKA_SASL_MECHANISM": "PLAIN"},
     "CHURNSTREAM_KAFKA_SASL_MECHANISM is set but CHURNSTREAM_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use SASL; "
     "set the protocol to SASL_SSL (or SASL_PLAINTEXT)."),
    ({"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CHURNSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"},
     "CHURNSTREAM_KAFKA_SASL_USERNAME is empty but SCRAM-SHA-256 needs a user; set it, "
     "and CHURNSTREAM_KAFKA_SASL_PASSWORD."),
    ({"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CHURNSTREAM_KAFKA_SASL_MECHANISM": "PLAIN",
      "CHURNSTREAM_KAFKA_SASL_USERNAME": "svc"},
     "CHURNSTREAM_KAFKA_SASL_PASSWORD is empty but PLAIN needs the password of user 'svc'; set it."),
    ({"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL", "CHURNSTREAM_KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"},
     "CHURNSTREAM_KAFKA_SSL_CA_LOCATION='/nonexistent/ca.pem' is not a file; point it at the PEM certificate of "
     "the CA that signed your brokers' certificates."),
    ({"CHURNSTREAM_ES_USERNAME": "elastic"},
     "CHURNSTREAM_ES_USERNAME is set but CHURNSTREAM_ES_PASSWORD is empty; set the password too, "
     "or unset both for a cluster without security."),
]


@pytest.mark.parametrize("env,message", BAD_CONFIG, ids=[next(iter(e)) + "=" + next(iter(e.values()))
                                                         for e, _ in BAD_CONFIG])
def test_bad_configuration_stops_every_command_before_it_connects(env, message):
    r = cli("topics", env=env)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", f"error: {message}\n")
    assert r.elapsed < 10


def test_bad_configuration_is_reported_by_settings_too():
    r = cli("settings", env={"CHURNSTREAM_ES_URL": "not-a-url"})
    assert r.returncode == 2 and r.stderr.startswith("error: CHURNSTREAM_ES_URL='not-a-url' is not a valid")


def test_kafka_with_nothing_listening():
    port = free_port()
    r = cli("topics", env={"CHURNSTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: Kafka is not reachable at 127.0.0.1:{port}; start the local stack with 'churnstream stack up' "
        "or point CHURNSTREAM_KAFKA_BOOTSTRAP at your broker.\n"))
    assert r.elapsed < 12


def test_elasticsearch_with_nothing_listening(tmp_path):
    port = free_port()
    r = cli("kibana", "report", "--out", str(tmp_path / "r.html"), env={"CHURNSTREAM_ES_URL": f"http://127.0.0.1:{port}"})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: Elasticsearch is not usable at http://127.0.0.1:{port} (ConnectionError); start the local stack "
        "with 'churnstream stack up' or point CHURNSTREAM_ES_URL at your cluster.\n"))
    assert r.elapsed < 10


def test_remote_flink_cluster_with_nothing_listening():
    port = free_port()
    r = cli("job", "--bounded", "--jobmanager", f"127.0.0.1:{port}")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: the Flink JobManager at 127.0.0.1:{port} does not answer on its REST API ([Errno 111] Connection "
        "refused); start the cluster or fix --jobmanager / CHURNSTREAM_FLINK_JOBMANAGER.\n"))
    assert r.elapsed < 10


def test_avro_job_without_a_schema_registry():
    r = cli("job", "--bounded", "--format", "avro")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        "error: --format avro needs a Schema Registry; set CHURNSTREAM_SCHEMA_REGISTRY_URL (the local stack's is "
        "http://127.0.0.1:8085/apis/ccompat/v7).\n"))


def test_avro_job_with_nothing_listening_at_the_registry():
    port = free_port()
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    r = cli("job", "--bounded", "--format", "avro", env={"CHURNSTREAM_SCHEMA_REGISTRY_URL": url})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: the Schema Registry at {url} does not answer ([Errno 111] Connection refused); start the local "
        "stack with 'churnstream stack up' or point CHURNSTREAM_SCHEMA_REGISTRY_URL at your registry.\n"))
    assert r.elapsed < 10


def test_stop_with_no_job_started_from_the_run_folder(tmp_path):
    r = cli("job", "--stop", env={"CHURNSTREAM_RUN_DIR": str(tmp_path)})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: no job was started from {tmp_path} (job.json is missing); start one with 'churnstream job', or "
        "pass --jobmanager HOST:PORT for a cluster.\n"))


def test_stop_when_the_job_started_there_is_gone(tmp_path):
    port = free_port()
    (tmp_path / "job.json").write_text(f'{{"job_id": "x", "rest": "127.0.0.1:{port}"}}')
    r = cli("job", "--stop", env={"CHURNSTREAM_RUN_DIR": str(tmp_path)})
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: no churnstream job is running at 127.0.0.1:{port}; there is nothing to stop.\n"))


def test_resume_from_a_folder_that_is_no_checkpoint(tmp_path):
    r = cli("job", "--resume-from", f"file:{tmp_path}")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", (
        f"error: {tmp_path} is not a checkpoint or savepoint (no _metadata in it); pass a chk-N or savepoint-... "
        "folder.\n"))

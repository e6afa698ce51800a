"""A single-node Apache Kafka in KRaft mode (broker + controller), from the Maven Central jars.

The local stack runs it with one PLAINTEXT listener. Given a ``KafkaSecurity``, the same broker also
listens with authentication (SASL_PLAINTEXT, and SASL_SSL with a certificate from ``make_tls``),
so the clients' SASL/TLS settings can be tested against the real thing: the tests start such a
broker on their own ports and data folder, never touching the stack on 9092.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from foundation import UserError
from foundation.artifacts import bundles, fetch_bundle, java_home
from foundation.localstack import process
from foundation.settings import SASL_MECHANISMS, Settings

log = logging.getLogger("churnstream.stack")

LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
"""


SCRAM_ITERATIONS = 4096


@dataclass(frozen=True)
class TlsFiles:
    """A broker certificate and the CA that signed it, as PEM files (see ``make_tls``)."""

    ca: Path          # what clients trust (CHURNSTREAM_KAFKA_SSL_CA_LOCATION)
    keystore: Path    # the broker's PKCS#8 private key followed by its certificate chain


@dataclass(frozen=True)
class KafkaSecurity:
    """Authenticated listeners in addition to the PLAINTEXT one (which stays for the broker itself).

    Every user can log in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 with the same password; the
    SCRAM credentials are written at storage-format time, salted (the password never reaches a
    command line). No authorizer: an authenticated user may do anything.
    """

    users: dict[str, str] = field(repr=False)   # name -> password
    sasl_port: int                               # SASL_PLAINTEXT
    sasl_ssl_port: int | None = None             # SASL_SSL (needs tls)
    ssl_port: int | None = None                  # SSL: TLS without a login (needs tls)
    tls: TlsFiles | None = None

    def listeners(self) -> dict[str, int]:
        out = {"SASL_PLAINTEXT": self.sasl_port, "SASL_SSL": self.sasl_ssl_port, "SSL": self.ssl_port}
        out = {name: port for name, port in out.items() if port is not None}
        if self.tls is None and ({"SASL_SSL", "SSL"} & set(out)):
            raise ValueError("a TLS listener needs tls (see make_tls)")
        return out


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scram_credential(mechanism: str, name: str, password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """A ``kafka-storage format --add-scram`` argument holding the salted password, not the password."""
    digest = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f'{mechanism}=[name={name},iterations={iterations},salt="{b64(salt)}",saltedpassword="{b64(salted)}"]'


def make_tls(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
    """A throw-away CA and a broker certificate for ``hosts`` (1 day), made with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "broker.key", "broker.csr", "broker.pem"))
    san = ",".join(("IP:" if h.replace(".", "").isdigit() else "DNS:") + h for h in hosts)
    ext = folder / "broker.ext"
    ext.write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=churnstream test CA"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={hosts[0]}"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "1", "-extfile", ext],
    ]
    for cmd in steps:
        done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        if done.returncode != 0:
            raise UserError(f"openssl failed making a test certificate: {done.stderr.strip()}")
    keystore = folder / "broker-keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text() + ca.read_text())   # openssl writes PKCS#8 keys
    for secret in (ca_key, key, keystore):
        secret.chmod(0o600)
    return TlsFiles(ca=ca, keystore=keystore)


@dataclass(frozen=True)
class KafkaNode:
    """One node of a KRaft cluster (broker and controller in one process): its id, the controller
    quorum of every node (id -> controller port), the cluster id all share, the replication factor
    of the broker's own topics (consumer offsets, transactions)."""

    node_id: int
    voters: dict[int, int]
    cluster_id: str
    replication: int


class KafkaServer:
    def __init__(self, settings: Settings, security: KafkaSecurity | None = None, node: KafkaNode | None = None):
        self.s = settings
        self.security = security
        self.node = node
        self.name = f"kafka-{node.node_id}" if node else "kafka"
        self.run = Path(settings.run_dir)
        self.dir = self.run / self.name
        self.data = self.dir / "data"
        self.log_file = self.run / "logs" / f"{self.name}.log"
        self.pidfile = self.run / "pids" / f"{self.name}.pid"

    def properties(self) -> str:
        p, c = self.s.kafka_port, self.s.kafka_controller_port
        extra = self.security.listeners() if self.security else {}
        client = [f"PLAINTEXT://127.0.0.1:{p}"] + [f"{name}://127.0.0.1:{port}" for name, port in extra.items()]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"] + [f"{name}:{name}" for name in extra]
        node_id, voters = (self.node.node_id, self.node.voters) if self.node else (1, {1: c})
        rf = self.node.replication if self.node else 1
        return "\n".join([
            "process.roles=broker,controller",
            f"node.id={node_id}",
            "controller.quorum.voters=" + ",".join(f"{i}@127.0.0.1:{port}" for i, port in sorted(voters.items())),
            f"listeners={','.join(client)},CONTROLLER://127.0.0.1:{c}",
            f"advertised.listeners={','.join(client)}",
            "controller.listener.names=CONTROLLER",
            f"listener.security.protocol.map={','.join(protocols)}",
            "inter.broker.listener.name=PLAINTEXT",
            *self._security_properties(),
            f"log.dirs={self.data}",
            "num.partitions=3",
            # Topics are created explicitly (with the right partitions and compaction).
            "auto.create.topics.enable=false",
            f"offsets.topic.replication.factor={rf}",
            f"default.replication.factor={rf}",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={max(1, rf - 1)}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={max(1, rf - 1)}",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.min.compaction.lag.ms=0",
            "",
        ])

    def _security_properties(self) -> list[str]:
        if not self.security:
            return []
        lines = [f"sasl.enabled.mechanisms={','.join(SASL_MECHANISMS)}"]
        plain_users = " ".join(f"user_{name}={_jaas_quote(pw)}" for name, pw in self.security.users.items())
        for listener in self.security.listeners():
            if not listener.startswith("SASL_"):
                continue
            prefix = f"listener.name.{listener.lower()}"
            lines.append(f"{prefix}.plain.sasl.jaas.config="
                         f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};")
            for mech in ("scram-sha-256", "scram-sha-512"):
                lines.append(f"{prefix}.{mech}.sasl.jaas.config="
                             "org.apache.kafka.common.security.scram.ScramLoginModule required;")
        if self.security.tls:
            lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={self.security.tls.keystore}"]
        return lines

    def pid(self) -> int | None:
        return process.read_pid(self.pidfile)

    def ready(self) -> bool:
        if not process.port_open(self.s.kafka_port):
            return False

        try:
            md = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.s.kafka_port}"}).list_topics(timeout=2)
            return bool(md.brokers)
        except Exception:  # noqa: BLE001 - not ready yet
            return False

    def _java(self, libs: Path, main: str, *args: str, heap: str | None = None) -> list[str]:
        cmd = [str(java_home() / "bin" / "java")]
        if heap:
            cmd += [f"-Xms{min_heap(heap)}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
        cmd += ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                "-cp", f"{libs}/*", main, *args]
        return cmd

    def launch(self) -> int:
        """Start the process; the caller waits for readiness (so services start in parallel)."""
        libs = fetch_bundle(bundles()["kafka"], Path(self.s.home))
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.run / "pids").mkdir(parents=True, exist_ok=True)
        config = self.dir / "server.properties"
        config.touch(mode=0o600)            # holds the PLAIN passwords when security is on
        config.write_text(self.properties())
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data / "meta.properties").exists():
            cluster_id = self.node.cluster_id if self.node else new_cluster_id()
            scram = []
            for name, password in (self.security.users.items() if self.security else ()):
                for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    scram += ["--add-scram", scram_credential(mech, name, password)]
            fmt = subprocess.run(self._java(libs, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                                            "-c", str(config), *scram), capture_output=True, text=True)
            if fmt.returncode != 0:
                raise UserError(f"formatting Kafka storage in {self.data} failed: {fmt.stdout}{fmt.stderr}".strip())
            log.info("%s: formatted KRaft storage in %s (cluster id %s)", self.name, self.data, cluster_id)
        pid = process.spawn(self._java(libs, "kafka.Kafka", str(config), heap=self.s.kafka_heap),
                            self.log_file, self.pidfile, cwd=self.dir)
        log.info("%s: Apache Kafka starting on 127.0.0.1:%d (pid %d, log %s)", self.name, self.s.kafka_port, pid,
                 self.log_file)
        if self.security:
            log.info("kafka: authenticated listeners %s", ", ".join(f"{k} on 127.0.0.1:{v}"
                                                                   for k, v in self.security.listeners().items()))
        return pid


def new_cluster_id() -> str:
    # Kafka's cluster ids are 16 random bytes, URL-safe base64 without padding (may start with "-":
    # pass it as --cluster-id=<id>, never as a separate argument).

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def min_heap(heap: str) -> str:
    return "256m" if heap.lower().endswith("g") or int(heap.rstrip("mM") or 0) > 256 else heap

"""A single-node Apache Kafka in KRaft mode (broker + controller), from the Maven Central jars."""

from __future__ import annotations

import logging
import subprocess
import uuid
from pathlib import Path

from churnstream import UserError
from churnstream.artifacts import bundles, fetch_bundle, java_home
from churnstream.localstack import process
from churnstream.settings import Settings

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


class KafkaServer:
    name = "kafka"

    def __init__(self, settings: Settings):
        self.s = settings
        self.run = Path(settings.run_dir)
        self.dir = self.run / "kafka"
        self.data = self.dir / "data"
        self.log_file = self.run / "logs" / "kafka.log"
        self.pidfile = self.run / "pids" / "kafka.pid"

    def properties(self) -> str:
        p, c = self.s.kafka_port, self.s.kafka_controller_port
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{c}",
            f"listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{p}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={self.data}",
            "num.partitions=3",
            # Topics are created explicitly (with the right partitions and compaction).
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.min.compaction.lag.ms=0",
            "",
        ])

    def pid(self) -> int | None:
        return process.read_pid(self.pidfile)

    def ready(self) -> bool:
        if not process.port_open(self.s.kafka_port):
            return False
        from confluent_kafka.admin import AdminClient

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
        config.write_text(self.properties())
        (self.dir / "log4j2.properties").write_text(LOG4J2)
        if not (self.data / "meta.properties").exists():
            cluster_id = _cluster_id()
            fmt = subprocess.run(self._java(libs, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                            "-c", str(config)), capture_output=True, text=True)
            if fmt.returncode != 0:
                raise UserError(f"formatting Kafka storage in {self.data} failed: {fmt.stdout}{fmt.stderr}".strip())
            log.info("kafka: formatted KRaft storage in %s (cluster id %s)", self.data, cluster_id)
        pid = process.spawn(self._java(libs, "kafka.Kafka", str(config), heap=self.s.kafka_heap),
                            self.log_file, self.pidfile, cwd=self.dir)
        log.info("kafka: Apache Kafka starting on 127.0.0.1:%d (pid %d, log %s)", self.s.kafka_port, pid, self.log_file)
        return pid


def _cluster_id() -> str:
    # Kafka's cluster ids are 16 random bytes, URL-safe base64 without padding.
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def min_heap(heap: str) -> str:
    return "256m" if heap.lower().endswith("g") or int(heap.rstrip("mM") or 0) > 256 else heap

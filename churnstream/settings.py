"""One typed settings object. Flags say *what*; the environment says *where* and holds secrets.

Every field reads ``CHURNSTREAM_<FIELD>`` (upper case) from the environment, falling back to the
default below. Secrets are never printed: ``redacted()`` shows them as ``***``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from churnstream import PROJECT_ROOT, UserError

SECRET = {"secret": True}

# The Flink SQL Kafka connector relocates the Kafka client classes: its JAAS login modules live here.
FLINK_KAFKA_SHADED_PREFIX = "org.apache.flink.kafka.shaded."


@dataclass(frozen=True)
class Settings:
    # Where things are.
    kafka_bootstrap: str = "127.0.0.1:9092"
    es_url: str = "http://127.0.0.1:9200"
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
    kibana_system_password: str = field(default="", metadata=SECRET)   # set by the compose setup service
    # Names.
    topic_prefix: str = ""
    index_prefix: str = "churn-"
    # Local stack.
    home: str = str(Path.home() / ".cache" / "churnstream")   # artifact cache, shared by all clones
    run_dir: str = str(PROJECT_ROOT / ".run")                   # logs, pids, data of the local stack
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    es_port: int = 9200
    kafka_heap: str = "1g"
    es_heap: str = "1g"
    # Pipeline.
    pii_hash_key: str = field(default="", metadata=SECRET)     # keyed hash for email/IP; random per run if empty
    checkpoint_interval_ms: int = 5000
    parallelism: int = 1

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
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

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
        from elasticsearch import Elasticsearch

        auth = (self.es_username, self.es_password) if self.es_username else None
        return Elasticsearch(self.es_url, http_auth=auth, request_timeout=30)

"""The pinned versions of every component, read once from versions.toml."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass

from foundation import PROJECT_ROOT

MANIFEST = PROJECT_ROOT / "versions.toml"


@dataclass(frozen=True)
class Versions:
    flink: str
    flink_scala: str
    flink_kafka_connector: str
    flink_avro_confluent: str
    avro: str
    kafka: str
    kafka_scala: str
    log4j: str
    elasticsearch: str
    elasticsearch_zip_sha256: str
    kibana: str
    schema_registry: str
    quarkus: str


@functools.cache
def versions() -> Versions:
    raw = tomllib.loads(MANIFEST.read_text())
    v = Versions(
        flink=raw["flink"]["version"],
        flink_scala=raw["flink"]["scala"],
        flink_kafka_connector=raw["flink"]["connectors"]["kafka"],
        flink_avro_confluent=raw["flink"]["formats"]["avro_confluent"],
        avro=raw["flink"]["formats"]["avro"],
        kafka=raw["kafka"]["version"],
        kafka_scala=raw["kafka"]["scala"],
        log4j=raw["kafka"]["log4j"],
        elasticsearch=raw["elasticsearch"]["version"],
        elasticsearch_zip_sha256=raw["elasticsearch"]["zip_sha256"],
        kibana=raw["kibana"]["version"],
        schema_registry=raw["schema_registry"]["version"],
        quarkus=raw["schema_registry"]["quarkus"],
    )
    if v.kibana != v.elasticsearch:
        raise ValueError("versions.toml: kibana.version must equal elasticsearch.version")
    return v

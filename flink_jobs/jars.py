"""The jars a job needs, resolved once per job and handed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from foundation.artifacts import connector_jars, udf_jar
from foundation.settings import Settings


@dataclass(frozen=True)
class JobJars:
    connectors: tuple[Path, ...]   # the Flink SQL connectors and formats: shipped with the job (pipeline.jars)
    udf: Path                      # our Java functions (flink_udfs/): USING JAR in sources_avro.sql

    @classmethod
    def resolve(cls, settings: Settings) -> "JobJars":
        """From the artifact cache (fetched or built on first use)."""
        return cls(tuple(connector_jars(settings)), udf_jar(settings))

    def client_classpath(self) -> list[Path]:
        """What the client JVM itself must load: the function, and the Avro format whose relocated
        Avro it calls (see pipeline._prepare_gateway_jvm)."""
        return [self.udf, *(j for j in self.connectors if "avro" in j.name)]

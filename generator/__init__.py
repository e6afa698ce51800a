"""Avro-driven synthetic insurance data and a load-injection CLI (`churnstream generate`).

Public API (the Flink/verify side depends on it):
    GeneratorConfig          frozen options of a run (dataclasses.asdict / GeneratorConfig(**d))
    generate(config)         -> Iterator[Record]: every record of the run, deterministic
    expected_records(x)      the same, from a config or a ledger dict
    produce(settings, config, rate=0, duration=None, workers=1, progress=None) -> ledger dict
    Record                   NamedTuple(topic, key, value, timestamp_ms, kind)
"""

from generator.config import KINDS, GeneratorConfig, Record
from generator.produce import produce
from generator.stream import expected_records, generate

__all__ = ["GeneratorConfig", "Record", "KINDS", "generate", "expected_records", "produce"]

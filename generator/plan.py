"""A load run decided once: what to produce, how fast, for how long, where to, with how many workers.

`LoadPlan.build` checks the arguments of `produce()` and derives everything the phases need (topic
names, the rate profile, the registry); the phases then read the plan instead of a dozen parameters.
Worker processes get the same plan (forked), so parent and workers cannot disagree about it.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from foundation import UserError
from foundation.catalog import SOURCES
from generator.config import GeneratorConfig
from generator.ratelimit import RateProfile
from generator.schema import Schema, load_project_schemas, load_schema

SINKS = ("kafka", "stdout", "files")


@dataclass(frozen=True)
class LoadPlan:
    settings: object                 # churnstream Settings (None is fine for stdout and files)
    config: GeneratorConfig          # checked; at least one shard per worker
    sink: str                        # one of SINKS
    out_dir: str | None              # for the files sink
    profile: RateProfile             # the whole run's rate (rate 0 = as fast as possible)
    duration: float | None           # seconds of streaming; None = until the count is reached
    workers: int
    progress: bool
    topics: dict[str, str]           # logical topic -> actual (prefixed) topic name
    registry_url: str                # Confluent-compatible schema registry, "" for none
    headers: dict[str, bytes] = field(default_factory=dict)   # wire-format prefix per topic, once registered
    schema_ids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, settings, config: GeneratorConfig, *, rate: float, duration: float | None, workers: int,
              progress: bool | None, sink: str, out_dir: str | None, ramp_s: float, burst_every_s: float,
              burst_for_s: float, burst_factor: float, schema_registry: str | None) -> "LoadPlan":
        """Check the arguments of produce() (one sentence naming the flag) and derive the plan."""
        if rate < 0:
            raise UserError("--rate must be >= 0 (0 means as fast as possible).")
        if workers < 1:
            raise UserError("--workers must be >= 1.")
        if duration is not None and duration <= 0:
            raise UserError("--duration must be > 0 seconds.")
        if config.activities < 0 and duration is None and config.shard_limits is None and sink != "kafka":
            raise UserError("an endless run (--count -1) to stdout or files needs --duration.")
        config = config.replace(shards=max(config.shards, workers)).check()
        logical = [config.topic or Path(config.schema_path).stem] if config.schema_path else list(SOURCES)
        registry = schema_registry or getattr(settings, "schema_registry_url", "") or ""
        return cls(settings=settings, config=config, sink=sink, out_dir=out_dir,
                   profile=RateProfile(rate, ramp_s, burst_every_s, burst_for_s, burst_factor),
                   duration=duration, workers=workers,
                   progress=sys.stderr.isatty() if progress is None else bool(progress),
                   topics={t: settings.topic(t) if settings is not None else t for t in logical},
                   registry_url=registry)

    def registered(self, schema_ids: dict[str, int], headers: dict[str, bytes]) -> "LoadPlan":
        return dataclasses.replace(self, schema_ids=schema_ids, headers=headers)

    @property
    def uses_registry(self) -> bool:
        return self.sink == "kafka" and self.config.format == "avro" and bool(self.registry_url)

    def schemas(self) -> dict[str, Schema]:
        """The value schema of every topic of the run, by logical topic."""
        if self.config.schema_path:
            return {next(iter(self.topics)): load_schema(self.config.schema_path)}
        return load_project_schemas(self.config.schema_dir)

    def parent_shards(self) -> list[int]:
        """Shards the parent process streams itself: all of them alone, none when it has workers."""
        return list(range(self.config.shards)) if self.workers == 1 else []

    def worker_shards(self, w: int) -> list[int]:
        return [s for s in range(self.config.shards) if s % self.workers == w]

    def worker_profile(self) -> RateProfile:
        """One worker's share of the rate."""
        return self.profile.scaled(1 / self.workers)

    def deadline(self) -> float | None:
        """The monotonic time at which streaming that starts now must stop."""
        return None if self.duration is None else time.monotonic() + self.duration

"""What a run is: its options (GeneratorConfig), its records (Record) and what it counted (Stats)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

from foundation import UserError

KINDS = ("valid", "late", "duplicate", "malformed", "invalid", "update")
SKEWS = ("uniform", "zipf", "80/20")
FORMATS = ("json", "avro")
ZIPF_S = 1.1
DUP_RING = 64   # duplicates re-send one of the last this-many valid events


class Record(NamedTuple):
    topic: str          # logical (unprefixed) topic name
    key: bytes | None
    value: bytes
    timestamp_ms: int
    kind: str           # one of KINDS


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    customers: int = 1000
    offers: int = 20
    activities: int = 10_000            # valid activity events (on time + late); -1 = forever
    start_ms: int | None = None         # simulated clock start; None = real time
    events_per_second: float = 100.0    # simulated clock speed
    skew: str = "zipf"                  # how activity picks customers: uniform | zipf | 80/20
    customer_update_rate: float = 0.01  # fraction of activities preceded by a new customer version
    late_rate: float = 0.0
    max_lateness_ms: int = 2000         # < the Flink watermark's 5 s, so late events are still counted
    duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    invalid_rate: float = 0.0
    format: str = "json"
    shards: int = 1                     # independent activity streams (one per worker)
    shard_limits: list[int] | None = None   # per-shard activity counts when a timed run stopped early
    schema_dir: str | None = None       # where the three entity schemas live (default avro_schemas/)
    schema_path: str | None = None      # generic datagen mode: records of this one schema only
    topic: str | None = None            # generic mode: logical topic (default: schema file stem)
    key_field: str | None = None        # generic mode: field whose value is the Kafka key
    validate_every: int = 1000          # validate 1 in N records (1 = all, --strict); 0 = never

    def check(self, flag=lambda name: name) -> "GeneratorConfig":
        """Raise UserError (one sentence, naming the flag via `flag`) if an option is out of range."""
        def need(ok, name, rule):
            if not ok:
                raise UserError(f"{flag(name)} {rule}.")
        need(self.customers >= 1, "customers", "must be >= 1")
        need(self.offers >= 1, "offers", "must be >= 1")
        need(self.activities >= -1, "activities", "must be >= 0, or -1 for no limit")
        need(self.events_per_second > 0, "events_per_second", "must be > 0")
        need(self.skew in SKEWS, "skew", f"must be one of {', '.join(SKEWS)}")
        need(self.format in FORMATS, "format", f"must be one of {', '.join(FORMATS)}")
        need(self.max_lateness_ms >= 1, "max_lateness_ms", "must be >= 1")
        need(self.shards >= 1, "shards", "must be >= 1")
        need(self.validate_every >= 0, "validate_every", "must be >= 0")
        for name in ("customer_update_rate", "late_rate", "duplicate_rate", "malformed_rate", "invalid_rate"):
            v = getattr(self, name)
            need(0.0 <= v <= 1.0, name, "must be between 0 and 1")
        need(self.duplicate_rate + self.malformed_rate + self.invalid_rate <= 1.0, "duplicate_rate",
             "plus the malformed and invalid rates must not exceed 1")
        if self.shard_limits is not None:
            need(len(self.shard_limits) == self.shards, "shard_limits", "must have one count per shard")
        return self

    def replace(self, **changes) -> "GeneratorConfig":
        return dataclasses.replace(self, **changes)

    def shard_limit(self, shard: int) -> int:
        """How many activities shard `shard` generates (-1 = forever)."""
        if self.shard_limits is not None:
            return self.shard_limits[shard]
        if self.activities < 0:
            return -1
        return len(range(shard, self.activities, self.shards))


class Stats:
    """What one stream generated, for the ledger (counted in the hot loop; no second pass)."""

    def __init__(self):
        self.kinds = dict.fromkeys(KINDS, 0)
        self.topics: dict[str, list[int]] = {}   # topic -> [count, ts_min, ts_max]
        self.keys: dict[str, set] = {}

    def add(self, topic: str, n: int, ts_min: int | None, ts_max: int | None, keys=()) -> None:
        t = self.topics.setdefault(topic, [0, None, None])
        t[0] += n
        if ts_min is not None:
            t[1] = ts_min if t[1] is None else min(t[1], ts_min)
            t[2] = ts_max if t[2] is None else max(t[2], ts_max)
        self.keys.setdefault(topic, set()).update(keys)



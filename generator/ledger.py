"""The run's ledger: what was sent, per topic, and everything needed to recompute it.

`config` is the *effective* config (shards = workers, activities = what was actually generated,
per-shard counts when a timed run stopped early), so `generate(GeneratorConfig(**ledger["config"]))`
reproduces every record that was handed to Kafka, byte for byte under the simulated clock.
"""

from __future__ import annotations

import dataclasses

from generator.config import KINDS, GeneratorConfig, Stats

LEDGER_VERSION = 1


def merge(stats: list[Stats]) -> Stats:
    out = Stats()
    for s in stats:
        for k, n in s.kinds.items():
            out.kinds[k] += n
        for topic, (n, lo, hi) in s.topics.items():
            out.add(topic, n, lo, hi, s.keys.get(topic, ()))
    return out


def build(config: GeneratorConfig, stats: Stats, topic_names: dict[str, str], failed: dict[str, int],
          elapsed_s: float, *, activities: int, sink: str, workers: int, errors: list[str], stopped_by: str,
          registry_ids: dict[str, int] | None = None) -> dict:
    topics = {}
    for logical, (n, lo, hi) in sorted(stats.topics.items()):
        f = failed.get(logical, 0)
        topics[logical] = {"topic": topic_names.get(logical, logical), "sent": n, "delivered": n - f, "failed": f,
                           "event_time_min": lo, "event_time_max": hi,
                           "distinct_keys": len(stats.keys.get(logical, ()))}
    total = sum(t["sent"] for t in topics.values())
    kinds = {k: stats.kinds.get(k, 0) for k in KINDS}
    ledger = {
        "ledger_version": LEDGER_VERSION,
        "config": dataclasses.asdict(config),
        "topics": topics,
        "kinds": kinds,
        "activities": activities,   # distinct activity events (valid + late); faults and updates come on top
        "elapsed_s": round(elapsed_s, 3),
        "rate_msgs_per_s": round(total / elapsed_s, 1) if elapsed_s > 0 else None,
        "sink": sink,
        "workers": workers,
        "stopped_by": stopped_by,
        "failed": sum(failed.values()),
        "errors": errors[:10],
    }
    if registry_ids:
        ledger["schema_ids"] = registry_ids
    return ledger

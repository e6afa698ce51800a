"""The streaming loop: shard streams into one sink at the plan's pace, and what it reports."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from generator import ledger as ledger_mod
from generator.config import Stats
from generator.ratelimit import RateProfile, TokenBucket
from generator.sinks import Sink

MAX_BATCH = 1024


@dataclass
class StreamResult:
    """What one streaming sink did: its counts, failures, why it stopped, how far each shard got."""
    stats: Stats
    failed: dict[str, int]
    errors: list[str]
    why: str = "count"                                      # count | duration | interrupt
    shard_j: dict[int, int] = field(default_factory=dict)   # shard -> activities generated
    t0: float | None = None                                 # monotonic start and end of streaming
    t1: float | None = None

    @classmethod
    def of_snapshot(cls, sink: Sink) -> "StreamResult":
        """The failures of a sink that sent only the entity snapshot (its counts are the snapshot's)."""
        return cls(Stats(), dict(sink.failed), list(sink.errors))


def batch_size(rate: float) -> int:
    """Big batches when unthrottled; ~20 ms worth when throttled (real-time stamps stay fresh, stops stay prompt)."""
    return MAX_BATCH if rate <= 0 else max(1, min(MAX_BATCH, int(rate / 50)))


def drive(streams, sink: Sink, profile: RateProfile, deadline: float | None, stop, tick) -> StreamResult:
    """Send the shard streams into the sink until done, deadline or stop; close the sink; report."""
    t0 = time.monotonic()
    why = _pump(streams, sink, profile, deadline, stop, tick)
    sink.close()
    return StreamResult(stats=ledger_mod.merge([s.finish_stats() for s in streams]), failed=dict(sink.failed),
                        errors=list(sink.errors), why=why, shard_j={s.shard: s.j for s in streams},
                        t0=t0, t1=time.monotonic())


def _pump(streams, sink: Sink, profile: RateProfile, deadline: float | None, stop, tick) -> str:
    bucket = TokenBucket(profile) if profile.rate > 0 else None
    size = batch_size(profile.rate)
    live = [s for s in streams if not s.done()]
    while live:
        if stop():
            return "interrupt"
        if deadline is not None and time.monotonic() >= deadline:
            return "duration"
        for s in live:
            sink.send(s.batch(size), bucket)
        live = [s for s in live if not s.done()]
        tick()
    return "count"


def sent_counts(streams) -> dict[str, int]:
    """Records generated so far per topic, over the given shard streams."""
    out: dict[str, int] = {}
    for s in streams:
        for t, (n, _, _) in s.stats.topics.items():
            out[t] = out.get(t, 0) + n
    return out


def add_counts(*counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for t, n in c.items():
            out[t] = out.get(t, 0) + n
    return out


def topic_counts(stats: Stats) -> dict[str, int]:
    return {t: n for t, (n, _, _) in stats.topics.items()}

"""Event-time clocks. Simulated time makes a run reproducible; real time makes dashboards live.

Simulated: activity number k happens at start_ms + k * 1000 / events_per_second, whatever the
wall clock does, so the same seed and options give the same timestamps on any machine.
Real: event time is the wall clock when the record is generated.
"""

from __future__ import annotations

import time

ENTITY_LEAD_MS = 60_000   # customers/offers are valid this long before the first activity


class SimClock:
    simulated = True

    def __init__(self, start_ms: int, events_per_second: float):
        self.start_ms = int(start_ms)
        self.ms_per_event = 1000.0 / events_per_second

    def at(self, k: int) -> int:
        """Event time of the k-th activity (0-based, across all shards)."""
        return self.start_ms + int(k * self.ms_per_event)


class RealClock:
    simulated = False

    def __init__(self, start_ms: int | None = None):
        self.start_ms = now_ms() if start_ms is None else int(start_ms)

    def at(self, k: int) -> int:  # noqa: ARG002 - same signature as SimClock
        return now_ms()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def make_clock(start_ms: int | None, events_per_second: float):
    return RealClock() if start_ms is None else SimClock(start_ms, events_per_second)

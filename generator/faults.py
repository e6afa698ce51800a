"""Bad records on demand, for the dead-letter path. Each kind is counted separately by the stream.

malformed: bytes that do not parse (a valid value cut short).
invalid:   well-formed JSON that breaks the schema, rotating through the ways real producers break it.
Both are always built from the event being generated, so they look like real traffic.
"""

from __future__ import annotations

import orjson

FUTURE_MS = 2 * 86_400_000   # 'far in the future': two days past the stream clock (> the 1-day check)

INVALID_VARIANTS = ("propensity_above_1", "missing_customer_id", "customer_id_not_int",
                    "event_time_in_future", "propensity_below_0")


INVALID_UTF8_SHARE = 0.2


def malformed(value: bytes, r: float) -> bytes:
    """Bytes that do not parse: for a fifth of them, a JSON value with a byte that is not UTF-8
    inside its activity id (well-formed JSON otherwise, as a producer with the wrong charset
    writes it); for the rest a prefix of the value: the closing brace is always missing."""
    marker = b'"activity_id":"'
    if r < INVALID_UTF8_SHARE and marker in value:
        return value.replace(marker, marker + b"\xff", 1)
    cut = max(1, min(len(value) - 1, int(len(value) * (0.2 + 0.6 * r))))
    return value[:cut]


def invalid(d: dict, turn: int, now_ms: int) -> bytes:
    """The event `d` broken in variant number `turn` (rotating), as JSON whatever the run's format."""
    bad = dict(d)
    bad["activity_id"] = f"{d['activity_id']}-invalid"
    variant = INVALID_VARIANTS[turn % len(INVALID_VARIANTS)]
    if variant == "propensity_above_1":
        bad["propensity_to_churn"] = 1.5
    elif variant == "propensity_below_0":
        bad["propensity_to_churn"] = -0.25
    elif variant == "missing_customer_id":
        del bad["customer_id"]
    elif variant == "customer_id_not_int":
        bad["customer_id"] = "abc"
    else:
        bad["event_time"] = now_ms + FUTURE_MS
    return orjson.dumps(bad)

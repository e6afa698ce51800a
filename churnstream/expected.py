"""What the pipeline must produce, recomputed in plain Python from the records that were sent.

This is deliberately independent of the SQL: its own parsing, its own rules and its own window
arithmetic, so a bug in one is caught by the other. Input: ``(topic, key, value, timestamp_ms)``
in the order they were produced (``topic`` is the logical name without prefix).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone

from flink_jobs.options import JobOptions
from foundation import catalog
from foundation.pii import pseudonym

ACTIVITY_TYPES = frozenset(catalog.activity_types())
CHANNELS = frozenset(catalog.channels())
HOUR_MS = 3_600_000


def iso(ms: int, millis: bool = False) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms % 1000:03d}" if millis else "")


# The catalog's numbers, applied by this module's own code (not the SQL's CASE expressions).
def band(value, bands: catalog.Bands):
    if value is None:
        return bands.unknown
    for edge, label in zip(bands.edges, bands.labels):
        if value < edge:
            return label
    return bands.labels[-1]


def income_band(v):
    return band(v, catalog.INCOME_BANDS)


def fico_band(v):
    return band(v, catalog.FICO_BANDS)


def tenure_band(v):
    return band(v, catalog.TENURE_BANDS)


def risk_tier(p: float) -> str:
    """The highest tier whose lower edge ``p`` reaches."""
    tiers = catalog.RISK_TIERS
    for label, lower in reversed(list(zip(tiers.labels[1:], tiers.edges))):
        if p >= lower:
            return label
    return tiers.labels[0]


def _int_text(v) -> int | None:
    """JSON scalar -> int the way the job reads it (TRY_CAST of its text)."""
    if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, int):
        return v if -2**31 <= v < 2**31 else None
    text = str(v).strip()
    try:
        n = int(text)
    except ValueError:
        return None
    return n if -2**31 <= n < 2**31 else None


def dlq_reason(key: bytes | None, value: bytes | None, timestamp_ms: int, opts: JobOptions) -> str | None:
    """The dead-letter reason for one activity record, or None if it is valid."""
    if not value:
        return "empty_payload"
    text = value.decode("utf-8", errors="replace")
    if len(text) > opts.max_payload_chars:
        return "oversize_payload"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return "malformed_json"
    if not isinstance(doc, dict):
        return "malformed_json"
    if not doc.get("activity_id") and doc.get("activity_id") != 0:
        return "missing_activity_id"
    if doc.get("customer_id") is None:
        return "missing_customer_id"
    cid = _int_text(doc["customer_id"])
    if cid is None:
        return "customer_id_not_integer"
    if key is None:
        return "missing_key"
    if key.decode("utf-8", errors="replace") != _scalar_text(doc["customer_id"]):
        return "key_mismatch"
    if doc.get("offer_id") is not None and _int_text(doc["offer_id"]) is None:
        return "offer_id_not_integer"
    if doc.get("activity_type") not in ACTIVITY_TYPES:
        return "unknown_activity_type"
    if doc.get("channel") not in CHANNELS:
        return "unknown_channel"
    p = doc.get("propensity_to_churn")
    if p is None:
        return "missing_propensity"
    try:
        pf = float(p) if not isinstance(p, bool) else None
    except (TypeError, ValueError):
        pf = None
    if pf is None:
        return "propensity_not_a_number"
    if not (0 <= pf <= 1):
        return "propensity_out_of_range"
    if doc.get("event_time") is None:
        return "missing_event_time"
    et = _int_text(doc["event_time"]) if not isinstance(doc["event_time"], int) else doc["event_time"]
    if et is None:
        return "event_time_not_integer"
    if abs(et - timestamp_ms) > opts.max_clock_skew_hours * HOUR_MS:
        return "event_time_out_of_range"
    return None


def _reject_constant(name):
    raise ValueError(name)


def _scalar_text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


@dataclass
class Expected:
    """Expected documents per index, keyed by document id."""

    enriched: dict[str, dict]
    segments: dict[str, dict]
    customers: dict[str, dict]
    alerts: dict[str, dict]
    sessions: dict[str, dict]
    dead_letters: list[dict]      # ids depend on Kafka offsets: compared as (reason, payload) pairs

    def by_index(self) -> dict[str, object]:
        return {"enriched": self.enriched, "segments": self.segments, "customers": self.customers,
                "alerts": self.alerts, "sessions": self.sessions, "dead_letters": self.dead_letters}


class Versions:
    """A versioned table: per key, the value valid at a given time (valid_from <= t)."""

    def __init__(self):
        self._times: dict[str, list[int]] = defaultdict(list)
        self._values: dict[str, list[dict]] = defaultdict(list)

    def add(self, key: str, valid_from: int, value: dict) -> None:
        times = self._times[key]
        i = bisect.bisect_right(times, valid_from)
        times.insert(i, valid_from)
        self._values[key].insert(i, value)

    def as_of(self, key: str | None, t: int) -> dict | None:
        if key is None or key not in self._times:
            return None
        i = bisect.bisect_right(self._times[key], t)
        return self._values[key][i - 1] if i else None


def compute(records, opts: JobOptions, pii_key: bytes, threshold_changes: tuple[tuple[int, float], ...] = ()) -> Expected:
    """``threshold_changes``: (event time ms, threshold) pairs, for a job resumed from a savepoint with
    another --alert-threshold: events after that time were matched with that threshold (the
    MATCH_RECOGNIZE matches an event when the watermark passes it; the stop's watermark is the time)."""
    customers, offers = Versions(), Versions()
    activities, dead = [], []
    seen: set[str] = set()   # activity ids already accepted: a later valid copy is a duplicate
    for topic, key, value, ts in records:
        if topic == catalog.DETAILS:
            doc = json.loads(value)
            customers.add(key.decode(), doc["updated_at"], doc)
        elif topic == catalog.OFFERS:
            doc = json.loads(value)
            offers.add(key.decode(), doc["updated_at"], doc)
        elif topic == catalog.ACTIVITY:
            reason = dlq_reason(key, value, ts, opts)
            if reason:
                dead.append({"reason": reason, "payload": value.decode("utf-8", errors="replace")})
            else:
                doc = json.loads(value)
                aid = _scalar_text(doc["activity_id"])
                if aid in seen:
                    dead.append({"reason": "duplicate_activity_id", "payload": value.decode("utf-8")})
                else:
                    seen.add(aid)
                    activities.append((key.decode(), doc))

    enriched = {}
    events = []   # (event_time, activity_id, row) for the aggregates
    for key, a in activities:
        t = _int_text(a["event_time"]) if not isinstance(a["event_time"], int) else a["event_time"]
        cid = _int_text(a["customer_id"])
        oid = _int_text(a.get("offer_id")) if a.get("offer_id") is not None else None
        c = customers.as_of(key, t)   # the job joins on the record key (checked equal to customer_id)
        o = offers.as_of(None if a.get("offer_id") is None else _scalar_text(a["offer_id"]), t)
        row = {
            "activity_id": str(a["activity_id"]), "customer_id": cid, "offer_id": oid,
            "activity_type": a["activity_type"], "channel": a["channel"],
            "propensity_to_churn": float(a["propensity_to_churn"]),
            "ip_hash": pseudonym(pii_key, a.get("ip_address")), "event_time": t,
            "customer_known": c is not None, "email_hash": pseudonym(pii_key, c["email"]) if c else None,
            "gender": c["gender"] if c else "unknown", "income": c["income"] if c else None,
            "fico": c["fico"] if c else None, "years_active": c["years_active"] if c else None,
            "income_band": income_band(c["income"] if c else None), "fico_band": fico_band(c["fico"] if c else None),
            "tenure_band": tenure_band(c["years_active"] if c else None),
            "offer_known": o is not None, "offer_name": o["offer_name"] if o else None,
            "offer_url": o["offer_url"] if o else None, "product_line": o["product_line"] if o else None,
            "monthly_premium": o["monthly_premium"] if o else None,
        }
        enriched[row["activity_id"]] = row
        events.append(row)

    state, alerts = _customers(events, opts, threshold_changes)
    return Expected(
        enriched=enriched,
        segments=_segments(events, opts),
        customers=state,
        alerts=alerts,
        sessions=_sessions(events, opts),
        dead_letters=dead,
    )


def _segments(events, opts: JobOptions) -> dict[str, dict]:
    size, slide = opts.window_size_seconds * 1000, opts.window_slide_seconds * 1000
    acc: dict[tuple, list[float]] = defaultdict(list)
    for e in events:
        t = e["event_time"]
        last_start = t - (t % slide)
        for start in range(last_start, t - size, -slide):
            for dim in ("activity_type", "gender", "income_band", "fico_band", "tenure_band"):
                acc[(start, dim, e[dim])].append(e["propensity_to_churn"])
    out = {}
    for (start, dim, seg), ps in acc.items():
        wid = f"{iso(start)}|{dim}|{seg}"
        out[wid] = {"window_id": wid, "window_start": start, "window_end": start + size, "dimension": dim,
                    "segment": seg, "events": len(ps), "avg_propensity": math.fsum(ps) / len(ps),
                    "max_propensity": max(ps),
                    "high_risk_share": sum(1 for p in ps if p >= catalog.HIGH_RISK_PROPENSITY) / len(ps)}
    return out


def _per_customer(events):
    by_customer = defaultdict(list)
    for e in events:
        by_customer[e["customer_id"]].append(e)
    for evs in by_customer.values():
        evs.sort(key=lambda e: e["event_time"])
    return by_customer


def _customers(events, opts: JobOptions, threshold_changes=()):
    state, alerts = {}, {}
    n = opts.rolling_events

    schedule = sorted(threshold_changes)

    def threshold(t: int) -> float:
        th = opts.alert_threshold
        for since, value in schedule:
            if t > since:
                th = value
        return th

    for cid, evs in _per_customer(events).items():
        prev = prev_th = None
        window: list[float] = []
        for e in evs:
            window.append(e["propensity_to_churn"])
            recent = window[-n:]
            rolling = math.fsum(recent) / len(recent)
            th = threshold(e["event_time"])
            # The pattern's A is judged with the threshold in force when A was matched, B with B's.
            if prev is not None and prev < prev_th and th <= rolling:
                alerts[e["activity_id"]] = {"alert_id": e["activity_id"], "customer_id": cid,
                                            "alert_time": e["event_time"], "previous_propensity": prev,
                                            "rolling_propensity": rolling}
            prev, prev_th = rolling, th
        last = evs[-1]
        value = "high-value" if (last["income"] or 0) >= catalog.HIGH_VALUE_INCOME else "low-value"
        risk = "high-risk" if rolling >= catalog.HIGH_RISK_PROPENSITY else "low-risk"
        state[str(cid)] = {"customer_id": cid, "last_activity_id": last["activity_id"],
                           "last_activity_type": last["activity_type"], "last_activity_time": last["event_time"],
                           "rolling_propensity": rolling, "recent_events": len(window[-n:]),
                           "risk_tier": risk_tier(rolling), "value_risk_quadrant": f"{value}/{risk}"}
    return state, alerts


def _sessions(events, opts: JobOptions) -> dict[str, dict]:
    gap = opts.session_gap_minutes * 60_000
    out = {}
    digital = [e for e in events if e["channel"] in ("web", "mobile")]
    for cid, evs in _per_customer(digital).items():
        sessions, current = [], [evs[0]]
        for e in evs[1:]:
            # Flink merges session windows [t, t + gap) that touch, so a gap of exactly `gap` still merges.
            if e["event_time"] - current[-1]["event_time"] > gap:
                sessions.append(current)
                current = [e]
            else:
                current.append(e)
        sessions.append(current)
        for s in sessions:
            start, end = s[0]["event_time"], s[-1]["event_time"]
            sid = f"{cid}|{iso(start, millis=True)}"
            ps = [e["propensity_to_churn"] for e in s]
            out[sid] = {"session_id": sid, "customer_id": cid, "session_start": start, "session_end": end,
                        "duration_seconds": (end - start) // 1000, "events": len(s),
                        "avg_propensity": math.fsum(ps) / len(ps)}
    return out

"""What the pipeline must produce, recomputed in plain Python from the records that were sent.

This is deliberately independent of the SQL: its own parsing, its own rules and its own window
arithmetic, so a bug in one is caught by the other. Input: ``(topic, key, value, timestamp_ms)``
in the order they were produced (``topic`` is the logical name without prefix).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from decimal import Decimal
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


def value_text(v) -> str | None:
    """The text the job's JSON_VALUE (parse_activity) gives for a JSON value read with
    ``activity_json``: a number as Java's BigDecimal writes it (1E+16, 0.010, no negative zero),
    a boolean in lower case, NULL for null, an object or an array."""
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return str(abs(v) if v.is_zero() else v)
    return str(v)


def cast_integer(text: str | None, bits: int) -> int | None:
    """TRY_CAST(text AS INT) (bits 32) or AS BIGINT (64) as Flink 2.3 does it: spaces (only) trimmed,
    an optional sign, ASCII digits and a fraction after '.' that is dropped ('7.9' is 7, '.' is 0);
    anything else, or a value out of range, is NULL."""
    if text is None:
        return None
    t = text.strip(" ")
    sign = -1 if t[:1] == "-" else 1
    if t[:1] in ("+", "-"):
        t = t[1:]
    if not t:
        return None
    whole, _, fraction = t.partition(".")
    if not all("0" <= c <= "9" for c in whole + fraction):
        return None
    n = sign * int(whole or "0")
    return n if -2 ** (bits - 1) <= n < 2 ** (bits - 1) else None


def activity_json(text: str):
    """An activity payload parsed so that a number keeps its written form (Decimal), as the job's
    parser does; NaN and Infinity are not JSON."""
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def read_activity(key: bytes | None, value: bytes | None, timestamp_ms: int,
                  opts: JobOptions) -> tuple[str | None, dict | None, int]:
    """One activity record as the job reads it, its payload parsed once: the dead-letter reason (None:
    valid), the payload (None unless a JSON object) and the event time the job's source gives it: the
    payload's event_time when it is an integer within the clock-skew bound of the Kafka timestamp,
    else that timestamp. Like the job, it parses the text as decoded with U+FFFD for invalid UTF-8."""
    if not value:
        return "empty_payload", None, timestamp_ms
    text = value.decode("utf-8", errors="replace")
    try:
        doc = activity_json(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        doc = None
    et = cast_integer(value_text(doc.get("event_time")), 64) if doc is not None else None
    source_time = et if et is not None and _plausible(et, timestamp_ms, opts) else timestamp_ms
    return _reason(key, value, text, doc, et, timestamp_ms, opts), doc, source_time


def _plausible(event_time_ms: int, timestamp_ms: int, opts: JobOptions) -> bool:
    """Within the clock-skew bound of the Kafka timestamp (the source's rowtime and step 2's check)."""
    return abs(event_time_ms - timestamp_ms) <= opts.max_clock_skew_hours * HOUR_MS


def dlq_reason(key: bytes | None, value: bytes | None, timestamp_ms: int, opts: JobOptions) -> str | None:
    """The dead-letter reason for one activity record, or None if it is valid."""
    return read_activity(key, value, timestamp_ms, opts)[0]


def _reason(key: bytes | None, value: bytes, text: str, doc: dict | None, et: int | None, timestamp_ms: int,
            opts: JobOptions) -> str | None:
    """transform.sql step 2's rules in its order; the first that fails names the reason (`et`: the
    payload's event_time as TRY_CAST AS BIGINT reads it)."""
    if len(text) > opts.max_payload_chars:
        return "oversize_payload"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    if doc is None:
        return "malformed_json"
    if not value_text(doc.get("activity_id")):
        return "missing_activity_id"
    cid_text = value_text(doc.get("customer_id"))
    if cid_text is None:
        return "missing_customer_id"
    if cast_integer(cid_text, 32) is None:
        return "customer_id_not_integer"
    if key is None:
        return "missing_key"
    if key.decode("utf-8", errors="replace") != cid_text:
        return "key_mismatch"
    offer_text = value_text(doc.get("offer_id"))
    if offer_text is not None and cast_integer(offer_text, 32) is None:
        return "offer_id_not_integer"
    if value_text(doc.get("activity_type")) not in ACTIVITY_TYPES:
        return "unknown_activity_type"
    if value_text(doc.get("channel")) not in CHANNELS:
        return "unknown_channel"
    p = value_text(doc.get("propensity_to_churn"))
    if p is None:
        return "missing_propensity"
    try:
        pf = float(p) if "_" not in p else None     # Python's float() also reads 1_000; Java's does not
    except ValueError:
        pf = None
    if pf is None:
        return "propensity_not_a_number"
    if not (0 <= pf <= 1):
        return "propensity_out_of_range"
    if value_text(doc.get("event_time")) is None:
        return "missing_event_time"
    if et is None:
        return "event_time_not_integer"
    if not _plausible(et, timestamp_ms, opts):
        return "event_time_out_of_range"
    return None


def _reject_constant(name):
    raise ValueError(name)


def same_record(payload: str | None) -> str | None:
    """A payload that is a JSON document, in one spelling: the Avro job writes a decoded record's numbers
    as Java does (5.0E-4), the recomputation as Python does (0.0005); anything else as it is."""
    try:
        return json.dumps(json.loads(payload), sort_keys=True)
    except (TypeError, ValueError):
        return payload


@dataclass
class Expected:
    """Expected documents per index, keyed by document id."""

    enriched: dict[str, dict]
    segments: dict[str, dict]
    customers: dict[str, dict]
    alerts: dict[str, dict]
    inactivity: dict[str, dict]
    sessions: dict[str, dict]
    dead_letters: list[dict]      # ids depend on Kafka offsets: compared as (reason, payload) pairs

    def by_index(self) -> dict[str, object]:
        return {"enriched": self.enriched, "segments": self.segments, "customers": self.customers,
                "alerts": self.alerts, "inactivity": self.inactivity, "sessions": self.sessions, "dead_letters": self.dead_letters}


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


def compute(records, opts: JobOptions, pii_key: bytes, threshold_changes: tuple[tuple[int, float], ...] = (),
            late: Counter | None = None) -> Expected:
    """``threshold_changes``: (event time ms, threshold) pairs, for a job resumed from a savepoint with
    another --alert-threshold: events after that time were matched with that threshold (the
    MATCH_RECOGNIZE matches an event when the watermark passes it; the stop's watermark is the time).
    ``late``: the payloads (as text, with their counts) the job found behind its watermark (dead
    letters with reason 'late'). Whether a record is late depends on when it arrived, which the
    records do not say: the job's word is taken for it, and those records are dead letters here
    instead of input (churnstream.verify.late_payloads reads them)."""
    customers, offers = Versions(), Versions()
    activities, dead = [], []
    seen: set[str] = set()   # activity ids already accepted: a later valid copy is a duplicate
    late = Counter({same_record(p): n for p, n in (late or {}).items()})
    # The newest event time of any activity record, as the job's source reads it (a bad record's
    # time too, unless implausible): it can move the watermark past the last valid event.
    newest_any = None
    for topic, key, value, ts in records:
        if topic == catalog.DETAILS:
            doc = json.loads(value)
            customers.add(key.decode(), doc["updated_at"], doc)
        elif topic == catalog.OFFERS:
            doc = json.loads(value)
            offers.add(key.decode(), doc["updated_at"], doc)
        elif topic == catalog.ACTIVITY:
            reason, doc, t = read_activity(key, value, ts, opts)
            newest_any = t if newest_any is None else max(newest_any, t)
            if reason:
                dead.append({"reason": reason, "payload": value.decode("utf-8", errors="replace")})
            else:
                aid = value_text(doc["activity_id"])
                if aid in seen:
                    dead.append({"reason": "duplicate_activity_id", "payload": value.decode("utf-8")})
                else:
                    seen.add(aid)
                    if late and late[same_record(value.decode("utf-8"))] > 0:
                        # Checked after deduplication and the joins (transform.sql step 3b): a late
                        # first copy still makes the later ones duplicates.
                        late[same_record(value.decode("utf-8"))] -= 1
                        dead.append({"reason": "late", "payload": value.decode("utf-8")})
                    else:
                        activities.append((key.decode(), doc))

    enriched = {}
    events = []   # (event_time, activity_id, row) for the aggregates
    for key, a in activities:
        t = cast_integer(value_text(a["event_time"]), 64)
        cid = cast_integer(value_text(a["customer_id"]), 32)
        offer_text = value_text(a.get("offer_id"))
        oid = cast_integer(offer_text, 32)
        c = customers.as_of(key, t)   # the job joins on the record key (checked equal to customer_id)
        o = offers.as_of(offer_text, t)
        row = {
            "activity_id": value_text(a["activity_id"]), "customer_id": cid, "offer_id": oid,
            "activity_type": a["activity_type"], "channel": a["channel"],
            "propensity_to_churn": float(a["propensity_to_churn"]),
            "ip_hash": pseudonym(pii_key, value_text(a.get("ip_address"))), "event_time": t,
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
    inactivity = _engagement(events, opts, state, newest_any)
    return Expected(
        enriched=enriched,
        segments=_segments(events, opts),
        customers=state,
        alerts=alerts,
        inactivity=inactivity,
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
    """Each customer's events in event-time order; events of one millisecond in the order their
    records were written (sort is stable). A customer's records share one partition (the record key
    is the customer id), so that is the Kafka order transform.sql step 5a sorts them into."""
    by_customer = defaultdict(list)
    for e in events:
        by_customer[e["customer_id"]].append(e)
    for evs in by_customer.values():
        evs.sort(key=lambda e: e["event_time"])
    return by_customer


def _with_rolling(evs, n: int):
    """One customer's events in event-time order, each with the rolling propensity over its last
    ``n`` events and how many that is (step 5's OVER window).

    Summed as the job sums: a running double (the oldest event taken out, then the new one added,
    as Flink's bounded ROWS OVER window retracts and accumulates), not afresh. The two differ in
    the last bit, and an average of four-decimal propensities can land exactly on the alert
    threshold: 0.6999999999999998 is no crossing, 0.7000000000000001 is."""
    window: deque[float] = deque()
    total = 0.0
    for e in evs:
        if len(window) == n:
            total -= window.popleft()
        total += e["propensity_to_churn"]
        window.append(e["propensity_to_churn"])
        yield e, total / len(window), len(window)


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
        for e, rolling, recent_events in _with_rolling(evs, n):
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
                           "rolling_propensity": rolling, "recent_events": recent_events,
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


DAY_MS = 86_400_000
ENGAGEMENT_BUCKETS = 30


def engagement_fields(at: int, last: int, premium: float, has_policy: bool, years_active, rolling: float,
                      activities: int, sessions: int, opts: JobOptions) -> dict:
    """A customer's value and engagement figures evaluated at event time ``at`` (docs/design.md, "Customer
    value and engagement"), from the catalog's numbers."""
    gap = opts.inactivity_gap_seconds * 1000
    idle = at - last
    w = catalog.ENGAGEMENT_WEIGHTS
    recency = max(0.0, 1 - idle / gap)
    frequency = 0.5 * min(1.0, activities / catalog.ACTIVITY_SCALE) + 0.5 * min(1.0, sessions / catalog.SESSION_SCALE)
    monetary = min(1.0, premium / catalog.PREMIUM_SCALE)
    score = w["recency"] * recency + w["frequency"] * frequency + w["monetary"] * monetary
    if idle >= gap:
        status = "not_active"
    elif not has_policy and sessions > 0:
        status = "browsing_only"
    else:
        status = "active"
    cltv = premium * 12 * max(years_active or 0, 1)
    value = "high-value" if cltv >= catalog.HIGH_VALUE_CLTV else "low-value"
    engaged = "engaged" if score >= catalog.ENGAGED_SCORE else "disengaged"
    return {"evaluated_at": at, "monthly_premium": premium, "cltv": cltv,
            "value_at_risk": premium * 12 * rolling, "recency_days": idle / DAY_MS, "activities_30d": activities,
            "sessions_30d": sessions, "engagement_score": score,
            "engagement_segment": band(score, catalog.ENGAGEMENT_SEGMENTS), "engagement_status": status,
            "engagement_decile": min(math.floor(score * 10), 9),
            "high_risk": 1 if rolling >= catalog.HIGH_RISK_PROPENSITY else 0,
            "value_engagement_quadrant": f"{value}/{engaged}"}


class _Timeline:
    """One customer's events so far, in event-time order: premium, session starts, counts."""

    def __init__(self, opts: JobOptions):
        self.opts = opts
        self.bucket_ms = opts.engagement_window_seconds * 1000 // ENGAGEMENT_BUCKETS
        self.times: list[int] = []
        self.session_starts: list[int] = []
        self.last_digital: int | None = None
        self.premium, self.has_policy = 0.0, False
        self.last: dict | None = None
        self.rolling = 0.0

    def add(self, e: dict, rolling: float) -> None:
        t = e["event_time"]
        if e["activity_type"] == "accept_offer" and e["monthly_premium"] is not None:
            self.premium, self.has_policy = e["monthly_premium"], True
        if e["channel"] in ("web", "mobile"):
            if self.last_digital is None or t - self.last_digital > self.opts.session_gap_minutes * 60_000:
                self.session_starts.append(t)
            self.last_digital = t
        self.times.append(t)
        self.last, self.rolling = e, rolling

    def _in_window(self, times: list[int], at: int) -> int:
        """How many of ``times`` fall in the bucket of ``at`` or the 29 before it."""
        current = at // self.bucket_ms
        return sum(1 for t in times if current - ENGAGEMENT_BUCKETS < t // self.bucket_ms <= current)

    def at(self, at: int) -> dict:
        e = self.last
        return engagement_fields(at, e["event_time"], self.premium, self.has_policy, e["years_active"], self.rolling,
                                 self._in_window(self.times, at), self._in_window(self.session_starts, at), self.opts)


def _engagement(events, opts: JobOptions, state: dict[str, dict], newest_any: int | None) -> dict[str, dict]:
    """Adds each customer's value and engagement figures to ``state`` (the customers index) and
    returns the inactivity alerts.

    A customer's document is the one of the last timer to fire: the end of the customer-state
    interval of their last event, the refresh timers every refresh interval after it (until the
    window has drained) and the inactivity timer at last + gap. A bounded run ends where the data's
    own watermark does: the newest event time of any activity record, valid or not (``newest_any``;
    None: the newest of ``events``), less the out-of-orderness; later timers never fire. (The job reads that end before it starts and
    gives it to every parallel instance: flink_jobs/bounded.py.)
    """
    if not events:
        return {}
    gap, window = opts.inactivity_gap_seconds * 1000, opts.engagement_window_seconds * 1000
    refresh, interval = opts.engagement_refresh_seconds * 1000, opts.customer_state_interval_seconds * 1000
    newest = max(e["event_time"] for e in events) if newest_any is None else newest_any
    end = newest - opts.out_of_orderness_seconds * 1000
    alerts = {}
    n = opts.rolling_events
    for cid, evs in _per_customer(events).items():
        tl = _Timeline(opts)
        for e, rolling, _ in _with_rolling(evs, n):
            if tl.last is not None and e["event_time"] - tl.last["event_time"] >= gap:
                alerts.update(_inactivity_alert(cid, tl, tl.last["event_time"] + gap, opts))
            tl.add(e, rolling)
        last = tl.last["event_time"]
        fired = [(last // interval + 1) * interval] + [t for t in _timers(last, gap, window, refresh) if t <= end]
        if last + gap <= end:
            alerts.update(_inactivity_alert(cid, tl, last + gap, opts))
        state[str(cid)].update(tl.at(max(fired)))
    return alerts


def _timers(last: int, gap: int, window: int, refresh: int) -> list[int]:
    """The refresh and inactivity timers after a customer's last event at ``last``."""
    refreshes = [last + refresh]
    while refreshes[-1] + refresh <= last + window:
        refreshes.append(refreshes[-1] + refresh)
    return refreshes + [last + gap]


def _inactivity_alert(cid: int, tl: _Timeline, at: int, opts: JobOptions) -> dict[str, dict]:
    doc = tl.at(at)
    aid = f"{cid}|{iso(at, millis=True)}"
    return {aid: {"alert_id": aid, "customer_id": cid, "alert_time": at,
                  "last_activity_time": tl.last["event_time"], "last_activity_type": tl.last["activity_type"],
                  "inactive_days": (at - tl.last["event_time"]) / DAY_MS, "monthly_premium": doc["monthly_premium"],
                  "value_at_risk": doc["value_at_risk"], "rolling_propensity": tl.rolling,
                  "risk_tier": risk_tier(tl.rolling)}}

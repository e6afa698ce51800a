"""The transformation SQL (sql/transform.sql) on literal rows, in a local Flink mini-cluster.

One harness (one set of input files) serves every check, to keep Flink job starts few.
"""

from __future__ import annotations

import json

import pytest

from churnstream import expected as ex
from flink_jobs.options import JobOptions
from sqlharness import T0, Harness, activity_row, customer_row, offer_row

pytestmark = pytest.mark.flink

GAP = 30 * 60_000
GAP_ENGAGEMENT = 60_000          # OPTS.inactivity_gap_seconds
B = T0 + 2 * GAP + 20_000        # the engagement customers' events start here
OPTS = JobOptions(bounded=True, window_size_seconds=20, window_slide_seconds=10, rolling_events=1,
                  alert_threshold=0.7, inactivity_gap_seconds=60, engagement_window_seconds=300,
                  engagement_refresh_seconds=20)


def act(aid, cid, t, p, channel="web", offer=1, **over):
    doc = {"activity_id": aid, "customer_id": cid, "offer_id": offer, "activity_type": "login",
           "channel": channel, "propensity_to_churn": p, "ip_address": "203.0.113.9", "event_time": t}
    doc.update(over)
    return {k: v for k, v in doc.items() if v is not ...}


# (reason, key, payload): every reason at least once, and each way real producers break a field.
DLQ_CASES = [
    ("empty_payload", "1", ""),
    ("malformed_json", "1", '{"activity_id": "x", '),
    ("malformed_json", "1", '{"activity_id": "d0", "customer_id": 1, "propensity_to_churn": NaN}'),  # NaN is not JSON
    ("oversize_payload", "1", json.dumps({"pad": "a" * 70_000})),
    ("missing_activity_id", "1", act(..., 1, T0, 0.5)),
    ("missing_customer_id", "1", act("d1", ..., T0, 0.5)),
    ("customer_id_not_integer", "abc", act("d2", "abc", T0, 0.5)),
    ("customer_id_not_integer", "true", act("d2b", True, T0, 0.5)),
    ("missing_key", None, act("d3", 1, T0, 0.5)),
    ("key_mismatch", "2", act("d4", 1, T0, 0.5)),
    ("offer_id_not_integer", "1", act("d5", 1, T0, 0.5, offer="gold")),
    ("unknown_activity_type", "1", act("d6", 1, T0, 0.5, activity_type="dance")),
    ("unknown_channel", "1", act("d7", 1, T0, 0.5, channel="fax")),
    ("missing_propensity", "1", act("d8", 1, T0, ...)),
    ("propensity_not_a_number", "1", act("d9", 1, T0, "high")),
    ("propensity_not_a_number", "1", act("d9b", 1, T0, True)),
    ("propensity_out_of_range", "1", act("d10", 1, T0, 1.5)),
    ("propensity_out_of_range", "1", act("d10b", 1, T0, -0.25)),
    ("propensity_out_of_range", "1", act("d10c", 1, T0, "NaN")),
    ("missing_event_time", "1", act("d11", 1, ..., 0.5)),
    ("event_time_not_integer", "1", act("d12", 1, "soon", 0.5)),
    ("event_time_not_integer", "1", act("d12b", 1, 1e16, 0.5)),      # JSON_VALUE writes it 1E+16
    ("event_time_out_of_range", "1", act("d13", 1, T0 + 48 * 3_600_000, 0.5)),
    ("event_time_out_of_range", "1", act("d13b", 1, T0 - 48 * 3_600_000, 0.5)),
    ("event_time_out_of_range", "1", act("d13c", 1, str(T0 + 48 * 3_600_000), 0.5)),   # a string of digits
]

# Re-sent c3-0 (below): an exact copy and a conflicting one. Only the first copy to arrive counts.
DUPLICATES = [act("c3-0", 3, T0 + 1_000, 0.3, channel="mobile"), act("c3-0", 3, T0 + 1_000, 0.9, channel="mobile")]


# Valid, but 100 s behind the newest event when it arrives (last): late by 95 s.
LATE = act("late-0", 8, B + 300_000, 0.5)


@pytest.fixture(scope="module")
def h(tmp_path_factory):
    rows, offset = [], 0

    def add(key, payload, kafka_ms):
        nonlocal offset
        rows.append(activity_row(key, payload, offset, kafka_ms))
        offset += 1

    # Rows arrive in event-time order, within the out-of-orderness: a valid row behind the watermark
    # would be a 'late' dead letter (only LATE, last, is).
    add("2", act("c2-0", 2, T0 + 1_000, 0.6), T0 + 1_000)          # sees the late-arriving update
    add("3", act("c3-0", 3, T0 + 1_000, 0.3, channel="mobile"), T0 + 1_000)
    add("4", act("c4-0", 4, T0 + 1_000, 0.8, offer=None), T0 + 1_000)
    add("5", act("c5-0", 5, T0 + 1_000, 0.2999, offer=7), T0 + 1_000)   # unknown offer
    add("99", act("c99-0", 99, T0 + 500, 0.1), T0 + 500)            # unknown customer
    for _reason, key, payload in DLQ_CASES:
        add(key, payload, T0)
    for payload in DUPLICATES:
        add("3", payload, T0 + 2_000)
    # Customer 9: three events of one millisecond, arriving in the reverse of their Kafka order (as
    # parallel steps can hand them on): taken in Kafka order, 0.8, 0.5, 0.75 is one crossing, at c9-2.
    for aid, p, kafka_offset in (("c9-2", 0.75, 1012), ("c9-1", 0.5, 1011), ("c9-0", 0.8, 1010)):
        rows.append(activity_row("9", act(aid, 9, T0 + 4_000, p), kafka_offset, T0 + 4_000))
    # Customer 1: tenure band 20y+ (only them), income changes at T0+9.5 s; propensities cross 0.7 twice.
    for i, p in enumerate([0.5, 0.8, 0.9, 0.6, 0.75]):
        t = T0 + 7_000 + i * 1_000
        add("1", act(f"c1-{i}", 1, t, p), t)
    # Customer 7: two events in one customer-state interval (1 s): the customers index keeps the second.
    for i, (dt, p) in enumerate([(11_200, 0.2), (11_700, 0.5)]):
        add("7", act(f"c7-{i}", 7, T0 + dt, p, channel="branch"), T0 + dt)
    # Customer 6 sessions: exactly the gap merges, gap + 1 ms splits (last, so nothing else is late).
    for i, dt in enumerate([0, GAP, 2 * GAP + 1]):
        add("6", act(f"c6-{i}", 6, T0 + 12_000 + dt, 0.4), T0 + 12_000 + dt)
    # Engagement (step 8), after customer 6 so that nothing is late. Customer 20: the premium is the
    # last acceptance by event time, although the 50.0 one arrives last. Customer 21: a silence of
    # exactly the gap (an alert), one just short of it (none), then quiet to the end (an alert).
    # Customer 22: the newest event, web, no policy.
    for aid, cid, dt, atype, offer, channel in [
            ("e20-0", 20, 0, "view_offer", 1, "web"), ("e20-1", 20, 1_000, "accept_offer", 2, "web"),
            ("e20-3", 20, 3_000, "accept_offer", 3, "branch"), ("e20-2", 20, 2_000, "accept_offer", 4, "web"),
            ("e21-0", 21, 0, "login", None, "branch"), ("e21-1", 21, GAP_ENGAGEMENT, "login", None, "branch"),
            ("e21-2", 21, 2 * GAP_ENGAGEMENT - 1, "login", None, "branch"),
            ("e22-0", 22, 350_000, "browse", None, "web"), ("e22-1", 22, 400_000, "browse", None, "mobile")]:
        add(str(cid), act(aid, cid, B + dt, 0.5, channel=channel, offer=offer, activity_type=atype), B + dt)
    # Behind the watermark (the newest event time, B + 400 s, less 5 s): a dead letter, in no result.
    add("8", LATE, B + 400_000)

    customers = [
        customer_row(1, T0 - 10, years_active=25, income=40_000),
        customer_row(1, T0 + 9_500, years_active=25, income=90_000),
        customer_row(2, T0 - 10, income=100_000),
        customer_row(3, T0 - 10, income=100_000),
        customer_row(4, T0 - 10, income=250_000),
        customer_row(5, T0 - 10),
        customer_row(6, T0 - 10),
        customer_row(7, T0 - 10),
        customer_row(2, T0 + 500, income=99_999),   # written after, valid before c2-0: must be used
        customer_row(20, T0 - 10, years_active=3),
        customer_row(21, T0 - 10, years_active=0),
        customer_row(22, T0 - 10),
    ]
    offers = [offer_row(1, T0 - 10), offer_row(2, T0 - 10, monthly_premium=100.0),
              offer_row(3, T0 - 10, monthly_premium=200.0), offer_row(4, T0 - 10, monthly_premium=50.0)]
    return Harness(tmp_path_factory.mktemp("sql"), rows, customers, offers, OPTS)


@pytest.fixture(scope="module")
def enriched(h):
    cols = ("activity_id", "customer_known", "income", "offer_known", "offer_name", "gender", "tenure_band",
            "email_hash", "ip_hash")
    return {r[0]: dict(zip(cols, r)) for r in h.rows("enriched", *cols)}


def test_temporal_join_uses_the_version_valid_at_event_time(enriched):
    assert [enriched[f"c1-{i}"]["income"] for i in range(5)] == [40_000, 40_000, 40_000, 90_000, 90_000]
    assert enriched["c2-0"]["income"] == 99_999


def test_unknown_customer_and_offer_are_kept_and_marked(enriched):
    assert enriched["c99-0"]["customer_known"] is False and enriched["c99-0"]["gender"] == "unknown"
    assert enriched["c5-0"]["offer_known"] is False and enriched["c5-0"]["offer_name"] is None
    assert enriched["c4-0"]["offer_known"] is False          # no offer at all
    assert enriched["c1-0"]["offer_name"] == "Offer 1"


def test_every_valid_activity_is_enriched_once(h):
    ids = [r[0] for r in h.rows("enriched", "activity_id")]
    assert len(ids) == len(set(ids)) == 5 + 2 + 5 + 3 + 9 + 3


def test_a_resent_activity_counts_once_as_its_first_copy(h):
    assert h.rows("enriched", "activity_id", "propensity_to_churn") and \
        [r for r in h.rows("enriched", "activity_id", "propensity_to_churn") if r[0] == "c3-0"] == [("c3-0", 0.3)]
    sessions = [r for r in h.rows("sessions", "customer_id", "events", "avg_propensity") if r[0] == 3]
    assert sessions == [(3, 1, 0.3)]


def test_pii_is_pseudonymised(enriched):
    from foundation.pii import pseudonym

    row = enriched["c1-0"]
    assert row["email_hash"] == pseudonym(b"test-key", "c1@example.com")
    assert row["ip_hash"] == pseudonym(b"test-key", "203.0.113.9")
    assert "@" not in row["email_hash"] and "203.0" not in row["ip_hash"]


def test_the_jobs_java_hash_is_foundation_pii_on_any_text(h):
    """The job hashes in the JVM (flink_udfs/Pseudonymise.java), verify and the recomputation in
    Python (foundation.pii): both must give the same pseudonym for every string, NULL stays NULL."""
    from foundation.pii import pseudonym

    values = ["", "a", "Zoë.Müller@exämple.org", "2001:db8::1", "雪@例え.jp", "emoji 🙂", "x" * 1000]
    literal = ", ".join("(" + "'" + v.replace("'", "''") + "')" for v in values)
    got = [r[0] for r in h.t_env.execute_sql(
        f"SELECT pseudonymise(v) FROM (VALUES {literal}) AS t (v)").collect()]
    assert got == [pseudonym(b"test-key", v) for v in values]
    null = [r[0] for r in h.t_env.execute_sql(
        "SELECT pseudonymise(CAST(NULL AS STRING)) FROM (VALUES (1)) AS t (x)").collect()]
    assert null == [None]


PAYLOADS = [
    '{"activity_id": "a1", "customer_id": 7, "offer_id": null, "activity_type": "login", "channel": "web", '
    '"propensity_to_churn": 0.42, "ip_address": "203.0.113.9", "event_time": 1767225600000}',
    '{"activity_id": 5, "customer_id": "7", "propensity_to_churn": 1e-7, "event_time": 1.5E3, "channel": true}',
    '{"customer_id": 12345678901234567890, "propensity_to_churn": 0.1000, "offer_id": -0, "channel": false}',
    '{"activity_id": {"x": 1}, "customer_id": [1, 2], "activity_type": "", "channel": "w\\u00e9b"}',
    '{"activity_id": "first", "activity_id": "second"}',         # duplicate key: the last wins
    '{"activity_id": "a"} trailing',                           # Flink's parser stops after the value
    '{"activity_id": "a",}', '{"activity_id": NaN}', '{"activity_id": \'single\'}',
    '[{"activity_id": "in an array"}]', '"a string"', '42', 'null', '', '   ', '{', 'not json at all',
    '{"propensity_to_churn": 99999999999999999999.5, "event_time": 1767225600000.0}',
]
# JSON values as the checks read them: JSON_VALUE's text, then TRY_CAST AS INT and AS BIGINT.
NUMBERS = ["0.0000001", "1.5E3", "12.50", "-1.0", "1e16", "123456789012345678901234567890", "1E400", "1.0e-2",
           "5e0", "-0.0", "-0", "7", "1767225600000.9", "true", "null", "[1]", '" 7 "', '" 7\\t"', '"\\t7"',
           '"."', '"-"', '"+5"', '"1."', '"1.2.3"', '"\\u0663"', '"9223372036854775808"', '"2147483648"',
           '"-9223372036854775808"', '"9223372036854775807.99"', '""', '"0x10"']
FIELDS = ["activity_id", "customer_id", "offer_id", "activity_type", "channel", "propensity_to_churn",
          "ip_address", "event_time"]


def test_parse_activity_is_json_value_field_by_field(h):
    """transform.sql parses each payload once with parse_activity (flink_udfs/ParseActivity.java):
    on any text it must equal Flink's own IS JSON OBJECT and JSON_VALUE, which every check was
    written against."""
    literal = ", ".join(["(" + "'" + p.replace("'", "''") + "')" for p in PAYLOADS] + ["(CAST(NULL AS STRING))"])
    ours = ", ".join(f"parse_activity(p).{f}" for f in FIELDS)
    flinks = ", ".join(f"JSON_VALUE(p, '$.{f}')" for f in FIELDS)
    rows = [tuple(r) for r in h.t_env.execute_sql(
        f"SELECT p, parse_activity(p).is_json, {ours}, p IS JSON OBJECT, {flinks} "
        f"FROM (VALUES {literal}) AS t (p)").collect()]
    assert len(rows) == len(PAYLOADS) + 1
    n = len(FIELDS) + 1
    for r in rows:
        assert r[1:1 + n] == r[1 + n:], (r[0], r[1:1 + n], r[1 + n:])
    assert sum(1 for r in rows if r[1]) == 7          # the payloads above that are JSON objects


def test_every_dead_letter_reason(h):
    rows = h.rows("dead_letters", "reason", "payload", "late_by_ms")
    got = sorted((reason, payload) for reason, payload, _ in rows)
    want = sorted((reason, payload if isinstance(payload, str) else json.dumps(payload))
                  for reason, _, payload in DLQ_CASES)
    want = sorted(want + [("duplicate_activity_id", json.dumps(p)) for p in DUPLICATES]
                  + [("late", json.dumps(LATE))])
    assert got == want
    # How late: the watermark (newest event time B + 400 s, less the 5 s out-of-orderness) less its time.
    assert {reason: late_by for reason, _, late_by in rows if late_by is not None} == {"late": 95_000}


def test_a_late_record_is_in_no_result(enriched):
    assert "late-0" not in enriched


def test_hop_windows_hand_computed(h):
    rows = h.rows("segment_windows", "window_start", "dimension", "segment", "events", "avg_propensity",
                  "max_propensity", "high_risk_share")
    mine = {}
    for start, dim, seg, n, avg, mx, share in rows:
        if dim == "tenure_band" and seg == "20y+":
            mine[int(start.timestamp() * 1000) - T0] = (n, round(avg, 9), mx, round(share, 9))
    assert mine == {
        -10_000: (3, round((0.5 + 0.8 + 0.9) / 3, 9), 0.9, round(2 / 3, 9)),
        0: (5, round((0.5 + 0.8 + 0.9 + 0.6 + 0.75) / 5, 9), 0.9, 0.8),
        10_000: (2, 0.675, 0.75, 1.0),
    }


def test_risk_tiers_and_quadrants_at_boundaries(h):
    # Per event (customer_events): customers 2-5 arrive 10 s behind customer 1, past the watermark, so
    # the windows drop them; their tiers are still computed.
    state = {r[0]: r[1:] for r in h.rows("customer_events", "activity_id", "risk_tier", "value_risk_quadrant")}
    assert state["c2-0"] == ("high", "low-value/high-risk")       # 0.6, income 99 999
    assert state["c3-0"] == ("medium", "high-value/low-risk")     # 0.3, income 100 000
    assert state["c4-0"] == ("critical", "high-value/high-risk")  # 0.8
    assert state["c5-0"] == ("low", "low-value/low-risk")         # 0.2999
    assert state["c1-4"] == ("high", "low-value/high-risk")       # last event 0.75, income 90 000


def test_customer_state_is_written_at_interval_ends(h):
    # The documents written at the end of an interval with events (the others are refreshes): they
    # carry the newest state; customer 7's two events share an interval, so no document shows the first.
    rows = sorted((r[:-1], ms(r[-1])) for r in h.rows("customer_state", "customer_id", "last_activity_id",
                                                       "rolling_propensity", "recent_events", "risk_tier",
                                                       "evaluated_at") if r[0] in (1, 7))
    c7 = {doc for doc, at in rows if doc[0] == 7 and at % 1_000 == 0}
    assert c7 == {(7, "c7-1", 0.5, 1, "medium")}
    c1 = [(doc, at) for doc, at in rows if doc[0] == 1 and at <= T0 + 12_000]
    assert max(c1, key=lambda r: r[1]) == ((1, "c1-4", 0.75, 1, "high"), T0 + 12_000)


@pytest.fixture(scope="module")
def engagement(h):
    """Each customer's last document (the latest evaluation) and every inactivity alert."""
    cols = ("customer_id", "evaluated_at", "last_activity_id", "monthly_premium", "cltv", "value_at_risk",
            "recency_days", "activities_30d", "sessions_30d", "engagement_score", "engagement_segment",
            "engagement_status")
    last = {}
    for r in h.rows("customer_state", *cols):
        doc = dict(zip(cols, r))
        if doc["customer_id"] not in last or doc["evaluated_at"] >= last[doc["customer_id"]]["evaluated_at"]:
            last[doc["customer_id"]] = doc
    alerts = sorted(h.rows("inactivity_alerts", "customer_id", "alert_time", "last_activity_time", "inactive_days"))
    return last, alerts


def ms(dt) -> int:
    from datetime import timezone
    return round(dt.replace(tzinfo=timezone.utc).timestamp() * 1000)


def test_premium_is_the_last_acceptance_by_event_time(engagement):
    c20 = engagement[0][20]
    assert c20["last_activity_id"] == "e20-3"
    assert c20["monthly_premium"] == 200.0             # not 50.0, which arrived last with an earlier time
    assert c20["cltv"] == 200.0 * 12 * 3               # years_active 3
    assert c20["value_at_risk"] == 200.0 * 12 * 0.5    # rolling propensity of the last event (rolling_events=1)
    assert engagement[0][21]["monthly_premium"] == 0.0 and engagement[0][21]["cltv"] == 0.0   # no policy


def test_one_inactivity_alert_per_silence_of_the_gap(engagement):
    alerts = [(ms(t), ms(last), days) for cid, t, last, days in engagement[1] if cid == 21]
    gap_days = GAP_ENGAGEMENT / 86_400_000
    # exactly the gap: an alert; 1 ms short of it: none; quiet until the data ends: an alert.
    assert alerts == [(B + GAP_ENGAGEMENT, B, gap_days),
                      (B + 3 * GAP_ENGAGEMENT - 1, B + 2 * GAP_ENGAGEMENT - 1, gap_days)]
    assert not [a for a in engagement[1] if a[0] == 22]    # its last event is the data's newest


def test_quiet_customers_are_re_evaluated_until_the_data_ends(engagement):
    # Customer 21's refreshes every 20 s after its last event stop at the data's own watermark
    # (newest event B + 400 s less 5 s): the last is 13 refreshes after it, not the end of time.
    c21 = engagement[0][21]
    assert ms(c21["evaluated_at"]) == B + 2 * GAP_ENGAGEMENT - 1 + 13 * 20_000
    assert c21["engagement_status"] == "not_active" and c21["engagement_segment"] == "at_risk"
    # Recency 0, no premium; of its events only the last is still in the 5-minute window.
    assert c21["activities_30d"] == 1
    assert c21["engagement_score"] == pytest.approx(0.3 * 0.5 * 1 / 30, abs=1e-12)


def test_engagement_of_an_active_browser(engagement):
    c22 = engagement[0][22]
    assert ms(c22["evaluated_at"]) == B + 401_000          # the end of its last event's 1 s interval
    assert (c22["activities_30d"], c22["sessions_30d"]) == (2, 1)   # 50 s apart: one session
    score = 0.4 * (1 - 1_000 / GAP_ENGAGEMENT) + 0.3 * (0.5 * 2 / 30 + 0.5 * 1 / 10)
    assert c22["engagement_score"] == pytest.approx(score, abs=1e-12)
    assert (c22["engagement_segment"], c22["engagement_status"]) == ("medium", "browsing_only")


def test_alert_once_per_upward_crossing(h):
    alerts = sorted(r[0] for r in h.rows("churn_alerts", "alert_id"))
    assert alerts == ["c1-1", "c1-4", "c9-2"]


def test_events_of_one_millisecond_are_taken_in_kafka_order(h):
    """Step 5a: whatever order they arrive in, a customer's events of one millisecond reach the
    rolling window, the alerts and the engagement function in their Kafka order (partition, offset);
    in arrival order the crossing would be c9-0, and c9-0 the customer's last activity."""
    assert [r[1:] for r in h.rows("churn_alerts", "alert_id", "previous_propensity") if r[0] == "c9-2"] == [(0.5,)]
    last = {r[1] for r in h.rows("customer_state", "customer_id", "last_activity_id") if r[0] == 9}
    assert last == {"c9-2"}


def test_sessions_split_beyond_exactly_thirty_minutes(h):
    rows = [r for r in h.rows("sessions", "customer_id", "events", "duration_seconds") if r[0] == 6]
    assert sorted(rows) == [(6, 1, 0), (6, 2, 1800)]


def test_the_recomputation_reads_values_as_the_job_casts_them(h):
    """churnstream/expected.py decides validity and ids from JSON_VALUE's text and Flink's TRY_CAST,
    modelled in Python: both on the same JSON values."""
    payloads = ['{"v": %s}' % n for n in NUMBERS]
    literal = ", ".join("(" + "'" + p.replace("'", "''") + "')" for p in payloads)
    got = [tuple(r) for r in h.t_env.execute_sql(
        "SELECT JSON_VALUE(p, '$.v'), TRY_CAST(JSON_VALUE(p, '$.v') AS INT), "
        f"TRY_CAST(JSON_VALUE(p, '$.v') AS BIGINT) FROM (VALUES {literal}) AS t (p)").collect()]
    want = []
    for p in payloads:
        text = ex.value_text(ex.activity_json(p)["v"])
        want.append((text, ex.cast_integer(text, 32), ex.cast_integer(text, 64)))
    assert got == want

"""The independent recomputation's own rules, on literal values."""

import json

import pytest

from churnstream import expected as ex
from flink_jobs.options import JobOptions

OPTS = JobOptions()
T = 1_700_000_000_000


def activity(**over):
    doc = {"activity_id": "a1", "customer_id": 7, "offer_id": 3, "activity_type": "login", "channel": "web",
           "propensity_to_churn": 0.5, "ip_address": "10.0.0.1", "event_time": T}
    doc.update(over)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


@pytest.mark.parametrize("key, value, reason", [
    (b"7", b"", "empty_payload"),
    (b"7", b"{broken", "malformed_json"),
    (b"7", activity(activity_id="aX").replace(b"aX", b"a\xe9"), "invalid_utf8"),   # Latin-1, not UTF-8
    (b"7", activity(activity_id="a\ufffd"), None),                     # U+FFFD itself is valid UTF-8
    (b"7", b"[1, 2]", "malformed_json"),
    (b"7", b'{"propensity_to_churn": NaN}', "malformed_json"),
    (b"7", activity(activity_id=...), "missing_activity_id"),
    (b"7", activity(customer_id=...), "missing_customer_id"),
    (b"7", activity(customer_id="abc"), "customer_id_not_integer"),
    (None, activity(), "missing_key"),
    (b"8", activity(), "key_mismatch"),
    (b"7", activity(offer_id="x"), "offer_id_not_integer"),
    (b"7", activity(activity_type="dance"), "unknown_activity_type"),
    (b"7", activity(channel="fax"), "unknown_channel"),
    (b"7", activity(propensity_to_churn=...), "missing_propensity"),
    (b"7", activity(propensity_to_churn="high"), "propensity_not_a_number"),
    (b"7", activity(propensity_to_churn=1.5), "propensity_out_of_range"),
    (b"7", activity(propensity_to_churn=-0.1), "propensity_out_of_range"),
    (b"7", activity(propensity_to_churn="NaN"), "propensity_out_of_range"),
    (b"7", activity(event_time=...), "missing_event_time"),
    (b"7", activity(event_time="soon"), "event_time_not_integer"),
    (b"7", activity(event_time=str(T)), None),                         # TRY_CAST(text AS BIGINT) reads it
    (b"7", activity(event_time=f" {T + 25 * 3_600_000} "), "event_time_out_of_range"),
    (b"7", activity(event_time=T + 0.5), None),                        # the fraction is dropped, as in the job
    (b"7", activity(event_time=1e16), "event_time_not_integer"),       # written 1E+16: not an integer text
    (b"7.0", activity(customer_id=7.0), None),                         # the key must read like JSON_VALUE's text
    (b"7", activity(customer_id=7.0), "key_mismatch"),
    (b"7", activity(activity_id={"x": 1}), "missing_activity_id"),     # JSON_VALUE of an object is NULL
    (b"7", activity(propensity_to_churn=[0.5]), "missing_propensity"),
    (b"7", activity(propensity_to_churn="0_5"), "propensity_not_a_number"),
    (b"7", activity(event_time=T + 25 * 3_600_000), "event_time_out_of_range"),
    (b"7", activity(event_time=T - 48 * 3_600_000), "event_time_out_of_range"),
    (b"7", activity(propensity_to_churn=True), "propensity_not_a_number"),
    (b"true", activity(customer_id=True), "customer_id_not_integer"),
    (b"7", b"{" + b'"x": "' + b"a" * 70_000 + b'"}', "oversize_payload"),
    (b"7", activity(), None),
    (b"7", activity(offer_id=None), None),
    (b"7", activity(propensity_to_churn=1), None),
])
def test_dead_letter_reasons(key, value, reason):
    assert ex.dlq_reason(key, value, T, OPTS) == reason


@pytest.mark.parametrize("value, source_time", [
    (activity(event_time=T + 60_000), T + 60_000),                     # the payload's time
    (activity(event_time=T + 25 * 3_600_000), T),                      # implausible: the Kafka timestamp
    (activity(event_time="soon"), T),
    (b"{broken", T),
    (b"", T),
    # Invalid UTF-8 is a dead letter, but the source reads the text with U+FFFD as the job's raw
    # format decodes it, so its event time still moves the watermark.
    (activity(activity_id="aX", event_time=T + 1).replace(b"aX", b"a\xe9"), T + 1),
])
def test_the_source_time_is_read_as_the_job_reads_it(value, source_time):
    assert ex.read_activity(b"7", value, T, OPTS)[2] == source_time


@pytest.mark.parametrize("p, tier", [(0.0, "low"), (0.2999, "low"), (0.3, "medium"), (0.6, "high"),
                                     (0.7999, "high"), (0.8, "critical"), (1.0, "critical")])
def test_risk_tier_boundaries(p, tier):
    assert ex.risk_tier(p) == tier


def test_bands_at_their_edges():
    assert [ex.income_band(v) for v in (None, 29999, 30000, 99999, 100000, 150000)] == \
        ["unknown", "<30k", "30-60k", "60-100k", "100-150k", "150k+"]
    assert [ex.fico_band(v) for v in (579, 580, 669, 670, 739, 740, 799, 800)] == \
        ["poor", "fair", "fair", "good", "good", "very good", "very good", "exceptional"]
    assert [ex.tenure_band(v) for v in (0, 1, 2, 4, 5, 9, 10, 19, 20)] == \
        ["0-1y", "0-1y", "2-4y", "2-4y", "5-9y", "5-9y", "10-19y", "10-19y", "20y+"]


def test_versioned_lookup_is_as_of_event_time():
    v = ex.Versions()
    v.add("1", 100, {"v": "old"})
    v.add("1", 200, {"v": "new"})
    assert v.as_of("1", 99) is None
    assert v.as_of("1", 100)["v"] == "old"
    assert v.as_of("1", 199)["v"] == "old"
    assert v.as_of("1", 200)["v"] == "new"
    assert v.as_of("2", 500) is None


def _rows(*specs):
    """(customer, time offset ms, propensity, channel) -> enriched-like rows."""
    return [{"activity_id": f"a{i}", "customer_id": c, "event_time": T + dt, "propensity_to_churn": p,
             "channel": ch, "activity_type": "login", "gender": "male", "income_band": "<30k",
             "fico_band": "good", "tenure_band": "0-1y", "income": 20000}
            for i, (c, dt, p, ch) in enumerate(specs)]


def test_hop_windows_hand_computed():
    opts = JobOptions(window_size_seconds=20, window_slide_seconds=10)
    t0 = T - T % 10_000          # a window boundary
    rows = _rows((1, t0 - T + 1_000, 0.2, "web"), (1, t0 - T + 12_000, 0.8, "web"))
    seg = {k: v for k, v in ex._segments(rows, opts).items() if "|gender|" in k}
    by_start = {v["window_start"] - t0: (v["events"], v["avg_propensity"], v["max_propensity"], v["high_risk_share"])
                for v in seg.values()}
    assert by_start == {-10_000: (1, 0.2, 0.2, 0.0), 0: (2, 0.5, 0.8, 0.5), 10_000: (1, 0.8, 0.8, 1.0)}


def test_alert_once_per_upward_crossing():
    opts = JobOptions(rolling_events=1, alert_threshold=0.7)
    rows = _rows(*[(1, i * 1000, p, "web") for i, p in enumerate([0.5, 0.8, 0.9, 0.6, 0.75, 0.2])])
    _, alerts = ex._customers(rows, opts)
    assert sorted(alerts) == ["a1", "a4"]


def test_threshold_changed_on_resume_applies_from_the_stop_on():
    """Stopped at T+2.5 s and resumed with another threshold: each event is judged with the threshold
    in force when it was matched, so the pattern's A may have met the old one and B the new one."""
    opts = JobOptions(rolling_events=1, alert_threshold=0.7)
    rows = _rows(*[(1, i * 1000, p, "web") for i, p in enumerate([0.5, 0.8, 0.6, 0.75, 0.5, 0.9])])
    alerts = lambda *changes: sorted(ex._customers(rows, opts, changes)[1])   # noqa: E731
    assert alerts() == ["a1", "a3", "a5"]
    assert alerts((T + 2_500, 0.85)) == ["a1", "a5"]            # 0.6 -> 0.75 no longer crosses
    assert alerts((T + 2_500, 0.55)) == ["a1", "a3", "a5"]      # 0.6 was below 0.7 when it was matched
    assert alerts((T - 1, 0.55)) == ["a1", "a5"]                 # 0.55 from the start: 0.6 is not below it


def test_first_event_above_threshold_is_not_a_crossing():
    opts = JobOptions(rolling_events=1, alert_threshold=0.7)
    _, alerts = ex._customers(_rows((1, 0, 0.9, "web")), opts)
    assert alerts == {}


def test_rolling_state_and_quadrant():
    opts = JobOptions(rolling_events=2)
    state, _ = ex._customers(_rows((1, 0, 0.1, "web"), (1, 1000, 0.5, "web"), (1, 2000, 0.9, "web")), opts)
    s = state["1"]
    assert s["rolling_propensity"] == pytest.approx(0.7) and s["recent_events"] == 2
    assert s["risk_tier"] == "high" and s["value_risk_quadrant"] == "low-value/high-risk"
    assert s["last_activity_id"] == "a2"


def test_sessions_split_only_beyond_the_gap():
    gap = 30 * 60_000
    rows = _rows((1, 0, 0.2, "web"), (1, gap, 0.4, "mobile"),              # exactly the gap: same session
                 (1, 2 * gap + 1, 0.6, "web"),                             # gap + 1 ms: new session
                 (1, 2 * gap + 5, 0.9, "call_center"))                     # not digital: ignored
    sessions = ex._sessions(rows, JobOptions())
    assert sorted((s["events"], s["duration_seconds"]) for s in sessions.values()) == [(1, 0), (2, 1800)]


# ------------------------------------------------------------------ customer value and engagement

ENG = JobOptions(rolling_events=1, inactivity_gap_seconds=60, engagement_window_seconds=300,
                 engagement_refresh_seconds=20)


def _eng_rows(*specs):
    """(customer, ms after T, activity type, channel, premium of the event's offer)."""
    rows = _rows(*[(c, dt, 0.5, ch) for c, dt, _t, ch, _p in specs])
    for r, (_c, _dt, atype, _ch, premium) in zip(rows, specs):
        r.update(activity_type=atype, monthly_premium=premium, years_active=2)
    return rows


def _engagement(rows, opts=ENG):
    state, _ = ex._customers(rows, opts)
    alerts = ex._engagement(rows, opts, state, None)
    return state, alerts


@pytest.mark.parametrize("idle, status", [(59_999, "active"), (60_000, "not_active")])
def test_status_turns_not_active_at_exactly_the_gap(idle, status):
    doc = ex.engagement_fields(T + idle, T, 100.0, True, 2, 0.5, 1, 0, ENG)
    assert doc["engagement_status"] == status


def test_each_engagement_component_and_its_cap():
    f = lambda **k: ex.engagement_fields(**{"at": T, "last": T, "premium": 0.0, "has_policy": False,  # noqa: E731
                                            "years_active": 0, "rolling": 0.5, "activities": 0, "sessions": 0,
                                            "opts": ENG, **k})["engagement_score"]
    assert f() == pytest.approx(0.4)                                       # recency only, just now
    assert f(at=T + 30_000) == pytest.approx(0.2)                         # half the gap: half the recency
    assert f(at=T + 90_000) == 0.0                                        # past the gap: none, not negative
    assert f(activities=15) - f() == pytest.approx(0.3 * 0.5 * 0.5)       # 15 of 30 activities
    assert f(activities=300) - f() == pytest.approx(0.3 * 0.5)            # capped
    assert f(sessions=10) - f() == pytest.approx(0.3 * 0.5)               # 10 sessions: full
    assert f(premium=225.0) - f() == pytest.approx(0.3 * 0.5)             # half the top premium
    assert f(premium=900.0) - f() == pytest.approx(0.3)                   # capped


@pytest.mark.parametrize("score_at, segment", [(0.1999, "at_risk"), (0.2, "low"), (0.4, "medium"), (0.6, "high")])
def test_segments_at_their_edges(score_at, segment):
    assert ex.band(score_at, ex.catalog.ENGAGEMENT_SEGMENTS) == segment


def test_value_figures():
    doc = ex.engagement_fields(T, T, 100.0, True, 0, 0.25, 0, 0, ENG)
    assert doc["cltv"] == 100.0 * 12 * 1          # a first-year customer counts one year
    assert doc["value_at_risk"] == 100.0 * 12 * 0.25
    assert ex.engagement_fields(T, T, 100.0, True, 4, 0.25, 0, 0, ENG)["cltv"] == 100.0 * 12 * 4
    browsing = ex.engagement_fields(T, T, 0.0, False, 4, 0.25, 0, 1, ENG)
    assert (browsing["cltv"], browsing["engagement_status"]) == (0.0, "browsing_only")
    assert ex.engagement_fields(T, T, 0.0, False, 4, 0.25, 0, 0, ENG)["engagement_status"] == "active"


def test_premium_as_of_the_last_acceptance_by_event_time():
    rows = _eng_rows((1, 0, "view_offer", "web", 25.0), (1, 1_000, "accept_offer", "web", 100.0),
                     (1, 3_000, "accept_offer", "web", 200.0), (1, 2_000, "accept_offer", "web", 50.0),
                     (1, 4_000, "accept_offer", "web", None),     # an offer not known then: no change
                     (2, 0, "browse", "web", 80.0))              # browsing an offer is not a policy
    state, _ = _engagement(rows)
    assert state["1"]["monthly_premium"] == 200.0
    assert state["2"]["monthly_premium"] == 0.0 and state["2"]["engagement_status"] != "active"


def test_one_inactivity_alert_per_silence_none_when_back_in_time():
    rows = _eng_rows((1, 0, "login", "branch", None), (1, 60_000, "login", "branch", None),    # exactly the gap
                     (1, 119_999, "login", "branch", None),                                   # 1 ms short
                     (2, 400_000, "login", "branch", None))                                   # the data's end
    _, alerts = _engagement(rows)
    assert sorted((a["customer_id"], a["alert_time"] - T) for a in alerts.values()) == [(1, 60_000), (1, 179_999)]


def test_a_quiet_customer_is_evaluated_at_its_last_timer_before_the_end():
    # End of the data: 400 s less the 5 s out-of-orderness. Refreshes every 20 s after 119.999 s stop
    # there (13 of them); the newest customer only gets the end of its 1 s interval.
    rows = _eng_rows((1, 119_999, "login", "branch", None), (2, 400_000, "login", "web", None))
    state, _ = _engagement(rows)
    assert state["1"]["evaluated_at"] - T == 119_999 + 13 * 20_000
    assert state["2"]["evaluated_at"] == (T + 400_000) // 1000 * 1000 + 1000


def test_window_counts_drop_old_buckets():
    # 10 s buckets (300 s / 30): at 305 s, the event at 0 s is out of the window, the one at 10 s in.
    tl = ex._Timeline(ENG)
    t0 = T - T % 10_000
    for dt, ch in [(0, "web"), (10_000, "web"), (10_000 + 30 * 60_000 + 1, "mobile")]:
        tl.add({"event_time": t0 + dt, "activity_type": "login", "channel": ch, "monthly_premium": None,
                "years_active": 1}, 0.5)
    assert tl._in_window(tl.times, t0 + 305_000) == 1
    assert tl._in_window(tl.times, t0 + 305_000 + 30 * 60_000) == 1
    assert len(tl.session_starts) == 2              # 0 s and 10 s: one session; 30 min + 1 ms later: a new one


def test_late_records_are_dead_letters_in_no_result_and_later_copies_stay_duplicates():
    def act(aid, t, p=0.5):
        return json.dumps({"activity_id": aid, "customer_id": 1, "offer_id": None, "activity_type": "login",
                           "channel": "web", "propensity_to_churn": p, "ip_address": "203.0.113.9",
                           "event_time": t}).encode()

    t0 = 1_700_000_000_000
    a, late, again = act("a", t0), act("b", t0 - 60_000), act("b", t0 - 60_000)
    records = [("customer_activity", b"1", v, t0) for v in (a, late, again)]
    plain = ex.compute(records, JobOptions(), b"k")
    assert set(plain.enriched) == {"a", "b"} and [d["reason"] for d in plain.dead_letters] == ["duplicate_activity_id"]
    # The job found the first copy of b late: a 'late' dead letter, in no result, and the second copy
    # is still a duplicate (the job checks lateness after deduplication, transform.sql step 3b).
    # The Avro job's payload spells numbers as Java does: it still names the same record.
    java_spelling = late.decode().replace('"propensity_to_churn": 0.5', '"propensity_to_churn": 5.0E-1')
    accounted = ex.compute(records, JobOptions(), b"k", late={java_spelling: 1})
    assert set(accounted.enriched) == {"a"}
    assert [(d["reason"], d["payload"]) for d in accounted.dead_letters] == \
        [("late", late.decode()), ("duplicate_activity_id", again.decode())]

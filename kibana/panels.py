"""The dashboards, one entry per panel: the single source of every view of the data.

Each ``Panel`` says which index it reads, what chart it is and what Elasticsearch aggregation it
means (bucket levels + metrics + optional term filters); each ``Dashboard`` is a titled sequence of
panels (``DASHBOARDS``; ``PANELS`` is every panel of every dashboard). Three things are derived from
them and from nothing else:

* the Kibana saved objects, a Lens object per panel and a dashboard object per dashboard
  (``kibana.saved_objects`` -> ``kibana/saved_objects.ndjson``);
* the Elasticsearch query (``es_query``) and its result as rows (``es_rows``), used by the static
  HTML report and by the tests;
* the same rows computed in plain Python from documents (``python_rows``); the tests feed it the
  independent recomputation of every index (``churnstream.expected``), never Elasticsearch.

Rows are tuples ``(bucket key, ..., metric value, ...)`` in the panel's order.

Where customer-level questions come from: the customers index holds one document per customer
(rolling churn state, value and engagement figures) but no profile (gender, income, FICO, tenure),
so the original project's profile questions ("Customer churn — real time") read the enriched
index, one document per activity, which carries the customer's profile as of the event. Averages
there are therefore activity-weighted (a customer counts once per activity; this is also what
Kibana shows). Panels that must count *customers* rather than activities use a unique count of
``customer_id`` (gender distribution, active customers) or one bucket per ``customer_id`` (top-10
tables). "Customer value & engagement" reads the customers index, so its averages and sums are per
customer (the sum of the 0/1 ``high_risk`` counts customers, its average is their share), and the
inactivity alerts. PII: no panel uses ``email_hash`` or ``ip_hash`` (tests check it); customers are
shown by their numeric ``customer_id`` only.

Time: a dashboard has a time range (the last hour by default). ``DATA_VIEW_TIME_FIELDS`` gives each
index's data view time field, and ``time_fields`` the fields Kibana filters a panel by (as Lens does:
its date-histogram fields, else its data view's time field, else none). Event indices (activities,
windows, alerts, sessions, dead letters) keep their event time, so a panel answers "in the time
range". The customers index is current state, one document per customer, and has none: its panels
always count every customer, whatever the time range (a customer silent for an hour is exactly the
one "Engagement status" and "At-risk customers to target" must show). ``es_query`` and
``python_rows`` take an optional time range to mean the same filter.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from foundation import catalog

# Fixed date-histogram interval of every time panel: exact in Elasticsearch, in Python and in
# Lens (Lens scales it up by itself when the time range is too long for it).
MINUTE = "1m"
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000}

METRIC_OPS = ("count", "avg", "max", "min", "sum", "cardinality")
CHARTS = ("metric", "donut", "bar", "bar_stacked", "bar_horizontal", "line", "table")


@dataclass(frozen=True)
class Metric:
    op: str                  # one of METRIC_OPS
    field: str | None = None  # None for count
    label: str = ""

    def __post_init__(self):
        assert self.op in METRIC_OPS, self.op
        assert (self.field is None) == (self.op == "count"), self


@dataclass(frozen=True)
class Bucket:
    kind: str                 # "terms" | "date_histogram"
    field: str
    size: int = 10            # terms only
    order: str = "metric"     # terms: "metric" (first metric desc, then key asc) | "key" (key asc)
    interval: str = MINUTE    # date_histogram only
    label: str = ""

    def __post_init__(self):
        assert self.kind in ("terms", "date_histogram"), self.kind
        assert self.order in ("metric", "key"), self.order


@dataclass(frozen=True)
class Panel:
    id: str                   # stable slug: saved object ids and HTML anchors derive from it
    title: str
    index: str                # key of foundation.catalog.INDEX
    chart: str                # one of CHARTS
    metrics: tuple[Metric, ...]
    buckets: tuple[Bucket, ...] = ()
    # Term equality filters (field, value): a str for a keyword field, an int for an integer one.
    filter: tuple[tuple[str, str | int], ...] = ()
    note: str = ""            # what it answers and how to read it (Lens description, report caption)
    width: int = 16           # Kibana grid units out of 48
    height: int = 12

    def __post_init__(self):
        assert self.chart in CHARTS, self.chart
        assert self.metrics, self.id
        # Only these mean the same as a term query, as KQL and as Python's == (True == 1 in Python).
        assert all(isinstance(v, str) or type(v) is int for _, v in self.filter), self.id
        if self.chart == "metric":
            assert not self.buckets and len(self.metrics) == 1, self.id
        if self.chart == "donut":
            assert len(self.buckets) == 1 and len(self.metrics) == 1, self.id
        if self.chart in ("bar", "bar_stacked", "bar_horizontal", "line"):
            assert 1 <= len(self.buckets) <= 2, self.id
            assert len(self.buckets) == 1 or len(self.metrics) == 1, self.id

    def fields(self) -> set[str]:
        """Every document field the panel reads (aggregations and filters)."""
        return ({m.field for m in self.metrics if m.field} | {b.field for b in self.buckets}
                | {f for f, _ in self.filter})


@dataclass(frozen=True)
class Dashboard:
    id: str                   # stable slug: the dashboard's saved object id and HTML anchor derive from it
    title: str
    description: str
    panels: tuple[Panel, ...]


def _m(op, field=None, label=""):
    return Metric(op, field, label)


def _terms(field, size=10, order="metric", label=""):
    return Bucket("terms", field, size=size, order=order, label=label)


def _per_minute(field, label="per minute"):
    return Bucket("date_histogram", field, interval=MINUTE, label=label)


E, S, C, A, IN, SE, DL = "enriched", "segments", "customers", "alerts", "inactivity", "sessions", "dead_letters"

# Indices that hold the current state of something (one document per customer, updated in place)
# rather than events. Their data view has no time field: the dashboard's time picker would
# otherwise keep only the customers whose last activity falls in the range, so "Risk tier
# distribution" would count recent customers only and "Engagement status" could never show
# not_active. Every other index is a stream of events and keeps its event time.
CURRENT_STATE_INDICES = frozenset({C})
DATA_VIEW_TIME_FIELDS: dict[str, str | None] = {
    key: None if key in CURRENT_STATE_INDICES else index.time_field for key, index in catalog.INDEX.items()}

CHURN_PANELS: tuple[Panel, ...] = (
    # --- headline numbers -----------------------------------------------------------------------
    Panel("avg-years-active", "Average years active", E, "metric", (_m("avg", "years_active", "Years active"),),
          note="Average tenure over activities (activity-weighted).", width=6, height=5),
    Panel("avg-fico", "Average FICO", E, "metric", (_m("avg", "fico", "FICO"),),
          note="Average FICO score over activities (activity-weighted).", width=6, height=5),
    Panel("avg-churn", "Average churn propensity", E, "metric",
          (_m("avg", "propensity_to_churn", "Churn propensity"),),
          note="Average model churn propensity over all valid activities.", width=6, height=5),
    Panel("active-customers", "Active customers", E, "metric", (_m("cardinality", "customer_id", "Customers"),),
          note="Distinct customers with at least one activity.", width=6, height=5),
    Panel("sessions-total", "Sessions", SE, "metric", (_m("count", label="Sessions"),),
          note="Web/mobile sessions (30 minutes of inactivity closes a session).", width=6, height=5),
    Panel("avg-session-duration", "Average session length (s)", SE, "metric",
          (_m("avg", "duration_seconds", "Seconds"),),
          note="Average time between the first and last event of a session.", width=6, height=5),
    Panel("alerts-total", "Churn alerts", A, "metric", (_m("count", label="Alerts"),),
          note="Upward crossings of the alert threshold by a customer's rolling churn propensity.",
          width=6, height=5),
    Panel("dead-letters-total", "Dead letters", DL, "metric", (_m("count", label="Rejected records"),),
          note="Activity records rejected by validation or as duplicates (kept with their reason for replay).", width=6, height=5),
    # --- streaming: over time -------------------------------------------------------------------
    Panel("event-rate", "Event rate (activities per minute)", E, "line",
          (_m("count", label="Activities"),), (_per_minute("event_time"),),
          note="Valid activities per minute of event time.", width=24),
    Panel("rolling-churn-by-activity", "Rolling churn propensity by activity type", S, "line",
          (_m("avg", "avg_propensity", "Avg churn propensity"),),
          (_per_minute("window_start"), _terms("segment", 10, "key", "Activity type")),
          filter=(("dimension", "activity_type"),),
          note="Sliding 60 s windows (every 10 s) per activity type, averaged per minute of window start.",
          width=24),
    # --- the original project's questions --------------------------------------------------------
    Panel("churn-by-activity", "Churn propensity by activity type", E, "bar_horizontal",
          (_m("avg", "propensity_to_churn", "Avg churn propensity"),), (_terms("activity_type", 10, label="Activity type"),),
          note="Average churn propensity of the activities of each type."),
    Panel("activity-distribution", "Activity type distribution", E, "donut",
          (_m("count", label="Activities"),), (_terms("activity_type", 10, label="Activity type"),),
          note="Share of activities by type."),
    Panel("gender-distribution", "Gender distribution (customers)", E, "donut",
          (_m("cardinality", "customer_id", "Customers"),), (_terms("gender", 5, label="Gender"),),
          note="Distinct customers per gender (not activities)."),
    Panel("income-by-gender", "Income by gender", E, "bar",
          (_m("avg", "income", "Avg income"),), (_terms("gender", 5, "key", "Gender"),),
          note="Average income by gender (activity-weighted)."),
    Panel("gender-by-income-and-activity", "Gender by income and activity type", E, "bar",
          (_m("avg", "income", "Avg income"),),
          (_terms("activity_type", 10, "key", "Activity type"), _terms("gender", 5, "key", "Gender")),
          note="Average income per activity type, split by gender."),
    Panel("activity-over-years-active", "Activity type over years active", E, "bar_stacked",
          (_m("count", label="Activities"),),
          (_terms("years_active", 60, "key", "Years active"), _terms("activity_type", 10, "key", "Activity type")),
          note="Activities per customer tenure (years), stacked by activity type."),
    Panel("top-customers-by-income", "Top 10 customers by income", E, "table",
          (_m("max", "income", "Income"), _m("avg", "propensity_to_churn", "Avg churn propensity"),
           _m("count", label="Activities")),
          (_terms("customer_id", 10, label="Customer"),),
          note="Customers with the highest income (latest known profile; ties by customer id)."),
    Panel("longest-standing-customers", "Longest-standing customers", E, "table",
          (_m("max", "years_active", "Years active"), _m("max", "income", "Income"), _m("count", label="Activities")),
          (_terms("customer_id", 10, label="Customer"),),
          note="Customers with the most years active (ties by customer id)."),
    Panel("live-churn-alerts", "Live churn alerts (customers with most alerts)", A, "table",
          (_m("count", label="Alerts"), _m("max", "rolling_propensity", "Max rolling propensity")),
          (_terms("customer_id", 10, label="Customer"),),
          note="Customers whose rolling churn propensity crossed the alert threshold most often "
               "in the time range."),
    # --- streaming: segments, tiers, alerts, sessions, dead letters -------------------------------
    Panel("rolling-churn-by-income-band", "Rolling churn propensity by income band", S, "line",
          (_m("avg", "avg_propensity", "Avg churn propensity"),),
          (_per_minute("window_start"), _terms("segment", 10, "key", "Income band")),
          filter=(("dimension", "income_band"),),
          note="Sliding-window churn propensity per income segment.", width=24),
    Panel("high-risk-share-by-tenure", "High-risk share by tenure band", S, "line",
          (_m("avg", "high_risk_share", "High-risk share"),),
          (_per_minute("window_start"), _terms("segment", 10, "key", "Tenure band")),
          filter=(("dimension", "tenure_band"),),
          note="Share of activities at or above the high-risk threshold, per tenure segment.", width=24),
    Panel("risk-tier-distribution", "Risk tier distribution", C, "donut",
          (_m("count", label="Customers"),), (_terms("risk_tier", 5, label="Risk tier"),),
          note="Customers by the tier of their current rolling churn propensity."),
    Panel("value-risk-quadrants", "Value / risk quadrants", C, "bar",
          (_m("count", label="Customers"),), (_terms("value_risk_quadrant", 4, "key", "Quadrant"),),
          note="Customers by income (high/low value) and rolling churn propensity (high/low risk)."),
    Panel("dead-letters-by-reason", "Dead letters by reason", DL, "bar_horizontal",
          (_m("count", label="Records"),), (_terms("reason", 20, label="Reason"),),
          note="Rejected activity records by validation rule."),
    Panel("alerts-over-time", "Churn alerts per minute", A, "bar",
          (_m("count", label="Alerts"),), (_per_minute("alert_time"),),
          note="Live churn alerts by event time.", width=24),
    Panel("sessions-over-time", "Sessions started per minute", SE, "bar",
          (_m("count", label="Sessions"),), (_per_minute("session_start"),),
          note="Web/mobile sessions by start time.", width=24),
)

HIGH_RISK_ONLY = (("high_risk", 1),)
VALUE_PANELS: tuple[Panel, ...] = (
    # --- headline numbers (one customers document per customer: sums and averages over customers) --
    Panel("avg-engagement-score", "Average engagement score", C, "metric",
          (_m("avg", "engagement_score", "Engagement score"),),
          note="Average engagement score (recency, frequency, monetary; 0 to 1) over customers.", width=8, height=5),
    Panel("high-risk-customers", "High-risk customers", C, "metric", (_m("sum", "high_risk", "Customers"),),
          note=f"Customers whose rolling churn propensity is in the high or critical tier "
               f"(from {catalog.HIGH_RISK_PROPENSITY}).", width=8, height=5),
    Panel("high-risk-share", "High-risk share", C, "metric", (_m("avg", "high_risk", "Share of customers"),),
          note="Share of customers in the high or critical risk tier.", width=8, height=5),
    Panel("cltv-at-risk", "Lifetime value at risk", C, "metric", (_m("sum", "cltv", "Lifetime value (USD)"),),
          filter=HIGH_RISK_ONLY, note="Total lifetime value of the high-risk customers.", width=8, height=5),
    Panel("revenue-at-risk", "Monthly revenue at risk", C, "metric",
          (_m("sum", "monthly_premium", "Monthly premium (USD)"),), filter=HIGH_RISK_ONLY,
          note="Monthly premium of the high-risk customers (0 for a customer without a policy).", width=8, height=5),
    Panel("avg-sessions-30d", "Average sessions in 30 days", C, "metric",
          (_m("avg", "sessions_30d", "Sessions"),),
          note="Average web/mobile sessions per customer in the frequency window.", width=8, height=5),
    # --- engagement --------------------------------------------------------------------------------
    Panel("engagement-score-distribution", "Engagement score distribution", C, "bar",
          (_m("count", label="Customers"),), (_terms("engagement_decile", 10, "key", "Engagement decile"),),
          note="Customers per tenth of the engagement score (decile 0: below 0.1, ..., 9: from 0.9).", width=24),
    Panel("engagement-segments", "Engagement segments", C, "donut",
          (_m("count", label="Customers"),), (_terms("engagement_segment", 5, label="Engagement segment"),),
          note="Customers by engagement segment (bands of the engagement score).", width=12),
    Panel("engagement-status", "Engagement status", C, "donut",
          (_m("count", label="Customers"),), (_terms("engagement_status", 5, label="Engagement status"),),
          note="Active, browsing only (sessions but no policy) or not active (silent for the inactivity gap).",
          width=12),
    Panel("value-engagement-quadrants", "Value / engagement quadrants", C, "bar",
          (_m("count", label="Customers"),), (_terms("value_engagement_quadrant", 4, "key", "Quadrant"),),
          note=f"Customers by lifetime value (high from {catalog.HIGH_VALUE_CLTV:,.0f} USD) and engagement "
               f"(engaged from a score of {catalog.ENGAGED_SCORE}).", width=24),
    Panel("inactivity-alerts-over-time", "Inactivity alerts per minute", IN, "bar",
          (_m("count", label="Inactivity alerts"),), (_per_minute("alert_time"),),
          note="Customers silent for the inactivity gap, by alert (event) time.", width=24),
    # --- who to call ---------------------------------------------------------------------------------
    Panel("at-risk-targets", "At-risk customers to target", C, "table",
          (_m("max", "value_at_risk", "Value at risk (USD/yr)"), _m("max", "recency_days", "Days since activity"),
           _m("max", "rolling_propensity", "Rolling churn propensity")),
          (_terms("customer_id", 10, label="Customer"),),
          note="Customers ranked by value at risk (annual premium x rolling churn propensity; ties by customer id).",
          width=24),
    Panel("high-value-engaged", "High-value engaged customers", C, "table",
          (_m("max", "cltv", "Lifetime value (USD)"), _m("max", "engagement_score", "Engagement score")),
          (_terms("customer_id", 10, label="Customer"),), filter=(("value_engagement_quadrant", "high-value/engaged"),),
          note="Customers of the high-value/engaged quadrant ranked by lifetime value (ties by customer id).",
          width=24),
)

DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard("customer-churn", "Customer churn — real time", "Churn analytics from the churnstream pipeline.",
              CHURN_PANELS),
    Dashboard("customer-value-engagement", "Customer value & engagement",
              "Customer value and engagement from the churnstream pipeline: engagement, value at risk, "
              "whom to target, inactivity alerts.", VALUE_PANELS),
)
assert len({d.id for d in DASHBOARDS}) == len({d.title for d in DASHBOARDS}) == len(DASHBOARDS), "duplicate dashboard"

# Every panel of every dashboard; a panel is on one dashboard (its Lens object's id is its own).
PANELS: tuple[Panel, ...] = tuple(p for d in DASHBOARDS for p in d.panels)
PANELS_BY_ID = {p.id: p for p in PANELS}
assert len(PANELS_BY_ID) == len(PANELS), "duplicate panel id"


# --- (b) the Elasticsearch aggregation ---------------------------------------------------------------

def _metric_aggs(panel: Panel) -> dict:
    es_op = {"avg": "avg", "max": "max", "min": "min", "sum": "sum", "cardinality": "cardinality"}
    return {f"m{i}": {es_op[m.op]: {"field": m.field}} for i, m in enumerate(panel.metrics) if m.op != "count"}


def _order(panel: Panel, b: Bucket):
    if b.order == "key":
        return {"_key": "asc"}
    first = panel.metrics[0]
    return [{"_count" if first.op == "count" else "m0": "desc"}, {"_key": "asc"}]


def time_fields(panel: Panel) -> tuple[str, ...]:
    """The fields a dashboard's time range filters this panel on, as Kibana decides: Lens hands its
    date-histogram fields to the search as the time fields, and the search falls back to the data
    view's time field when there are none; no time field at all means no time filter."""
    histograms = tuple(dict.fromkeys(b.field for b in panel.buckets if b.kind == "date_histogram"))
    if histograms:
        return histograms
    default = DATA_VIEW_TIME_FIELDS[panel.index]
    return (default,) if default else ()


TimeRange = tuple[int, int]   # (from, to) in epoch milliseconds, both included, as Kibana's range filter


def es_query(panel: Panel, time_range: TimeRange | None = None) -> dict:
    """The search body (size 0) whose aggregations are the panel; with ``time_range``, what the panel
    asks on a dashboard showing that range."""
    body: dict = {"size": 0, "track_total_hits": True}
    filters = [{"term": {f: v}} for f, v in panel.filter]
    if time_range is not None:
        filters += [{"range": {f: {"gte": time_range[0], "lte": time_range[1], "format": "epoch_millis"}}}
                    for f in time_fields(panel)]
    if filters:
        body["query"] = {"bool": {"filter": filters}}
    metrics = _metric_aggs(panel)
    aggs = dict(metrics)
    # Build from the innermost level out; every level carries the metrics so any level can be
    # ordered by them (as Lens does); the innermost level gives the values.
    for level in range(len(panel.buckets) - 1, -1, -1):
        b = panel.buckets[level]
        if b.kind == "terms":
            agg = {"terms": {"field": b.field, "size": b.size, "order": _order(panel, b)}}
        else:
            agg = {"date_histogram": {"field": b.field, "fixed_interval": b.interval, "min_doc_count": 1}}
        if aggs:
            agg["aggs"] = aggs
        aggs = {f"b{level}": agg, **(metrics if level else {})}
    if aggs:
        body["aggs"] = aggs
    return body


def _values(panel: Panel, node: dict, doc_count: int) -> tuple:
    out = []
    for i, m in enumerate(panel.metrics):
        out.append(doc_count if m.op == "count" else node.get(f"m{i}", {}).get("value"))
    return tuple(out)


def es_rows(panel: Panel, response: dict) -> list[tuple]:
    """Flatten a search response of ``es_query(panel)`` into rows (keys..., values...)."""
    aggs = response.get("aggregations", {})
    if not panel.buckets:
        total = response["hits"]["total"]
        return [_values(panel, aggs, total["value"] if isinstance(total, dict) else total)]
    rows: list[tuple] = []

    def walk(node, level, keys):
        for bucket in node.get(f"b{level}", {}).get("buckets", []):
            k = keys + (bucket["key"],)
            if level + 1 < len(panel.buckets):
                walk(bucket, level + 1, k)
            else:
                rows.append(k + _values(panel, bucket, bucket["doc_count"]))

    walk(aggs, 0, ())
    return rows


def run(es, index: str, panel: Panel, time_range: TimeRange | None = None) -> list[tuple]:
    """Run the panel's aggregation on ``index`` and return its rows (no index yet -> no rows)."""
    return es_rows(panel, es.search(index=index, body=es_query(panel, time_range), ignore_unavailable=True))


# --- (c) the same answer in plain Python ---------------------------------------------------------------

def _metric(m: Metric, docs: list[dict]):
    if m.op == "count":
        return len(docs)
    vals = [d[m.field] for d in docs if d.get(m.field) is not None]
    if m.op == "cardinality":
        return len(set(vals))
    if m.op == "sum":
        return math.fsum(vals)
    if not vals:
        return None
    if m.op == "avg":
        return math.fsum(vals) / len(vals)
    return float(max(vals) if m.op == "max" else min(vals))


def _key(b: Bucket, doc: dict):
    v = doc.get(b.field)
    if v is None:
        return None
    if b.kind == "date_histogram":
        step = INTERVAL_MS[b.interval]
        return v - v % step
    return int(v) if isinstance(v, bool) else v


def python_rows(panel: Panel, docs, time_range: TimeRange | None = None) -> list[tuple]:
    """The panel's rows computed from plain documents (dicts; dates as epoch milliseconds)."""
    docs = [d for d in docs if all(d.get(f) == v for f, v in panel.filter)]   # values typed as the field (tests check)
    if time_range is not None:
        lo, hi = time_range
        docs = [d for d in docs if all(d.get(f) is not None and lo <= d[f] <= hi for f in time_fields(panel))]
    if not panel.buckets:
        return [tuple(_metric(m, docs) for m in panel.metrics)]
    rows: list[tuple] = []

    def walk(docs, level, keys):
        b = panel.buckets[level]
        groups: dict = defaultdict(list)
        for d in docs:
            k = _key(b, d)
            if k is not None:
                groups[k].append(d)
        if b.kind == "date_histogram" or b.order == "key":
            ordered = sorted(groups)
        else:
            first = panel.metrics[0]
            score = {k: _metric(first, g) for k, g in groups.items()}
            ordered = sorted(groups, key=lambda k: (score[k] is None, -(score[k] or 0), k))
        if b.kind == "terms":
            ordered = ordered[:b.size]
        for k in ordered:
            if level + 1 < len(panel.buckets):
                walk(groups[k], level + 1, keys + (k,))
            else:
                rows.append(keys + (k,) + tuple(_metric(m, groups[k]) for m in panel.metrics))

    walk(docs, 0, ())
    return rows

"""The facts every part of the product must agree on, each declared once.

- TOPICS: the Kafka topics (logical name, partitions, retention or compaction): the job's three
  inputs, its result topics (one per index) and the dead letters.
- INDICES: every index: its name, the result topic the job writes it to and the Flink sink table
  behind that topic, the id and time fields, and each field's type, from which the Elasticsearch
  mapping and the Flink SQL column type both follow. The indexer (indexer/) copies each result
  topic into its index.
- enum_symbols(): the closed vocabularies, read from the Avro schemas (avro_schemas/ stays the one
  source of truth for the records).
- The business rules' numbers: risk tiers, customer bands, what "high risk" and "high value" mean.

Who reads it: foundation.topics (creation), the generator, flink_jobs.params (SQL parameters:
the SQL turns a Bands into a CASE with ${name:bands(expr)}), kibana (templates, data views),
the print sink, verify, and the plain-Python recomputation (its own logic, these numbers).
tests/test_catalog.py checks sql/sinks.sql against INDICES, as kibana/panels.py is checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache

from foundation import PROJECT_ROOT
from foundation.settings import Settings

SCHEMA_DIR = PROJECT_ROOT / "avro_schemas"

# ----------------------------------------------------------------------------------------- topics

ACTIVITY, DETAILS, OFFERS, DEAD_LETTERS = "customer_activity", "customer_details", "customer_offers", "churn_dead_letter"
# The three input topics, in the order a producer fills them: the tables before the events using them.
SOURCES = (DETAILS, OFFERS, ACTIVITY)
# Documents Elasticsearch refused for good (mapping conflict, parse error), with the reason: the
# indexer's own dead letters, apart from the job's.
INDEX_DEAD_LETTERS = "churn_index_dead_letter"

COMPACT = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
# Event streams are kept by size, not age: the generator's simulated clock (and any replay of old
# data) stamps records in the past, and Kafka's default 7-day time retention deleted them minutes
# after they were written - records acknowledged to the producer vanished before the job read them.
BY_SIZE = {"retention.ms": "-1", "retention.bytes": str(1 << 30)}   # per partition
# A result stream of events with unique ids (enriched activity): compacted, so that a replay of
# the job leaves one record per id, and bounded by the same size as the inputs: an index rebuilt
# from it goes back as far as its last 1 GiB per partition (~1.8M enriched documents each).
COMPACT_BY_SIZE = {"cleanup.policy": "compact,delete", "min.compaction.lag.ms": "0", **BY_SIZE}
# Result topics: one partition per indexer that can work in parallel.
RESULT_PARTITIONS = 3


@dataclass(frozen=True)
class Topic:
    name: str            # logical name; Settings.topic() adds the prefix
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- indices

# A field's type: its Elasticsearch mapping type and the Flink SQL type of the sink column.
TYPES = {
    "keyword": "STRING", "text": "STRING", "date": "TIMESTAMP(3)", "integer": "INT", "long": "BIGINT",
    "double": "DOUBLE", "boolean": "BOOLEAN",
}
K, D, I, L, F, B, T = "keyword", "date", "integer", "long", "double", "boolean", "text"


@dataclass(frozen=True)
class Index:
    key: str                   # how code names it
    name: str                  # after the index prefix (Settings.index())
    topic: str                 # the result topic the job writes and the indexer reads (Settings.topic())
    table: str                 # the Flink sink table writing that topic (sql/sinks.sql)
    id_field: str              # the document id, also the record key (the sink table's doc_id)
    time_field: str            # a document's event time (which data views filter by it: kibana/panels.py)
    fields: dict[str, str]     # field -> type (a key of TYPES), in the sink table's column order
    # Keyed results (a window, a customer, an alert) are compacted: the topic keeps each id's last
    # document, so reading it from the start rebuilds the whole index.
    topic_config: dict[str, str] = field(default_factory=lambda: COMPACT)

    def __post_init__(self):
        unknown = {t for t in self.fields.values() if t not in TYPES}
        assert not unknown, f"{self.key}: unknown field types {unknown}"
        assert self.id_field in self.fields and self.fields.get(self.time_field) == D, self.key


INDICES = (
    Index("enriched", "enriched", "churn_enriched", "kafka_enriched", "activity_id", "event_time", {
        "activity_id": K, "customer_id": I, "offer_id": I, "activity_type": K, "channel": K,
        "propensity_to_churn": F, "ip_hash": K, "event_time": D, "customer_known": B, "email_hash": K,
        "gender": K, "income": I, "fico": I, "years_active": I, "income_band": K, "fico_band": K,
        "tenure_band": K, "offer_known": B, "offer_name": K, "offer_url": K, "product_line": K,
        "monthly_premium": F}, COMPACT_BY_SIZE),
    Index("segments", "segments", "churn_segments", "kafka_segments", "window_id", "window_start", {
        "window_id": K, "window_start": D, "window_end": D, "dimension": K, "segment": K, "events": L,
        "avg_propensity": F, "max_propensity": F, "high_risk_share": F}),
    Index("customers", "customers", "churn_customers", "kafka_customers", "customer_id", "last_activity_time", {
        "customer_id": I, "last_activity_id": K, "last_activity_type": K, "last_activity_time": D,
        "rolling_propensity": F, "recent_events": L, "risk_tier": K, "value_risk_quadrant": K,
        "evaluated_at": D, "monthly_premium": F, "cltv": F, "value_at_risk": F, "recency_days": F,
        "activities_30d": I, "sessions_30d": I, "engagement_score": F, "engagement_segment": K,
        "engagement_status": K, "engagement_decile": I, "high_risk": I, "value_engagement_quadrant": K}),
    Index("alerts", "alerts", "churn_alerts", "kafka_alerts", "alert_id", "alert_time", {
        "alert_id": K, "customer_id": I, "alert_time": D, "previous_propensity": F, "rolling_propensity": F}),
    Index("inactivity", "inactivity", "churn_inactivity", "kafka_inactivity", "alert_id", "alert_time", {
        "alert_id": K, "customer_id": I, "alert_time": D, "last_activity_time": D, "last_activity_type": K,
        "inactive_days": F, "monthly_premium": F, "value_at_risk": F, "rolling_propensity": F, "risk_tier": K}),
    Index("sessions", "sessions", "churn_sessions", "kafka_sessions", "session_id", "session_start", {
        "session_id": K, "customer_id": I, "session_start": D, "session_end": D, "duration_seconds": I,
        "events": L, "avg_propensity": F}),
    Index("dead_letters", "dead-letters", DEAD_LETTERS, "kafka_dead_letters", "dead_letter_id", "kafka_time", {
        "dead_letter_id": K, "reason": K, "source_topic": K, "source_partition": I, "source_offset": L,
        "kafka_time": D, "payload": T, "late_by_ms": L}, BY_SIZE),
)
INDEX = {i.key: i for i in INDICES}

# Customers and offers are tables (latest value per key): compacted. Activity is an event stream.
# The job's dead letters are the dead-letters index's result topic (one partition, as before).
TOPICS = (
    Topic(ACTIVITY, 3, BY_SIZE),
    Topic(DETAILS, 3, COMPACT),
    Topic(OFFERS, 1, COMPACT),
    Topic(DEAD_LETTERS, 1, BY_SIZE),
    *(Topic(i.topic, RESULT_PARTITIONS, i.topic_config) for i in INDICES if i.topic != DEAD_LETTERS),
    Topic(INDEX_DEAD_LETTERS, 1, BY_SIZE),
)


def result_topics(settings: Settings) -> dict[str, str]:
    """Index key -> its result topic's full name under the settings' prefix."""
    return {i.key: settings.topic(i.topic) for i in INDICES}


def index_names(settings: Settings) -> dict[str, str]:
    """Index key -> the index's full name under the settings' prefix."""
    return {i.key: settings.index(i.name) for i in INDICES}


def date_fields() -> frozenset[str]:
    """Every field that holds a timestamp, in any index (compared as instants, not as text)."""
    return frozenset(name for i in INDICES for name, typ in i.fields.items() if typ == D)


# ------------------------------------------------------------------------------------ vocabularies

@cache
def enum_symbols(schema_file: str, field_name: str) -> tuple[str, ...]:
    """The symbols of an enum field of one of the project's Avro schemas."""
    schema = json.loads((SCHEMA_DIR / schema_file).read_text())
    for f in schema["fields"]:
        if f["name"] == field_name:
            return tuple(f["type"]["symbols"])
    raise KeyError(f"{schema_file} has no field {field_name}")


def activity_types() -> tuple[str, ...]:
    return enum_symbols("customer_activity.avsc", "activity_type")


def channels() -> tuple[str, ...]:
    return enum_symbols("customer_activity.avsc", "channel")

# ---------------------------------------------------------------------------------- business rules


@dataclass(frozen=True)
class Bands:
    """Labels for ranges of a number: below edges[0] is labels[0], below edges[1] labels[1], ...,
    from the last edge on labels[-1]. A missing number is ``unknown`` (None: no such label)."""

    edges: tuple[float, ...]
    labels: tuple[str, ...]
    unknown: str | None = "unknown"

    def __post_init__(self):
        assert len(self.labels) == len(self.edges) + 1 and list(self.edges) == sorted(set(self.edges)), self

    def lower_edge(self, label: str) -> float:
        """The smallest value that gets ``label``."""
        i = self.labels.index(label)
        assert i > 0, f"{label} has no lower edge"
        return self.edges[i - 1]


# A customer's rolling churn propensity -> risk tier.
RISK_TIERS = Bands((0.3, 0.6, 0.8), ("low", "medium", "high", "critical"), unknown=None)
# Customer segments: yearly income, FICO score, years as a customer.
INCOME_BANDS = Bands((30_000, 60_000, 100_000, 150_000), ("<30k", "30-60k", "60-100k", "100-150k", "150k+"))
FICO_BANDS = Bands((580, 670, 740, 800), ("poor", "fair", "good", "very good", "exceptional"))
TENURE_BANDS = Bands((2, 5, 10, 20), ("0-1y", "2-4y", "5-9y", "10-19y", "20y+"))

# "High risk" is the high tier and above (segments' high_risk_share, the value/risk quadrant);
# "high value" the income bands from 100k. Defined through the tiers and bands, so that moving a
# tier or a band edge moves them too.
HIGH_RISK_PROPENSITY = RISK_TIERS.lower_edge("high")
HIGH_VALUE_INCOME = INCOME_BANDS.lower_edge("100-150k")
# The default of `churnstream job --alert-threshold`: a customer's rolling propensity crossing it is an alert.
ALERT_THRESHOLD = 0.7


# Customer value and engagement (sql/transform.sql step 8; README "Customer value and engagement").
# A streaming job cannot min-max its components over a population that keeps changing (a score
# would move when somebody else acts), so each is scaled by a fixed reference and capped at 1:
# recency falls linearly from 1 at the last activity to 0 at the inactivity gap; frequency is half
# activities, half web/mobile sessions in the frequency window, against one activity a day and one
# session every three days; monetary is the premium against the top of the offers' premium range
# (avro_schemas/customer_offers.avsc). Weights as in the batch analysis this grew from.
ENGAGEMENT_WEIGHTS = {"recency": 0.4, "frequency": 0.3, "monetary": 0.3}
ACTIVITY_SCALE = 30.0       # activities in the window for a full frequency score
SESSION_SCALE = 10.0        # web/mobile sessions in the window for a full frequency score
PREMIUM_SCALE = 450.0       # monthly premium (USD) for a full monetary score
ENGAGEMENT_SEGMENTS = Bands((0.2, 0.4, 0.6), ("at_risk", "low", "medium", "high"), unknown=None)
ENGAGEMENT_STATUSES = ("active", "browsing_only", "not_active")
# The value/engagement quadrant: lifetime value from 10k USD is high value; a medium or high
# engagement segment is engaged.
HIGH_VALUE_CLTV = 10_000.0
ENGAGED_SCORE = ENGAGEMENT_SEGMENTS.lower_edge("medium")

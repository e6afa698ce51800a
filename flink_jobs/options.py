"""What the job does (its flags); where it connects comes from Settings, the rules' numbers from
foundation.catalog."""

from __future__ import annotations

from dataclasses import dataclass

from foundation import catalog


@dataclass(frozen=True)
class JobOptions:
    """What the job does (flags); where it connects comes from Settings."""

    bounded: bool = False                  # stop at the offsets present at start (tests, demo)
    format: str = "json"                   # json or avro (Confluent wire format, Schema Registry)
    startup_mode: str = "earliest-offset"
    group_id: str = "churnstream-pipeline"
    window_size_seconds: int = 60
    window_slide_seconds: int = 10
    rolling_events: int = 10               # OVER window: the customer's last N events
    alert_threshold: float = catalog.ALERT_THRESHOLD
    session_gap_minutes: int = 30
    out_of_orderness_seconds: int = 5
    # How long a customer/offer partition may be silent before it stops holding back the temporal
    # joins (those topics are quiet by nature). A bounded run sets none (every source ends with a
    # final watermark).
    idle_timeout: str = "5 s"
    # How long an activity partition may be silent, while the others of its reader deliver, before
    # it stops holding results back: the bound on what a quiet partition costs (sql/sources.sql).
    # Longer than a partition's leader fail-over on a cluster (about 10-20 s), so a broker lost
    # there makes no record late. A reader (source subtask) silent on every partition keeps its
    # watermark for the reader timeout (outlasting a broker outage or a stalled producer) and then
    # goes idle: the bound when a whole subtask has only quiet partitions.
    partition_idle_timeout_seconds: int = 30
    reader_idle_timeout_seconds: int = 300
    partition_discovery_seconds: int = 10
    max_clock_skew_hours: int = 24
    max_payload_chars: int = 65_536
    customer_state_interval_seconds: int = 1  # customers index: each customer's last state per interval
    # Duplicate activity ids are recognised for this long after the first copy arrives (state TTL of
    # the deduplication and of the first-N that reports the copies: a flag and a count per id).
    dedup_horizon_minutes: int = 10
    # Customer engagement (transform.sql step 8): no activity for the gap is an inactivity alert and
    # status not_active; frequency counts the window (in 30 buckets of window/30); a quiet customer's
    # document is re-evaluated every refresh interval until the window has drained. The defaults are
    # the product's; demos and tests compress them to the minutes their data spans.
    inactivity_gap_seconds: int = 7 * 86_400
    engagement_window_seconds: int = 30 * 86_400
    engagement_refresh_seconds: int = 86_400

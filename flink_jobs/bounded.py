"""Where a bounded run ends: the offsets it reads up to, and the event time its input reaches.

A bounded run (--bounded: tests, the demo, benchmarks) reads the activity records present when it
starts, up to the offsets listed here, and no further, so that what it reads does not depend on
a producer still writing. Before the job starts, sql/bounded_end.sql reads the same records and
returns the newest event time among them: less the out-of-orderness, that is the event time the
input ends at, which customer_engagement (flink_udfs/CustomerEngagement.java) needs in every
parallel instance alike; an instance only sees its own customers' records, and a bounded input's
final watermark (the end of time) says nothing about where the data ended. With it the job's
documents are the same at every parallelism.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from foundation import PROJECT_ROOT
from foundation.settings import Settings
from foundation.topics import end_offsets
from flink_jobs import sql_runner

log = logging.getLogger("churnstream.job")

END_QUERY = PROJECT_ROOT / "sql" / "bounded_end.sql"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def stop_offsets(settings: Settings, topic: str) -> str:
    """The end offset of every partition of ``topic`` now, as Flink's
    'scan.bounded.specific-offsets' takes them: 'partition:0,offset:42;partition:1,offset:7'."""
    return ";".join(f"partition:{p},offset:{end}" for p, end in end_offsets(settings, topic).items())


def newest_event_time(t_env, values: dict[str, object]) -> int | None:
    """Run sql/bounded_end.sql on ``t_env``, a batch table environment with the job's source tables
    (created with ``values``): the newest event time (epoch ms) of the bounded input, None when it
    holds no activity record. (Batch: its one row arrives with the job's end; a streaming query's
    running maximum would be read while the local cluster shuts down, ~30 s and a warning later.)"""
    (query,) = sql_runner.load([END_QUERY], values).statements
    t0 = time.monotonic()
    conf = t_env.get_config()
    name = conf.get_configuration().get_string("pipeline.name", "churnstream")
    conf.set("pipeline.name", f"{name} (where the bounded input ends)")
    with t_env.execute_sql(query).collect() as rows:
        (newest,) = next(rows)
    if newest is None:
        log.info("job: the bounded input holds no activity record (%.1f s)", time.monotonic() - t0)
        return None
    ms = (datetime.fromisoformat(newest).replace(tzinfo=timezone.utc) - EPOCH) // timedelta(milliseconds=1)
    log.info("job: the bounded input's newest event time is %s (%d), read in %.1f s", newest, ms,
             time.monotonic() - t0)
    return ms

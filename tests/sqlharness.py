"""Run the project's transformation SQL on literal rows: no Kafka, no Elasticsearch.

The source tables are the real DDL from sql/sources.sql with the Kafka parts swapped for JSON
files (metadata columns become plain columns), so the rowtime expression, watermarks and primary
keys under test are the ones the job uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from foundation.settings import Settings
from flink_jobs import params, pipeline, sql_runner
from flink_jobs.options import JobOptions

T0 = 1_700_000_000_000


def ts_text(ms: int) -> str:
    from datetime import datetime, timezone

    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}Z"


def _as_file_table(ddl: str, folder: Path) -> str:
    ddl = re.sub(r"METADATA FROM '[^']+' VIRTUAL", "", ddl)
    head = ddl[: ddl.rindex("WITH (")]
    # A watermark after every row (the job emits one every 200 ms): which literal row is behind the
    # watermark, a 'late' dead letter, then depends on the rows alone.
    return head + (f"WITH ('connector' = 'filesystem', 'path' = '{folder.as_uri()}', 'format' = 'json', "
                   "'json.timestamp-format.standard' = 'SQL', 'scan.watermark.emit.strategy' = 'on-event')")


def _write(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def activity_row(key, payload, offset, kafka_ms, partition=0) -> dict:
    if isinstance(payload, dict):
        payload = json.dumps(payload)
    return {"record_key": key, "payload": payload, "kafka_partition": partition, "kafka_offset": offset,
            "kafka_ts": ts_text(kafka_ms)}


def customer_row(cid, updated_at, **over) -> dict:
    row = {"customer_key": str(cid), "customer_id": cid, "first_name": "A", "last_name": "B",
           "email": f"c{cid}@example.com", "gender": "female", "income": 50000, "fico": 700, "years_active": 3,
           "updated_at": updated_at}
    row.update(over)
    return row


def offer_row(oid, updated_at, **over) -> dict:
    row = {"offer_key": str(oid), "offer_id": oid, "offer_name": f"Offer {oid}", "offer_url": "https://x.test",
           "product_line": "auto", "monthly_premium": 25.0, "updated_at": updated_at}
    row.update(over)
    return row


class Harness:
    def __init__(self, tmp: Path, activities, customers, offers, opts: JobOptions | None = None):
        self.opts = opts or JobOptions(bounded=True)
        settings = Settings(run_dir=str(tmp / "run"))
        self.t_env = pipeline.table_env(settings)
        pipeline.register_functions(self.t_env, b"test-key", self.opts)
        values = params.build(settings, self.opts)
        sources = sql_runner.load([pipeline.SOURCES["json"]], values)
        for k, v in sources.config.items():
            self.t_env.get_config().set(k, v)
        data = {"activity_raw": activities, "customers": customers, "offers": offers}
        for ddl in sources.statements:
            table = re.search(r"CREATE TABLE (\w+)", ddl)
            if table is None:            # a view over the tables (entity_dead_letters): as it is
                self.t_env.execute_sql(ddl)
                continue
            name = table.group(1)
            _write(tmp / name, data[name])
            self.t_env.execute_sql(_as_file_table(ddl, tmp / name))
        sql_runner.apply(self.t_env, sql_runner.load([pipeline.TRANSFORM], values))

    def rows(self, view: str, *columns: str) -> list[tuple]:
        table = self.t_env.from_path(view)
        if columns:
            table = table.select(*[__import__("pyflink.table.expressions", fromlist=["col"]).col(c) for c in columns])
        with table.execute().collect() as results:
            return [tuple(r) for r in results]

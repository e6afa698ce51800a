"""The catalog (foundation/catalog.py) against everything that must agree with it: the sink tables
in sql/sinks.sql, the statement set in sql/pipeline.sql, the SQL parameters, the recomputation's
rules. Adding an index is one catalog entry, its view and its INSERT: these tests name what is
missing."""

from __future__ import annotations

import re

import pytest

from foundation import catalog
from foundation.catalog import INDEX, INDICES, Bands
from foundation.settings import Settings
from flink_jobs import sql_runner
from flink_jobs.options import JobOptions
from flink_jobs.params import SQL_DIR, build

SINKS = sql_runner.split_statements((SQL_DIR / "sinks.sql").read_text())
TABLE = re.compile(r"^CREATE TABLE (\w+) \((.*)\) WITH \((.*)\)$", re.S)


def sink_tables() -> dict[str, tuple[list[tuple[str, str]], str, str]]:
    """Every sink table of sinks.sql: name -> (columns as (name, type), primary key, WITH options)."""
    out = {}
    for stmt in SINKS:
        m = TABLE.match(stmt) if isinstance(stmt, str) else None
        if not m:
            continue
        body = m.group(2)
        key = re.search(r"PRIMARY KEY \((\w+)\) NOT ENFORCED", body).group(1)
        columns = [tuple(c.strip().split(None, 1)) for c in body.split("PRIMARY KEY")[0].split(",") if c.strip()]
        out[m.group(1)] = (columns, key, m.group(3))
    return out


@pytest.mark.parametrize("index", INDICES, ids=[i.key for i in INDICES])
def test_every_index_has_its_sink_table_with_the_catalogs_fields(index):
    tables = sink_tables()
    assert index.table in tables, f"sql/sinks.sql has no CREATE TABLE {index.table} for the index {index.key}"
    columns, key, options = tables[index.table]
    # doc_id: the record key (the document id), then the document's fields
    assert columns == [("doc_id", "STRING")] + [(name, catalog.TYPES[typ]) for name, typ in index.fields.items()], \
        index.table
    assert key == "doc_id"
    assert f"'topic' = '${{topic_{index.key}}}'" in options


def test_every_result_topic_is_a_catalog_topic_and_no_sink_is_outside_the_catalog():
    result_tables = {name for name, (_, _, options) in sink_tables().items() if "${result_options:options}" in options}
    assert result_tables == {i.table for i in INDICES}
    topics = {t.name: t for t in catalog.TOPICS}
    for index in INDICES:
        assert topics[index.topic].partitions >= 1, index.key
        # a topic read from its beginning rebuilds the index: keyed results are compacted
        assert "compact" in topics[index.topic].config.get("cleanup.policy", "") or index.key == "dead_letters"
    assert catalog.INDEX_DEAD_LETTERS in topics


def test_the_insert_writes_the_id_field_as_the_record_key():
    pipeline = sql_runner.split_statements((SQL_DIR / "pipeline.sql").read_text())
    inserts = {re.match(r"INSERT INTO (\w+)", s).group(1): s for block in pipeline if isinstance(block, tuple)
               for s in block[1]}
    for index in INDICES:
        first = re.search(r"SELECT\s+(.+?),", inserts[index.table], re.S).group(1).strip()
        assert first in (index.id_field, f"CAST({index.id_field} AS STRING)"), (index.table, first)


def test_the_statement_set_writes_every_index():
    pipeline = sql_runner.split_statements((SQL_DIR / "pipeline.sql").read_text())
    inserts = [stmt for block in pipeline if isinstance(block, tuple) for stmt in block[1]]
    targets = {re.match(r"INSERT INTO (\w+)", s).group(1) for s in inserts}
    assert {i.table for i in INDICES} <= targets, "an index without its INSERT in sql/pipeline.sql"


def test_index_names_follow_the_prefix():
    s = Settings(index_prefix="x-")
    assert catalog.index_names(s) == {i.key: f"x-{i.name}" for i in INDICES}
    assert catalog.index_names(s)["dead_letters"] == "x-dead-letters"
    assert catalog.date_fields() >= {"event_time", "window_start", "window_end", "kafka_time"}
    assert "customer_id" not in catalog.date_fields()


def test_topics_and_vocabularies():
    assert [t.name for t in catalog.TOPICS][:4] == [catalog.ACTIVITY, catalog.DETAILS, catalog.OFFERS,
                                                   catalog.DEAD_LETTERS]
    assert {catalog.INDEX[k].topic for k in ("enriched", "alerts")} <= {t.name for t in catalog.TOPICS}
    assert catalog.SOURCES == (catalog.DETAILS, catalog.OFFERS, catalog.ACTIVITY)
    assert "login" in catalog.activity_types() and "web" in catalog.channels()
    with pytest.raises(KeyError):
        catalog.enum_symbols("customer_activity.avsc", "nope")


# --- business rules: one number each, used by the SQL and by the recomputation ----------------------

def test_bands_render_as_a_case_expression():
    b = Bands((10, 20.5), ("low", "mid", "it's high"))
    assert sql_runner.bands_case(b, "c.x") == (
        "CASE WHEN c.x IS NULL THEN 'unknown' WHEN c.x < 10 THEN 'low' WHEN c.x < 20.5 THEN 'mid' "
        "ELSE 'it''s high' END")
    assert sql_runner.bands_case(Bands((0.3,), ("a", "b"), unknown=None), "p") == \
        "CASE WHEN p < 0.3 THEN 'a' ELSE 'b' END"
    assert sql_runner.substitute("${t:bands(x.y)} AS t", {"t": b}).startswith("CASE WHEN x.y IS NULL")
    with pytest.raises(sql_runner.SqlError):
        sql_runner.bands_case(Bands(("1); DROP",), ("a", "b")), "x")   # noqa - edges are numbers only
    with pytest.raises(AssertionError):
        Bands((2, 1), ("a", "b", "c"))


def test_the_sql_gets_its_tiers_and_bands_from_the_catalog():
    values = build(Settings(), JobOptions())
    assert values["risk_tiers"] is catalog.RISK_TIERS and values["income_bands"] is catalog.INCOME_BANDS
    assert values["fico_bands"] is catalog.FICO_BANDS and values["tenure_bands"] is catalog.TENURE_BANDS
    assert values["high_risk_threshold"] == catalog.HIGH_RISK_PROPENSITY == 0.6
    assert values["high_value_income"] == catalog.HIGH_VALUE_INCOME == 100_000
    transform = (SQL_DIR / "transform.sql").read_text()
    code = "\n".join(line.split("--")[0] for line in transform.splitlines())
    for rule in ("risk_tiers", "income_bands", "fico_bands", "tenure_bands"):
        assert f"${{{rule}:bands(" in code, rule
    # No tier or band edge written into the SQL itself.
    assert not re.search(r"\b(0\.3|0\.8|30000|60000|150000|580|670|740|800)\b", code)


def test_the_recomputation_reads_the_same_numbers_with_its_own_logic():
    from churnstream import expected

    tiers = catalog.RISK_TIERS
    for p, tier in [(0.0, "low"), (tiers.edges[0], "medium"), (0.59999, "medium"), (tiers.edges[1], "high"),
                    (tiers.edges[2], "critical"), (1.0, "critical")]:
        assert expected.risk_tier(p) == tier, p
    assert expected.income_band(None) == "unknown"
    assert expected.income_band(catalog.HIGH_VALUE_INCOME) == "100-150k"
    assert expected.fico_band(799) == "very good" and expected.tenure_band(20) == "20y+"

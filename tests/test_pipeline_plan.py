"""The compiled plan of the whole job: shared work is planned once (no Kafka or Elasticsearch needed).

Before views were registered as Tables, the inserts each expanded the views again: the
payload was parsed ~45 times per record and both temporal joins ran twice.
"""

from __future__ import annotations

import re

import pytest

from foundation.settings import Settings
from flink_jobs import pipeline, sql_runner
from flink_jobs.options import JobOptions

pytestmark = pytest.mark.flink


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    settings = Settings.from_env(run_dir=str(tmp_path_factory.mktemp("run")))
    return pipeline.build(settings, JobOptions())   # unbounded: a bounded build first reads Kafka


@pytest.fixture(scope="module")
def plan(built) -> str:
    t_env, script = built
    return sql_runner.statement_set(t_env, script.inserts).explain().split("== Optimized Execution Plan ==")[-1]


def operators(plan: str, name: str) -> int:
    return len(re.findall(rf"^[\s:|+-]*{name}\(", plan, re.MULTILINE))


def test_each_source_is_read_once(plan):
    assert operators(plan, "TableSourceScan") == 3


def test_enrichment_runs_once_for_all_sinks(plan):
    assert operators(plan, "TemporalJoin") == 2          # customers + offers, not per insert
    # Pseudonymisation is a Java function (flink_udfs/Pseudonymise.java): no row goes to a Python
    # worker, and it is called in one place for all sinks (its two columns of the enriched view).
    assert operators(plan, "PythonCalc") == 0
    assert len(re.findall(r"pseudonymise\(", plan)) == 2


def test_rolling_state_is_shared_by_customers_and_alerts(plan):
    assert operators(plan, "OverAggregate") == 1
    assert operators(plan, "Match") == 2     # step 5a's one-row sort, step 6's alerts


def test_every_field_is_extracted_once(plan):
    """The payload is parsed by one parse_activity call (flink_udfs/ParseActivity.java) in one
    Correlate, never by JSON_VALUE (a parse per call); the event-time expression (the source's
    rowtime column and watermark) calls it with the same payload, which the function's per-thread
    last-record cache answers without parsing again."""
    correlate = [line for line in plan.splitlines() if "Correlate(invocation=[$UNNEST_ROWS$" in line
                 and "parse_activity" in line]
    assert len(correlate) == 1
    assert "JSON_VALUE" not in plan and "IS JSON" not in plan.upper()
    other = sum(line.count("parse_activity") for line in plan.splitlines() if line not in correlate)
    assert other <= 4, other


def test_every_result_topic_is_written_by_the_one_job(plan):
    from foundation.catalog import INDICES

    sinks = re.findall(r"Sink\(table=\[default_catalog\.default_database\.(\w+)\]", plan)
    assert sorted(sinks) == sorted(i.table for i in INDICES)


def test_a_child_of_a_loopback_run_still_starts_its_gateway():
    """Running a UDF job in loopback mode merges the worker's environment, PYFLINK_GATEWAY_DISABLED=true
    among it, into the driver's; its child processes (the fault tests' `churnstream job`) inherit that."""
    import os
    import subprocess
    import sys

    code = ("from foundation.settings import Settings; from flink_jobs import pipeline; "
            "t = pipeline.table_env(Settings.from_env()); print(t.execute_sql('SELECT 1 + 1').collect().next()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYFLINK_GATEWAY_DISABLED="true"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "2"


def test_only_the_deduplication_and_its_report_expire(built):
    """The job submits its compiled plan with the dedup horizon as the TTL of the deduplication and
    of the first-N that reports the copies; no other state may expire (a TTL on the temporal joins
    would forget quiet customers), and no sink keeps every row it wrote (upsert materializer)."""
    from flink_jobs import compiled_plan

    t_env, script = built
    plan = compiled_plan.compile_plan(t_env, script.inserts)
    wanted = pipeline.dedup_state_ttls(JobOptions())
    for (node_type, name), ttl in wanted.items():
        set_count = compiled_plan.set_state_ttl(plan, node_type, name, ttl)   # (the plan holds connector options:
        assert set_count == 1, (node_type, name)                               # keep it out of failure output)
    ttls = compiled_plan.state_ttls(plan)
    assert {k: ttls.pop(k) for k in wanted} == wanted == dict.fromkeys(wanted, "10 min")
    # Flink 1.20 also listed the ChangelogNormalize state of the versioned views; 2.x plans need none.
    assert set(ttls.values()) <= {"0 ms"}, ttls
    assert ("stream-exec-sink", "sinkMaterializeState") not in ttls

"""Shared fixtures. Integration tests get the real local stack, started once per session.

The stack is reused when already running (and then left running); a stack this session started is
stopped at the end. Each session uses its own topic and index prefix, so runs never see each
other's data.
"""

from __future__ import annotations

import os
import uuid

import pytest

from foundation.settings import Settings


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in item.keywords or "slow" in item.keywords:
            continue
        item.add_marker(pytest.mark.unit)


def pytest_configure(config):
    config.addinivalue_line("markers", "unit: pure logic on literal rows (added automatically)")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(base_settings):
    """Local settings pointing at the running stack, with a per-session topic/index prefix."""
    from foundation.localstack import stack as local_stack
    from foundation.catalog import TOPICS
    from foundation.topics import delete_topics, ensure_topics

    was_running = all(r["ready"] for r in local_stack.status(base_settings))
    local = local_stack.up(base_settings)
    tag = f"t{os.getpid()}{uuid.uuid4().hex[:4]}"
    settings = local.with_(topic_prefix=f"{tag}-", index_prefix=f"{tag}-churn-")
    ensure_topics(settings)
    yield settings
    delete_topics(settings, [settings.topic(t.name) for t in TOPICS] + [f"{settings.topic_prefix}probe"])
    try:
        settings.es_client().indices.delete(index=f"{settings.index_prefix}*")
    except Exception:  # noqa: BLE001
        pass
    if not was_running and not os.environ.get("CHURNSTREAM_KEEP_STACK"):
        local_stack.down(base_settings)


def index_all(settings):
    """The indexer over `settings`' result topics until every partition is read to its end."""
    from indexer import Indexer, IndexerOptions

    return Indexer(settings, IndexerOptions(group_id=f"{settings.topic_prefix}indexer", until_caught_up=True)).run()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A standalone Flink session cluster with the compose TaskManager's properties and JVM_ARGS."""
    from faultkit import compose_flink
    from foundation.localstack.flink_cluster import FlinkSessionCluster
    from test_outages import _free_ports

    props, jvm_args = compose_flink()
    # The addresses are this machine's; the job sets its own checkpoint folder. Everything else
    # (memory sizes, slots) is what the compose cluster gets.
    props = {k: v for k, v in props.items() if k not in ("jobmanager.rpc.address", "execution.checkpointing.dir",
                                                         "execution.checkpointing.savepoint-dir")}
    rest_port, rpc_port = _free_ports(2)
    c = FlinkSessionCluster(tmp_path_factory.mktemp("flink-session"), rest_port, rpc_port, props, jvm_args)
    try:
        yield c.up()
    finally:
        c.down()


class PipelineRun:
    """One seeded pipeline run shared by every end-to-end test:
    generator -> Kafka -> Flink -> Kafka result topics -> indexer -> Elasticsearch."""

    def __init__(self, settings, config, ledger, opts, expected):
        self.settings, self.config, self.ledger, self.opts, self.expected = settings, config, ledger, opts, expected


# Fixed start time: the same seed and options give the same records, and the same expected results.
PIPELINE_START_MS = 1_767_225_600_000   # 2026-01-01T00:00:00Z


@pytest.fixture(scope="session")
def pipeline_run(stack):
    from churnstream.expected import compute
    from foundation.pii import hash_key
    from flink_jobs import pipeline
    from flink_jobs.options import JobOptions
    from generator import GeneratorConfig, expected_records, produce
    from kibana.templates import install_templates

    install_templates(stack)
    config = GeneratorConfig(seed=7, customers=300, offers=15, activities=6_000, start_ms=PIPELINE_START_MS,
                             events_per_second=10.0, skew="zipf", customer_update_rate=0.02, late_rate=0.02,
                             duplicate_rate=0.01, malformed_rate=0.005, invalid_rate=0.005)
    ledger = produce(stack, config, rate=0, workers=1, progress=False)
    # 10 minutes of event time: engagement's days are compressed to seconds (gap 1 min, window 5 min,
    # refresh 20 s) so that every segment, status and inactivity alert occurs.
    opts = JobOptions(bounded=True, inactivity_gap_seconds=60, engagement_window_seconds=300,
                      engagement_refresh_seconds=20)
    # At parallelism 2 (the demo runs at 1, the scale-out tests at 4): every index is exact at any.
    pipeline.run(stack.with_(parallelism=2), opts, wait=True)
    index_all(stack)
    records = [(r.topic, r.key, r.value, r.timestamp_ms) for r in expected_records(config)]
    return PipelineRun(stack, config, ledger, opts, compute(records, opts, hash_key(stack)))

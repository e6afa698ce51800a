"""Shared fixtures. Integration tests get the real local stack, started once per session.

The stack is reused when already running (and then left running); a stack this session started is
stopped at the end. Each session uses its own topic and index prefix, so runs never see each
other's data.
"""

from __future__ import annotations

import os
import uuid

import pytest

from churnstream.settings import Settings


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
    from churnstream.localstack import stack as local_stack
    from churnstream.topics import TOPICS, delete_topics, ensure_topics

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

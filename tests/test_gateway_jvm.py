"""The options of PyFlink's JVM (pure string logic): the local mini-cluster runs the whole job in it."""

from __future__ import annotations

from flink_jobs.pipeline import AVRO_LIMIT_OPTS, gateway_jvm_args


def test_a_local_job_gets_the_heap_cap_and_the_avro_limits():
    assert gateway_jvm_args("", "1g") == f"{AVRO_LIMIT_OPTS} -Xmx1g -XX:+UseParallelGC"


def test_a_session_cluster_client_keeps_the_default_heap():
    assert gateway_jvm_args("", None) == AVRO_LIMIT_OPTS


def test_the_callers_own_options_and_heap_win_and_nothing_is_added_twice():
    mine = "-XX:+UseG1GC -Xmx3g"
    once = gateway_jvm_args(mine, "1g")
    assert once == f"{mine} {AVRO_LIMIT_OPTS}"
    assert gateway_jvm_args(once, "1g") == once


def test_flink_heap_is_checked_like_the_other_heaps():
    import pytest

    from foundation import UserError
    from foundation.settings import Settings

    assert Settings.from_env({"CHURNSTREAM_FLINK_HEAP": "1536m"}).flink_heap == "1536m"
    with pytest.raises(UserError, match=r"CHURNSTREAM_FLINK_HEAP='lots' is not a JVM heap size; set it to one, "
                                        r"e\.g\. CHURNSTREAM_FLINK_HEAP=1g\."):
        Settings.from_env({"CHURNSTREAM_FLINK_HEAP": "lots"})

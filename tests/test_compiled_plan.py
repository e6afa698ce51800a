"""Setting one operator's state TTL in a compiled plan (pure JSON, literal plan)."""

from flink_jobs.compiled_plan import set_state_ttl


def test_sets_only_the_named_state():
    plan = {"nodes": [
        {"id": 1, "type": "stream-exec-deduplicate_1", "state": [{"index": 0, "ttl": "0 ms", "name": "deduplicateState"}]},
        {"id": 2, "type": "stream-exec-temporal-join_1"},
        {"id": 3, "type": "stream-exec-changelog-normalize_1",
         "state": [{"index": 0, "ttl": "0 ms", "name": "changelogNormalizeState"}]},
    ]}
    assert set_state_ttl(plan, "stream-exec-deduplicate", "deduplicateState", "10 min") == 1
    assert plan["nodes"][0]["state"][0]["ttl"] == "10 min"
    assert plan["nodes"][2]["state"][0]["ttl"] == "0 ms"


def test_reports_a_missing_state():
    assert set_state_ttl({"nodes": [{"id": 1, "type": "stream-exec-calc_1"}]}, "stream-exec-deduplicate",
                         "deduplicateState", "1 min") == 0


def test_matches_the_node_type_not_just_the_state_name():
    plan = {"nodes": [{"id": 1, "type": "stream-exec-join_1", "state": [{"index": 0, "ttl": "0 ms", "name": "leftState"}]},
                      {"id": 2, "type": "stream-exec-interval-join_1", "state": [{"index": 0, "ttl": "0 ms", "name": "leftState"}]}]}
    assert set_state_ttl(plan, "stream-exec-join", "leftState", "5 min") == 1
    assert [n["state"][0]["ttl"] for n in plan["nodes"]] == ["5 min", "0 ms"]

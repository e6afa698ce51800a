"""Submit a statement set through its compiled plan, with state TTLs set per operator.

Flink SQL offers a per-operator state TTL only for joins and group aggregations (the STATE_TTL
hint). For the other stateful operators FLIP-292 puts it in the compiled plan: every stateful node
lists its state, each with a ``ttl``. The job compiles its statement set, sets the TTLs it needs
there, and submits that plan; everything else in the plan is what the planner produced.
The plan holds the connector options (credentials included), so it stays in memory: never written
out or logged.
"""

from __future__ import annotations

import json

from flink_jobs.sql_runner import statement_set


def _states(plan: dict):
    """(node type without its version, e.g. "stream-exec-deduplicate"; state entry) of every state."""
    for node in plan.get("nodes", []):
        for state in node.get("state") or []:
            yield node.get("type", "").rsplit("_", 1)[0], state


def state_ttls(plan: dict) -> dict[tuple[str, str], str]:
    """(node type, state name) -> TTL of every state in the plan."""
    return {(node_type, state.get("name")): state.get("ttl") for node_type, state in _states(plan)}


def set_state_ttl(plan: dict, node_type: str, state_name: str, ttl: str) -> int:
    """Set ``ttl`` on the state ``state_name`` of every node of ``node_type`` (any version); returns
    how many were set."""
    n = 0
    for t, state in _states(plan):
        if t == node_type and state.get("name") == state_name:
            state["ttl"] = ttl
            n += 1
    return n


def compile_plan(t_env, inserts: list[str]) -> dict:
    return json.loads(statement_set(t_env, inserts)._j_statement_set.compilePlan().asJsonString())


def execute(t_env, inserts: list[str], state_ttls: dict[tuple[str, str], str]):
    """Run the inserts as one job; ``state_ttls`` maps (node type, state name) to a TTL."""
    # PyFlink deferred, as in flink_jobs/pipeline.py (see the comment there).
    from pyflink.java_gateway import get_gateway
    from pyflink.table.table_result import TableResult

    plan = compile_plan(t_env, inserts)
    for (node_type, name), ttl in state_ttls.items():
        if not set_state_ttl(plan, node_type, name, ttl):
            raise RuntimeError(f"the compiled plan has no {node_type} with a state named {name!r}")
    ref = get_gateway().jvm.org.apache.flink.table.api.PlanReference.fromJsonString(json.dumps(plan))
    return TableResult(t_env._j_tenv.loadPlan(ref).execute())

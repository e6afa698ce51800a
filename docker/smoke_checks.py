#!/usr/bin/env python3
"""The checks of docker/smoke.sh that need more than a shell: one line each, exit 1 on failure.

On the host (standard library only):
    order CONFIG.json INSPECT.json   every depends_on edge held: a service started only after what it
                                     waits for had completed (exit 0) or had started and is healthy
    root INSPECT.json                no app container runs as root (its image's user, or a `user:`)
Inside an app container (the project and its packages):
    job JOBMANAGER [--restored]      the job is RUNNING with every task up; prints its restarts;
                                     --restored: its latest checkpoint restore is known to Flink
    group GROUP N                    N members share the consumer group, and between them they own
                                     every partition of the result topics, each exactly once
"""

from __future__ import annotations

import json
import sys


def fail(message: str) -> int:
    print(f"FAILED: {message}")
    return 1


# ----------------------------------------------------------------------------------------- host
def _by_service(inspect: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in inspect:
        out.setdefault(c["Config"]["Labels"].get("com.docker.compose.service", "?"), []).append(c)
    return out


def order(config_file: str, inspect_file: str) -> int:
    config = json.load(open(config_file))["services"]
    containers = _by_service(json.load(open(inspect_file)))
    problems, edges = [], 0
    for service, containers_of in containers.items():
        for dep, how in (config.get(service, {}).get("depends_on") or {}).items():
            cond = how.get("condition", "service_started")
            for c in containers_of:
                for d in containers.get(dep, []):
                    edges += 1
                    started, dep_state = c["State"]["StartedAt"], d["State"]
                    if cond == "service_completed_successfully":
                        if dep_state["Status"] != "exited" or dep_state["ExitCode"] != 0:
                            problems.append(f"{dep} has not completed successfully ({dep_state['Status']}, "
                                            f"exit {dep_state['ExitCode']}), yet {service} runs")
                        elif started < dep_state["FinishedAt"]:
                            problems.append(f"{service} started at {started}, before {dep} completed "
                                            f"({dep_state['FinishedAt']})")
                    elif started < dep_state["StartedAt"]:
                        problems.append(f"{service} started before {dep}")
                    if cond == "service_healthy" and dep_state.get("Health", {}).get("Status") != "healthy":
                        problems.append(f"{dep} is {dep_state.get('Health', {}).get('Status')}, not healthy")
    for p in problems:
        print(f"order: {p}")
    print(f"order: {edges} depends_on edges, {len(problems)} broken")
    return 1 if problems or not edges else 0


def root(inspect_file: str) -> int:
    bad = []
    for c in json.load(open(inspect_file)):
        image = c["Config"]["Image"]
        if image.startswith("churnstream/") and c["Config"].get("User", "") in ("", "0", "root", "0:0"):
            bad.append(f"{c['Name']} ({image})")
    print(f"root: {len(bad)} app containers configured to run as root" + (f": {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


# ------------------------------------------------------------------------------------ container
def job(jobmanager: str, restored: bool = False) -> int:
    from flink_jobs.rest import FlinkRest, job_name, task_states
    from foundation.settings import Settings

    rest = FlinkRest(jobmanager)
    name = job_name(Settings.from_env().topic_prefix)
    running = rest.running(name)
    if running is None:
        return fail(f"no RUNNING job named {name} on {jobmanager}")
    states = task_states(rest.job(running))          # "13 RUNNING", or "12 RUNNING, 1 INITIALIZING"
    if any(not part.endswith(" RUNNING") for part in states.split(", ")):
        return fail(f"job {running}: tasks {states}")
    restarts = rest.num_restarts(running)
    latest = (rest.checkpoints(running).get("latest") or {})
    restore = latest.get("restored")
    print(json.dumps({"jid": running, "restarts": restarts, "tasks": states,
                      "completed_checkpoints": (rest.checkpoints(running).get("counts") or {}).get("completed"),
                      "restored_from": restore and restore.get("external_path")}))
    if restored and not restore:
        return fail(f"job {running} restarted {restarts} times but restored no checkpoint")
    return 0


def group(group_id: str, members: int) -> int:
    from confluent_kafka.admin import AdminClient

    from foundation.catalog import result_topics
    from foundation.settings import Settings

    s = Settings.from_env()
    admin = AdminClient(s.kafka_client_config())
    described = admin.describe_consumer_groups([group_id])[group_id].result(timeout=10)
    owned: list[tuple[str, int]] = []
    for m in described.members:
        owned += [(tp.topic, tp.partition) for tp in (m.assignment.topic_partitions if m.assignment else [])]
    topics = sorted(set(result_topics(s).values()))
    meta = admin.list_topics(timeout=10)
    every = sorted((t, p) for t in topics for p in meta.topics[t].partitions)
    per_member = [len(m.assignment.topic_partitions) if m.assignment else 0 for m in described.members]
    print(f"group {group_id}: {len(described.members)} members, {described.state}, partitions per member "
          f"{per_member}, {len(every)} result partitions")
    if len(described.members) != members:
        return fail(f"{len(described.members)} members, expected {members}")
    if sorted(owned) != every:
        return fail("the members do not own every result partition exactly once")
    if min(per_member) == 0:
        return fail("a member owns no partition")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    what, args = argv[0], argv[1:]
    if what == "order":
        return order(*args)
    if what == "root":
        return root(*args)
    if what == "job":
        return job(args[0], restored="--restored" in args)
    if what == "group":
        return group(args[0], int(args[1]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`churnstream stack up|status|down [--cluster]`: the local Kafka, Elasticsearch and Schema Registry,
one node each, or the cluster topology (foundation/localstack/cluster.py)."""

from __future__ import annotations


def add_parser(sub) -> None:
    s = sub.add_parser("stack", help="the local Kafka + Elasticsearch + Schema Registry stack")
    s.add_argument("action", choices=["up", "status", "down"])
    s.add_argument("--cluster", action="store_true",
                   help="the cluster topology: 3 Kafka brokers, 2 Elasticsearch data nodes and a tiebreaker, "
                        "a Flink session cluster of 2 TaskManagers (docs/operations.md, Scaling out)")
    s.set_defaults(func=run)


def run(args, settings) -> int:
    if args.cluster:
        return _cluster(args, settings)
    from foundation.localstack import stack

    if args.action == "up":
        local = stack.up(settings)
        print(f"stack is up: Kafka {local.kafka_bootstrap}, Elasticsearch {local.es_url}, "
              f"Schema Registry {local.schema_registry_url}")
    elif args.action == "down":
        stopped = stack.down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        return _print_status(stack.status(settings))
    return 0


def _cluster(args, settings) -> int:
    from foundation.localstack.cluster import ClusterTopology
    from foundation.topics import ensure_topics

    topology = ClusterTopology(settings)
    if args.action == "down":
        stopped = topology.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    if args.action == "status":
        return _print_status(topology.status())
    topology.up()
    s = topology.settings(settings)
    ensure_topics(s)
    env = {k: v for k, v in s.to_env().items()
           if k.removeprefix("CHURNSTREAM_").lower() in ("kafka_bootstrap", "es_url", "flink_jobmanager",
                                                        "parallelism", "topic_replication", "index_replicas",
                                                        "schema_registry_url")}
    print("cluster is up. Point every command at it with:")
    for k, v in env.items():
        print(f"  export {k}={v}")
    print("then: churnstream job --detach  (the job at parallelism 4 on the session cluster),\n"
          "      churnstream index  (twice, in two shells: one consumer group), churnstream generate ...")
    return 0


def _print_status(rows) -> int:
    for r in rows:
        state = "ready" if r["ready"] else ("starting" if r["running"] else "stopped")
        print(f"{r['service']:<24} {state:<9} pid={r['pid'] or '-':<8} log={r['log']}")
    return 0 if all(r["ready"] for r in rows) else 1

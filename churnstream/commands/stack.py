"""`churnstream stack up|status|down`: the local Kafka, Elasticsearch and Schema Registry."""

from __future__ import annotations


def add_parser(sub) -> None:
    s = sub.add_parser("stack", help="the local Kafka + Elasticsearch + Schema Registry stack")
    s.add_argument("action", choices=["up", "status", "down"])
    s.set_defaults(func=run)


def run(args, settings) -> int:
    from foundation.localstack import stack

    if args.action == "up":
        local = stack.up(settings)
        print(f"stack is up: Kafka {local.kafka_bootstrap}, Elasticsearch {local.es_url}, "
              f"Schema Registry {local.schema_registry_url}")
    elif args.action == "down":
        stopped = stack.down(settings)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    else:
        rows = stack.status(settings)
        for r in rows:
            state = "ready" if r["ready"] else ("starting" if r["running"] else "stopped")
            print(f"{r['service']:<16} {state:<9} pid={r['pid'] or '-':<8} log={r['log']}")
        return 0 if all(r["ready"] for r in rows) else 1
    return 0

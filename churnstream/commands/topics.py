"""`churnstream topics`: create the project's Kafka topics (idempotent)."""

from __future__ import annotations


def add_parser(sub) -> None:
    s = sub.add_parser("topics", help="create the project's Kafka topics (idempotent)")
    s.set_defaults(func=run)


def run(args, settings) -> int:
    from foundation.health import require_kafka
    from foundation.topics import ensure_topics

    require_kafka(settings)
    created = ensure_topics(settings)
    print("created: " + (", ".join(created) if created else "none (all topics exist)"))
    return 0

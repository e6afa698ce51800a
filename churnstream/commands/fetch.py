"""`churnstream fetch`: the pinned JVM artifacts into the cache (a no-op when cached)."""

from __future__ import annotations


def add_parser(sub) -> None:
    s = sub.add_parser("fetch", help="download the pinned JVM artifacts into the cache (no-op when cached)")
    s.set_defaults(func=run)


def run(args, settings) -> int:
    from foundation.artifacts import fetch_all

    for key, path in fetch_all(settings).items():
        print(f"{key:<16} {path}")
    return 0

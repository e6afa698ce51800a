"""`churnstream verify --ledger FILE`: recompute every index from a generator ledger and compare."""

from __future__ import annotations

import json
import sys
import time

from flink_jobs.options import JobOptions
from foundation import UserError


def add_parser(sub) -> None:
    s = sub.add_parser("verify", help="recompute every index from a generator ledger and compare with Elasticsearch")
    s.add_argument("--ledger", required=True, help="the JSON ledger written by 'churnstream generate --ledger'")
    # The job's engagement durations, if it ran with others than the defaults (`churnstream job --help`).
    for flag, default in (("--inactivity-gap", JobOptions.inactivity_gap_seconds),
                          ("--engagement-window", JobOptions.engagement_window_seconds),
                          ("--engagement-refresh", JobOptions.engagement_refresh_seconds)):
        s.add_argument(flag, type=int, default=default, metavar="SECONDS", help="as given to the job (%(default)s)")
    s.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="compare again every 5 s until every index matches or SECONDS have passed (0: once)")
    s.set_defaults(func=run)


def run(args, settings) -> int:
    from churnstream.expected import compute
    from foundation.health import require_elasticsearch
    from foundation.pii import hash_key
    from churnstream.verify import format_reports, verify_accounting_late
    from generator import GeneratorConfig, expected_records
    from generator.stream import json_view

    try:
        ledger = json.loads(open(args.ledger).read())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the ledger {args.ledger} ({e}); pass the file 'churnstream generate --ledger' wrote.")
    require_elasticsearch(settings)
    if not isinstance(ledger, dict) or "config" not in ledger:
        raise UserError(f"{args.ledger} is not a generator ledger (no 'config'); pass the file "
                        "'churnstream generate --ledger' wrote.")
    config = GeneratorConfig(**ledger["config"])
    records = [(r.topic, r.key, r.value, r.timestamp_ms) for r in json_view(expected_records(config), config)]
    opts = JobOptions(inactivity_gap_seconds=args.inactivity_gap, engagement_window_seconds=args.engagement_window,
                      engagement_refresh_seconds=args.engagement_refresh)
    recomputed = {}

    def recompute(late):
        # The records the job accepted: all but those it found late (recomputed only when they change).
        key = tuple(sorted(late.items(), key=repr))
        if key not in recomputed:
            recomputed[key] = compute(records, opts, hash_key(settings), late=late)
        return recomputed[key]

    deadline = time.monotonic() + args.wait
    reports, late = verify_accounting_late(settings, recompute)
    while not all(r.ok for r in reports) and time.monotonic() < deadline:
        behind = ", ".join(r.index for r in reports if not r.ok)
        print(f"not yet exact: {behind}; comparing again in 5 s", file=sys.stderr, flush=True)
        time.sleep(5)
        reports, late = verify_accounting_late(settings, recompute)
    print(format_reports(reports))
    print(f"late records (dead letters with reason 'late', left out of the recomputation): {late}")
    return 0 if all(r.ok for r in reports) else 1

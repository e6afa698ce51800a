"""`churnstream verify --ledger FILE`: recompute every index from a generator ledger and compare."""

from __future__ import annotations

import json

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
    s.set_defaults(func=run)


def run(args, settings) -> int:
    from churnstream.expected import compute
    from foundation.health import require_elasticsearch
    from foundation.pii import hash_key
    from churnstream.verify import format_reports, verify
    from generator import expected_records

    try:
        ledger = json.loads(open(args.ledger).read())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the ledger {args.ledger} ({e}); pass the file 'churnstream generate --ledger' wrote.")
    require_elasticsearch(settings)
    records = ((r.topic, r.key, r.value, r.timestamp_ms) for r in expected_records(ledger))
    opts = JobOptions(inactivity_gap_seconds=args.inactivity_gap, engagement_window_seconds=args.engagement_window,
                      engagement_refresh_seconds=args.engagement_refresh)
    reports = verify(settings, compute(records, opts, hash_key(settings)))
    print(format_reports(reports))
    return 0 if all(r.ok for r in reports) else 1

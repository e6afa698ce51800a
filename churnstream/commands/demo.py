"""`churnstream demo`: the whole pipeline on the local stack, end to end, in one command.

Starts Kafka and Elasticsearch (no Docker), installs the index templates, produces a seeded data
set with a few bad records, runs the Flink job over it (bounded) into the result topics, indexes
them into Elasticsearch, checks every index against an independent recomputation and prints what
it did and where to look.
"""

from __future__ import annotations

import logging
import time

from foundation import UserError

log = logging.getLogger("churnstream.demo")

# Inactivity gap 2 min, frequency window 10 min, refresh every 30 s of event time.
DEMO_ENGAGEMENT = {"inactivity_gap_seconds": 120, "engagement_window_seconds": 600, "engagement_refresh_seconds": 30}


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline locally (stack, data, Flink job, checks)")
    p.add_argument("--events", type=int, default=20_000, help="valid activity events to generate (default 20000)")
    p.add_argument("--customers", type=int, default=1_000, help="number of customers (default 1000)")
    p.add_argument("--offers", type=int, default=20, help="number of offers (default 20)")
    p.add_argument("--seed", type=int, default=42, help="random seed: same seed, same data (default 42)")
    p.add_argument("--events-per-second", type=float, default=20.0,
                   help="simulated event-time speed (default 20: 20000 events span ~17 minutes)")
    p.add_argument("--keep", action="store_true", help="keep earlier demo topics and indices (default: start clean)")
    p.set_defaults(func=run)


def run(args, settings) -> int:
    from churnstream.expected import compute
    from foundation.localstack import stack
    from foundation.pii import hash_key
    from foundation.catalog import TOPICS
    from foundation.topics import delete_topics, ensure_topics
    from churnstream.verify import format_reports, verify
    from flink_jobs import pipeline
    from foundation.catalog import index_names
    from flink_jobs.options import JobOptions
    from generator import GeneratorConfig, expected_records, produce
    from indexer import Indexer, IndexerOptions
    from kibana.templates import install_templates

    if args.events <= 0 or args.customers <= 0 or args.offers <= 0:
        raise UserError("--events, --customers and --offers must be positive whole numbers.")
    t0 = time.monotonic()
    local = stack.up(settings)
    es = local.es_client()
    if not args.keep:
        delete_topics(local, [local.topic(t.name) for t in TOPICS])
        for name in index_names(local).values():
            es.indices.delete(index=name, ignore_unavailable=True)
        time.sleep(1)   # topic deletion is asynchronous in Kafka; creation right after can race
        ensure_topics(local)
    install_templates(local)

    span_ms = int(args.events / args.events_per_second * 1000)
    start_ms = (int(time.time() * 1000) - span_ms) // 1000 * 1000   # recent data, whole second
    config = GeneratorConfig(seed=args.seed, customers=args.customers, offers=args.offers,
                             activities=args.events, start_ms=start_ms,
                             events_per_second=args.events_per_second, customer_update_rate=0.01,
                             late_rate=0.01, duplicate_rate=0.002, malformed_rate=0.002, invalid_rate=0.002)
    ledger = produce(local, config, rate=0, workers=1, progress=False)
    sent = {t: v["delivered"] for t, v in ledger["topics"].items()}
    log.info("demo: produced %s", sent)

    # The data spans ~17 minutes of event time: engagement's days become minutes, so that inactivity,
    # refreshes and every segment and status show up (docs/design.md, "Customer value and engagement").
    opts = JobOptions(bounded=True, **DEMO_ENGAGEMENT)
    pipeline.run(local, opts)
    totals = Indexer(local, IndexerOptions(group_id=f"{local.topic_prefix}demo-indexer", until_caught_up=True,
                                           from_start=True)).run()
    log.info("demo: indexed %d documents from the result topics", totals.indexed)

    expected = compute(((r.topic, r.key, r.value, r.timestamp_ms) for r in expected_records(config)),
                       opts, hash_key(local))
    reports = verify(local, expected)
    print()
    print(format_reports(reports))
    print()
    print(f"Done in {time.monotonic() - t0:.0f} s. Documents in Elasticsearch ({local.es_url}):")
    for r in reports:
        print(f"  {r.index:<28} {r.found:>7}")
    from pathlib import Path

    from kibana.report import render

    report = Path(settings.run_dir) / "report.html"
    report.write_text(render(local), encoding="utf-8")
    print(f"Dashboard without Kibana: file://{report.resolve()}  (open it in a browser)")
    print(f"Look: curl '{local.es_url}/{local.index_prefix}*/_count'  |  logs: {settings.run_dir}/logs  |  "
          "stop: churnstream stack down")
    return 0 if all(r.ok for r in reports) else 1

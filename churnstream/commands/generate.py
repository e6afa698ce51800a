"""`churnstream generate`: fill the stack with believable data, or load-test it.

Flags say what to generate and how fast; where to send it comes from the environment (Settings).
The JSON ledger is printed at the end (to stderr with --dry-run, where stdout carries the records).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from foundation import UserError

# GeneratorConfig field -> the flag that sets it, so config errors name what the user typed
FLAGS = {"activities": "--count", "events_per_second": "--eps", "customer_update_rate": "--update-rate",
         "schema_dir": "--schemas", "schema_path": "--schema", "shards": "--workers",
         "duplicate_rate": "--duplicate-rate", "validate_every": "--strict"}


def flag(field: str) -> str:
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="generate synthetic insurance data into Kafka, stdout or files",
                       description=__doc__)
    what = p.add_argument_group("what")
    what.add_argument("--seed", type=int, default=42, help="random seed; same seed + options = same records (42)")
    what.add_argument("--customers", type=int, default=1000, help="number of customers (1000)")
    what.add_argument("--offers", type=int, default=20, help="number of offers (20)")
    what.add_argument("--count", type=int, default=None,
                      help="activity events to send; -1 = until --duration or Ctrl-C (10000, or -1 with --duration)")
    what.add_argument("--skew", default="zipf", help="how activity picks customers: uniform, zipf or 80/20 (zipf)")
    what.add_argument("--update-rate", type=float, default=0.01,
                      help="fraction of activities preceded by a new version of the customer (0.01)")
    what.add_argument("--start", default=None,
                      help="simulated clock start (epoch ms or ISO-8601, e.g. 2024-01-01T00:00:00Z); "
                           "default: real time")
    what.add_argument("--eps", type=float, default=100.0,
                      help="simulated clock speed in events per second of event time (100)")
    what.add_argument("--format", default="json", help="json or avro (json)")
    what.add_argument("--schemas", default=None, help="folder with the three entity .avsc files (avro_schemas/)")
    what.add_argument("--schema", default=None,
                      help="datagen mode: generate records of this one .avsc (arg.properties honoured)")
    what.add_argument("--topic", default=None, help="datagen mode: logical topic name (default: schema file name)")
    what.add_argument("--key-field", default=None, help="datagen mode: field used as the Kafka key")
    faults = p.add_argument_group("faults (rates are fractions of activity events)")
    faults.add_argument("--late-rate", type=float, default=0.0, help="late / out-of-order events")
    faults.add_argument("--max-lateness-ms", type=int, default=2000, help="how far behind the clock late events are")
    faults.add_argument("--duplicate-rate", type=float, default=0.0, help="exact re-sends of earlier events")
    faults.add_argument("--malformed-rate", type=float, default=0.0, help="records that are not valid JSON/Avro")
    faults.add_argument("--invalid-rate", type=float, default=0.0, help="well-formed records that break the schema")
    how = p.add_argument_group("how fast")
    how.add_argument("--rate", type=float, default=0.0, help="messages per second, all workers together; 0 = max")
    how.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    how.add_argument("--ramp", type=float, default=0.0, help="ramp the rate up from 0 over this many seconds")
    how.add_argument("--burst-every", type=float, default=0.0, help="start a burst every this many seconds")
    how.add_argument("--burst-for", type=float, default=0.0, help="length of each burst in seconds")
    how.add_argument("--burst-factor", type=float, default=1.0, help="rate multiplier during a burst")
    how.add_argument("--workers", type=int, default=1, help="producer processes (1)")
    where = p.add_argument_group("where")
    where.add_argument("--dry-run", action="store_true", help="print records to stdout instead of sending them")
    where.add_argument("--out", default=None, metavar="DIR", help="write files to DIR instead of Kafka")
    where.add_argument("--topic-prefix", default=None, help="override CHURNSTREAM_TOPIC_PREFIX")
    where.add_argument("--schema-registry", default=None, metavar="URL",
                       help="Avro: register schemas here and use the Confluent wire format "
                            "(default: CHURNSTREAM_SCHEMA_REGISTRY_URL)")
    where.add_argument("--ledger", default=None, metavar="FILE", help="also write the JSON ledger to FILE")
    where.add_argument("--strict", action="store_true", help="validate every record against its schema")
    where.add_argument("--quiet", action="store_true", help="no progress output")
    where.add_argument("--close", action="store_true",
                       help="after a bounded feed, one record per input partition a day later, so that a running "
                            "job's watermark passes the whole feed and 'churnstream verify' can check it")
    p.set_defaults(func=run)


def parse_start(text: str | None) -> int | None:
    if text is None:
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--start must be epoch milliseconds or an ISO-8601 time such as 2024-01-01T00:00:00Z, "
                        f"not {text!r}.") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def config_from_args(args):
    from generator.config import GeneratorConfig

    if args.rate < 0:
        raise UserError("--rate must be >= 0 (0 means as fast as possible).")
    if args.workers < 1:
        raise UserError("--workers must be >= 1.")
    if args.duration is not None and args.duration <= 0:
        raise UserError("--duration must be > 0 seconds.")
    for name in ("ramp", "burst_every", "burst_for"):
        if getattr(args, name) < 0:
            raise UserError(f"{flag(name)} must be >= 0 seconds.")
    if args.burst_factor <= 0:
        raise UserError("--burst-factor must be > 0.")
    if args.dry_run and args.workers > 1:
        raise UserError("--dry-run prints one ordered stream; use it with --workers 1.")
    if args.dry_run and args.out:
        raise UserError("--dry-run and --out are exclusive: choose stdout or files.")
    count = args.count if args.count is not None else (-1 if args.duration else 10_000)
    if count < -1:
        raise UserError("--count must be >= 0, or -1 for no limit.")
    if count == -1 and args.duration is None and (args.dry_run or args.out):
        raise UserError("--count -1 with --dry-run or --out needs --duration, or it would never end.")
    cfg = GeneratorConfig(
        seed=args.seed, customers=args.customers, offers=args.offers, activities=count,
        start_ms=parse_start(args.start), events_per_second=args.eps, skew=args.skew,
        customer_update_rate=args.update_rate, late_rate=args.late_rate, max_lateness_ms=args.max_lateness_ms,
        duplicate_rate=args.duplicate_rate, malformed_rate=args.malformed_rate, invalid_rate=args.invalid_rate,
        format=args.format, shards=args.workers, schema_dir=args.schemas, schema_path=args.schema,
        topic=args.topic, key_field=args.key_field, validate_every=1 if args.strict else 1000)
    return cfg.check(flag)


def run(args, settings) -> int:
    from generator.produce import produce

    config = config_from_args(args)
    if args.close and args.start is None:
        raise UserError("--close needs --start: the closing records' time, and 'churnstream verify', come from "
                        "the feed's start; give one, e.g. --start 2026-01-01T00:00:00Z.")
    if args.topic_prefix is not None:
        settings = settings.with_(topic_prefix=args.topic_prefix)
    sink = "stdout" if args.dry_run else "files" if args.out else "kafka"
    ledger = produce(settings, config, rate=args.rate, duration=args.duration, workers=args.workers,
                     progress=not args.quiet, sink=sink, out_dir=args.out, ramp_s=args.ramp,
                     burst_every_s=args.burst_every, burst_for_s=args.burst_for, burst_factor=args.burst_factor,
                     schema_registry=args.schema_registry)
    if args.close and sink == "kafka" and not ledger["failed"]:
        from generator.closing import close_event_time

        closed = close_event_time(settings, config, ledger.get("schema_ids"))
        if not args.quiet:
            print(f"closed the feed's event time: {closed} records a day later, one per input partition",
                  file=sys.stderr)
    text = json.dumps(ledger, indent=2)
    if args.ledger:
        try:
            Path(args.ledger).write_text(text + "\n")
        except OSError as e:
            raise UserError(f"cannot write the ledger to {args.ledger}: {e.strerror}.") from None
    print(text, file=sys.stderr if args.dry_run else sys.stdout)
    if ledger["failed"]:
        print(f"error: {ledger['failed']} messages were not delivered (first: {ledger['errors'][0] if ledger['errors'] else 'unknown'}).",
              file=sys.stderr)
        return 1
    return 0

"""`churnstream job`: run the churn pipeline locally (mini-cluster) or on a remote Flink cluster."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from foundation import UserError
from flink_jobs.options import JobOptions
from flink_jobs.rest import FlinkRest, job_name


def add_parser(sub) -> None:
    p = sub.add_parser("job", help="run the Flink churn pipeline")
    p.add_argument("--bounded", action="store_true",
                   help="stop at the end of what is in Kafka now (default: run until stopped)")
    p.add_argument("--format", choices=["json", "avro"], default="json",
                   help="how the topics are encoded (json); avro: Confluent wire format, writer schemas "
                        "from CHURNSTREAM_SCHEMA_REGISTRY_URL")
    p.add_argument("--sink", choices=["kafka", "print"], default="kafka",
                   help="where results go (kafka: the result topics, which `churnstream index` copies into "
                        "Elasticsearch; print: stdout, for a quick look)")
    p.add_argument("--startup", choices=["earliest-offset", "latest-offset", "group-offsets"],
                   default="earliest-offset", help="where to start reading")
    p.add_argument("--jobmanager", metavar="HOST:PORT",
                   help="submit to this Flink session cluster instead of the local mini-cluster "
                        "(or set CHURNSTREAM_FLINK_JOBMANAGER)")
    p.add_argument("--detach", action="store_true",
                   help="with --jobmanager: return once the job runs on the cluster, and leave it running there")
    p.add_argument("--window-size", type=int, default=JobOptions.window_size_seconds, metavar="SECONDS")
    p.add_argument("--window-slide", type=int, default=JobOptions.window_slide_seconds, metavar="SECONDS")
    p.add_argument("--alert-threshold", type=float, default=JobOptions.alert_threshold)
    p.add_argument("--idle-timeout", type=int, default=int(JobOptions.idle_timeout.split()[0]), metavar="SECONDS",
                   help="a customer or offer partition silent this long stops holding back the temporal joins "
                        "(%(default)s)")
    p.add_argument("--partition-idle-timeout", type=int, default=JobOptions.partition_idle_timeout_seconds,
                   metavar="SECONDS",
                   help="an activity partition silent this long while the others deliver stops holding results "
                        "back (%(default)s): the longest a quiet partition delays them (docs/design.md: Quiet "
                        "partitions and late records)")
    p.add_argument("--reader-idle-timeout", type=int, default=JobOptions.reader_idle_timeout_seconds,
                   metavar="SECONDS",
                   help="a source subtask silent on every activity partition keeps its watermark this long "
                        "(%(default)s), so a broker outage or a stalled producer makes no record late; then it "
                        "stops holding results back")
    p.add_argument("--customer-interval", type=int, default=JobOptions.customer_state_interval_seconds,
                   metavar="SECONDS", help="the customers index gets each customer's newest state once per this "
                                           "much event time (%(default)s)")
    p.add_argument("--dedup-horizon", type=int, default=JobOptions.dedup_horizon_minutes, metavar="MINUTES",
                   help="a re-sent activity id is a dead letter if it arrives within this long of the first copy "
                        "(%(default)s); the job keeps a flag and a count per id seen within it")
    p.add_argument("--inactivity-gap", type=int, default=JobOptions.inactivity_gap_seconds, metavar="SECONDS",
                   help="a customer without activity for this much event time is an inactivity alert and "
                        "not_active (%(default)s = 7 days)")
    p.add_argument("--engagement-window", type=int, default=JobOptions.engagement_window_seconds, metavar="SECONDS",
                   help="engagement frequency counts activities and sessions in this much event time, in 30 "
                        "buckets (%(default)s = 30 days)")
    p.add_argument("--engagement-refresh", type=int, default=JobOptions.engagement_refresh_seconds,
                   metavar="SECONDS", help="a quiet customer's document is re-evaluated this often, in event time, "
                                           "until the window has drained (%(default)s = 1 day)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in the run folder (after a crash or kill)")
    p.add_argument("--resume-from", metavar="DIR", help="continue from this checkpoint (chk-N) or savepoint folder")
    p.add_argument("--stop", action="store_true",
                   help="stop the running job with a savepoint and print where it is (the local job started from "
                        "this run folder, or the one on --jobmanager); continue it, changed or not, with "
                        "--resume-from (docs/operations.md: Upgrades)")
    p.set_defaults(func=run)


def options_from_args(args) -> JobOptions:
    if args.window_slide <= 0 or args.window_size <= 0:
        raise UserError("--window-size and --window-slide must be positive numbers of seconds.")
    if args.window_size % args.window_slide:
        raise UserError("--window-size must be a multiple of --window-slide (e.g. 60 and 10).")
    if not 0 < args.alert_threshold < 1:
        raise UserError("--alert-threshold must be between 0 and 1 (e.g. 0.7).")
    if args.idle_timeout <= 0:
        raise UserError("--idle-timeout must be a positive number of seconds (e.g. 5).")
    if args.partition_idle_timeout <= 0:
        raise UserError("--partition-idle-timeout must be a positive number of seconds (e.g. 30).")
    if args.reader_idle_timeout < args.partition_idle_timeout:
        raise UserError("--reader-idle-timeout must be at least --partition-idle-timeout (e.g. 300 and 30).")
    if args.customer_interval <= 0:
        raise UserError("--customer-interval must be a positive number of seconds (e.g. 1).")
    if args.dedup_horizon <= 0:
        raise UserError("--dedup-horizon must be a positive number of minutes (e.g. 10).")
    if args.inactivity_gap <= 0 or args.engagement_refresh <= 0:
        raise UserError("--inactivity-gap and --engagement-refresh must be positive numbers of seconds "
                        "(e.g. 604800 and 86400).")
    if args.engagement_window < 30:
        raise UserError("--engagement-window must be at least 30 seconds (it is counted in 30 buckets; "
                        "e.g. 2592000 for 30 days).")
    return dataclasses.replace(JobOptions(), bounded=args.bounded, format=args.format, startup_mode=args.startup,
                               window_size_seconds=args.window_size, window_slide_seconds=args.window_slide,
                               alert_threshold=args.alert_threshold, idle_timeout=f"{args.idle_timeout} s",
                               partition_idle_timeout_seconds=args.partition_idle_timeout,
                               reader_idle_timeout_seconds=args.reader_idle_timeout,
                               customer_state_interval_seconds=args.customer_interval,
                               dedup_horizon_minutes=args.dedup_horizon,
                               inactivity_gap_seconds=args.inactivity_gap,
                               engagement_window_seconds=args.engagement_window,
                               engagement_refresh_seconds=args.engagement_refresh)


def run(args, settings) -> int:
    from foundation.health import require_flink, require_kafka, require_schema_registry, require_topics
    from flink_jobs import pipeline

    opts = options_from_args(args)
    if args.stop and (args.resume or args.resume_from or args.detach):
        raise UserError("--stop stops the running job; it takes no --resume, --resume-from or --detach.")
    if args.jobmanager:
        settings = settings.with_(flink_jobmanager=args.jobmanager)
    resume_from = None
    if args.resume_from:
        resume_from = Path(args.resume_from.removeprefix("file://").removeprefix("file:"))
        if not (resume_from / "_metadata").exists():
            raise UserError(f"{resume_from} is not a checkpoint or savepoint (no _metadata in it); pass a chk-N "
                            "or savepoint-... folder.")
    elif args.resume:
        resume_from = pipeline.latest_checkpoint(settings)
        if resume_from is None:
            raise UserError(f"there is no checkpoint under {pipeline.checkpoint_root(settings)} to resume from; "
                            "run without --resume.")
    # A remote cluster that is not there: said now, before PyFlink spends a minute retrying it and
    # ends in a Java stack trace.
    require_flink(settings)
    if args.stop:
        print(f"savepoint: {pipeline.stop_with_savepoint(settings)}", flush=True)
        return 0
    if args.detach and not settings.flink_jobmanager:
        raise UserError("--detach needs a session cluster (--jobmanager HOST:PORT): a local mini-cluster job runs "
                        "inside this process and ends with it.")
    if opts.format == "avro":
        require_schema_registry(settings)
    require_kafka(settings)
    require_topics(settings)
    if settings.flink_jobmanager:
        running = FlinkRest(settings.flink_jobmanager).running(job_name(settings.topic_prefix))
        if running:
            # Submitting again would run the pipeline twice (each writing every document): `job`
            # on a cluster is idempotent instead, as `stack up` is, so a recreated compose service
            # follows the job it finds.
            print(f"job {running} is already running on {settings.flink_jobmanager}; nothing submitted (this command's "
                  "flags apply only to a new job: cancel that one first to change it)", flush=True)
            return 0 if args.detach else pipeline.follow(settings, running)
    result = pipeline.run(settings, opts, sink=args.sink, wait=not args.detach, resume_from=resume_from)
    if args.detach:
        client = result.get_job_client()
        job_id = client.get_job_id() if client else "?"
        print(f"job {job_id} is running on {settings.flink_jobmanager}; it goes on without this client "
              f"(stop it from the Flink UI, or: curl -X PATCH 'http://{settings.flink_jobmanager}/jobs/{job_id}?mode=cancel')")
    return 0

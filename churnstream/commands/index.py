"""`churnstream index`: the indexer, the job's result topics into Elasticsearch (indexer/)."""

from __future__ import annotations

import logging

from foundation import UserError

log = logging.getLogger("churnstream.index")


def add_parser(sub) -> None:
    p = sub.add_parser("index", help="copy the job's result topics into Elasticsearch (runs until stopped)",
                       description="Reads every result topic in one consumer group and writes Elasticsearch with "
                                   "bulk requests; start more of them to share the partitions. SIGTERM or Ctrl-C "
                                   "commits what is indexed and stops.")
    p.add_argument("--group", default="churnstream-indexer", help="consumer group (default churnstream-indexer)")
    p.add_argument("--rebuild", action="store_true",
                   help="delete the indices, recreate them from their templates and index every result topic "
                        "from its beginning (no Flink run needed)")
    p.add_argument("--until-caught-up", action="store_true",
                   help="stop once every partition is read to its end and indexed (batch use: demo, tests)")
    p.add_argument("--batch-docs", type=int, default=5_000, help="documents per bulk request at most (5000)")
    p.add_argument("--batch-mb", type=float, default=8.0, help="megabytes per bulk request at most (8)")
    p.add_argument("--batch-wait-ms", type=int, default=200,
                   help="a bulk request leaves at the latest this long after its first document (200)")
    p.set_defaults(func=run)


def options(args):
    from indexer import IndexerOptions

    if args.batch_docs < 1 or args.batch_mb <= 0 or args.batch_wait_ms < 0:
        raise UserError("--batch-docs must be >= 1, --batch-mb > 0 and --batch-wait-ms >= 0.")
    return IndexerOptions(group_id=args.group, batch_docs=args.batch_docs, batch_bytes=int(args.batch_mb * (1 << 20)),
                          batch_wait_s=args.batch_wait_ms / 1000, until_caught_up=args.until_caught_up,
                          from_start=args.rebuild)


def run(args, settings) -> int:
    from foundation.health import require_elasticsearch, require_kafka
    from foundation.topics import ensure_topics
    from indexer import Indexer
    from kibana.templates import install_templates

    opts = options(args)
    require_kafka(settings)
    require_elasticsearch(settings)
    ensure_topics(settings)
    if args.rebuild:
        recreate_indices(settings)
    else:
        install_templates(settings)   # idempotent: an index created by the first bulk gets its mapping
    totals = Indexer(settings, opts).run()
    print(f"indexed {totals.indexed:,}, deleted {totals.deleted:,}, stale {totals.stale:,}, "
          f"dead-lettered {totals.dead_lettered:,}")
    return 0


def recreate_indices(settings) -> None:
    """Empty indices shaped by the current templates, before the topics are read again."""
    from foundation.catalog import index_names
    from kibana.templates import install_templates

    es = settings.es_client()
    names = list(index_names(settings).values())
    for name in names:
        es.indices.delete(index=name, ignore_unavailable=True)
    install_templates(settings, es)
    for name in names:
        es.indices.create(index=name)
    log.info("index: rebuilding %s from the result topics", ", ".join(names))

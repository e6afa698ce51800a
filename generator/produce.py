"""Load injection: run the stream into a sink at a controlled rate, in one or more processes.

produce() builds a LoadPlan and runs three phases:
  prepare  Kafka reachable, topics exist, schemas registered (Avro with a registry);
  run      the customer/offer snapshot first, acknowledged before any activity can reach Kafka
           (so no activity references an entity not yet sent), then the activities: in this
           process, or in worker processes that each run their own shards (a shard owns its
           customers, so per-customer order holds) at rate/workers;
  finish   the counts of every sink merged into one ledger that can regenerate what was sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from foundation import UserError
from foundation.catalog import TOPICS, Topic
from foundation.topics import ensure_topics
from generator import ledger as ledger_mod
from generator.config import GeneratorConfig, Stats
from generator.drive import StreamResult, add_counts, drive, sent_counts, topic_counts
from generator.plan import LoadPlan
from generator.progress import Progress, StopSignal
from generator.registry import register, wire_header
from generator.sinks import Sink, open_sink, probe_kafka
from generator.stream import open_streams
from generator.workers import run_workers

SNAPSHOT_FLUSH_S = 60


def produce(settings, config: GeneratorConfig, rate: float = 0, duration: float | None = None, workers: int = 1,
            progress: bool | None = None, *, sink: str = "kafka", out_dir: str | None = None,
            ramp_s: float = 0.0, burst_every_s: float = 0.0, burst_for_s: float = 0.0, burst_factor: float = 1.0,
            schema_registry: str | None = None) -> dict:
    """Generate `config` into Kafka (or stdout/files) and return the ledger dict."""
    plan = LoadPlan.build(settings, config, rate=rate, duration=duration, workers=workers, progress=progress,
                          sink=sink, out_dir=out_dir, ramp_s=ramp_s, burst_every_s=burst_every_s,
                          burst_for_s=burst_for_s, burst_factor=burst_factor, schema_registry=schema_registry)
    plan = prepare(plan)
    return finish(plan, run(plan))


def prepare(plan: LoadPlan) -> LoadPlan:
    """Kafka only: fail fast when the broker is away, create the topics, register the schemas."""
    if plan.sink != "kafka":
        return plan
    probe_kafka(plan.settings)
    known = {t.name: t for t in TOPICS}
    ensure_topics(plan.settings, [known.get(t, Topic(t, 1)) for t in plan.topics])
    if not plan.uses_registry:
        return plan
    schemas = plan.schemas()
    ids = {t: register(plan.registry_url, f"{actual}-value", schemas[t].raw) for t, actual in plan.topics.items()}
    return plan.registered(ids, {t: wire_header(i) for t, i in ids.items()})


@dataclass
class RunOutcome:
    entity_stats: Stats
    entities: int                  # records in the snapshot
    results: list[StreamResult]    # the snapshot sink's failures (with workers), then every streaming sink
    elapsed: float                 # the whole run, setup included
    stream_elapsed: float          # streaming alone: after the snapshot, until the last sink is flushed


def run(plan: LoadPlan) -> RunOutcome:
    t0 = time.monotonic()
    prog = Progress(plan.progress)
    stop = StopSignal()
    restore = stop.install()
    try:
        entities, entity_stats, streams = open_streams(plan.config, plan.parent_shards())
        sink = open_sink(plan)
        _send_snapshot(sink, entities)
        prog.tick(topic_counts(entity_stats), 0, force=True)
        t_stream = time.monotonic()
        if plan.workers == 1:
            results = [_stream_here(plan, streams, sink, stop, prog, entity_stats)]
        else:
            sink.close()   # the workers open their own; the parent forks without producer threads
            results = [StreamResult.of_snapshot(sink)] + run_workers(plan, stop, prog, entity_stats)
    finally:
        restore()
    elapsed = time.monotonic() - t0
    streamed = [r for r in results if r.t0 is not None]
    stream_elapsed = max(r.t1 for r in streamed) - min(r.t0 for r in streamed) if plan.workers > 1 \
        else time.monotonic() - t_stream
    prog.done()
    return RunOutcome(entity_stats, len(entities), results, elapsed, stream_elapsed)


def _send_snapshot(sink: Sink, entities: list[tuple]) -> None:
    if not entities:
        return
    sink.send(entities)
    sink.flush(SNAPSHOT_FLUSH_S)
    if sum(sink.failed.values()):
        raise UserError(f"Kafka rejected the customer/offer snapshot ({'; '.join(sink.errors[:2])}); "
                        "no activity was sent.")


def _stream_here(plan: LoadPlan, streams, sink: Sink, stop, prog: Progress, entity_stats: Stats) -> StreamResult:
    def tick():
        prog.tick(add_counts(topic_counts(entity_stats), sent_counts(streams)), sum(sink.failed.values()),
                  pending=sink.pending())
    return drive(streams, sink, plan.worker_profile(), plan.deadline(), stop, tick)


def finish(plan: LoadPlan, outcome: RunOutcome) -> dict:
    """The ledger: counts, failures, and the effective config that regenerates exactly what was sent."""
    results = outcome.results
    shard_j: dict[int, int] = {}
    for r in results:
        shard_j.update(r.shard_j)
    config = plan.config
    done_counts = [shard_j.get(s, 0) for s in range(config.shards)]
    effective = config.replace(activities=sum(done_counts))
    if [effective.shard_limit(s) for s in range(config.shards)] != done_counts:
        effective = effective.replace(shard_limits=done_counts)
    stats = ledger_mod.merge([outcome.entity_stats] + [r.stats for r in results])
    out = ledger_mod.build(effective, stats, plan.topics, add_counts(*(r.failed for r in results)), outcome.elapsed,
                           activities=sum(done_counts), sink=plan.sink, workers=plan.workers,
                           errors=[e for r in results for e in r.errors],
                           stopped_by=next((r.why for r in results if r.why != "count"), "count"),
                           registry_ids=plan.schema_ids)
    # the streaming phase alone (after setup and the entity snapshot): what a load test wants to read
    streamed = sum(t["sent"] for t in out["topics"].values()) - outcome.entities
    out["stream_elapsed_s"] = round(outcome.stream_elapsed, 3)
    out["stream_rate_msgs_per_s"] = round(streamed / outcome.stream_elapsed, 1) if outcome.stream_elapsed > 0 else None
    return out

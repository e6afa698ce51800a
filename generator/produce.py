"""Load injection: run the stream into a sink at a controlled rate, in one or more processes.

The parent sends the customer/offer snapshot first and waits for it to be acknowledged, so no
activity can reach Kafka before the entities it references. Then each worker process runs its
own shards (a shard owns its customers, so per-customer order holds) with rate/workers, and
the parent merges their counts into one ledger.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from foundation import UserError
from foundation.catalog import SOURCES, TOPICS, Topic
from foundation.topics import ensure_topics
from generator import ledger as ledger_mod
from generator.config import GeneratorConfig, Stats
from generator.ratelimit import RateProfile, TokenBucket
from generator.registry import register, wire_header
from generator.schema import load_project_schemas, load_schema
from generator.sinks import FileSink, KafkaSink, Sink, StdoutSink, probe_kafka
from generator.stream import open_streams

MAX_BATCH = 1024
PROGRESS_TTY_S = 0.5
PROGRESS_LOG_S = 5.0


def _batch_size(rate: float) -> int:
    """Big batches when unthrottled; ~20 ms worth when throttled (real-time stamps stay fresh, stops stay prompt)."""
    return MAX_BATCH if rate <= 0 else max(1, min(MAX_BATCH, int(rate / 50)))


class Progress:
    """A live line on a TTY; one log line every few seconds otherwise; nothing when disabled."""

    def __init__(self, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.every = PROGRESS_TTY_S if self.tty else PROGRESS_LOG_S
        self.t0 = time.monotonic()
        self.next = self.t0 + self.every
        self.last_total, self.last_t = 0, self.t0

    def tick(self, sent: dict[str, int], failed: int, force: bool = False, pending: int = 0) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.next and not force:
            return
        self.next = now + self.every
        total = sum(sent.values())
        rate = (total - self.last_total) / max(now - self.last_t, 1e-9)
        self.last_total, self.last_t = total, now
        per_topic = "  ".join(f"{t}={n:,}" for t, n in sorted(sent.items()))
        # acked = handed to Kafka and acknowledged by it; the rest is queued/in flight (or failed).
        acked = total - pending - failed
        line = (f"{now - self.t0:7.1f}s  {rate:10,.0f} msg/s  total={total:,}  {per_topic}  acked={acked:,}  "
                f"errors={failed}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class _Stop:
    """Ctrl-C / SIGTERM ask the loop to stop at the next batch boundary (so the ledger stays exact)."""

    def __init__(self, event=None):
        self.event = event
        self.flag = False

    def __call__(self) -> bool:
        return self.flag or (self.event is not None and self.event.is_set())

    def install(self):
        def handler(signum, frame):   # noqa: ARG001
            self.flag = True
        if threading.current_thread() is not threading.main_thread():
            return lambda: None   # signals reach only the main thread; an embedding caller stops us otherwise
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]


def _run(streams, sink, profile: RateProfile, deadline: float | None, stop, tick) -> str:
    """Drive the shard streams into the sink until done, deadline or stop. Returns why it stopped."""
    bucket = TokenBucket(profile) if profile.rate > 0 else None
    size = _batch_size(profile.rate)
    live = [s for s in streams if not s.done()]
    why = "count"
    while live:
        if stop():
            why = "interrupt"
            break
        if deadline is not None and time.monotonic() >= deadline:
            why = "duration"
            break
        for s in live:
            sink.send(s.batch(size), bucket)
        live = [s for s in live if not s.done()]
        tick()
    return why


@dataclass(frozen=True)
class LoadPlan:
    """A run decided before its first record: what to send, where to, how fast, for how long.

    Built by `plan_load` (checks only) and completed by `prepare` (Kafka reachable, topics there,
    schemas registered); worker processes receive it whole.
    """
    settings: object
    config: GeneratorConfig
    profile: RateProfile
    duration: float | None
    workers: int
    sink: str
    out_dir: str | None
    topic_names: dict[str, str]
    schema_registry: str | None = None
    headers: dict[str, bytes] = field(default_factory=dict)      # Avro wire prefix per logical topic
    registry_ids: dict[str, int] = field(default_factory=dict)

    def open_sink(self, suffix: str = "") -> Sink:
        if self.sink == "kafka":
            return KafkaSink(self.settings, self.topic_names, self.headers)
        if self.sink == "stdout":
            return StdoutSink(self.config.format)
        return FileSink(self.out_dir, self.config.format, _schemas(self.config, self.topic_names), suffix)

    def shards_of(self, worker: int) -> list[int]:
        """A worker owns shards s with s % workers == worker (a shard owns its customers: order holds)."""
        return [s for s in range(self.config.shards) if s % self.workers == worker]

    def deadline(self) -> float | None:
        return None if self.duration is None else time.monotonic() + self.duration


@dataclass
class StreamResult:
    """What one streaming process reports: its counts, failures and where each of its shards stopped."""
    stats: Stats
    failed: dict[str, int]
    errors: list[str]
    why: str
    shard_j: dict[int, int]
    t0: float
    t1: float


def plan_load(settings, config: GeneratorConfig, rate: float = 0, duration: float | None = None, workers: int = 1,
              *, sink: str = "kafka", out_dir: str | None = None, ramp_s: float = 0.0, burst_every_s: float = 0.0,
              burst_for_s: float = 0.0, burst_factor: float = 1.0, schema_registry: str | None = None) -> LoadPlan:
    """Check the options and fix the run's shape; touches no service."""
    if rate < 0:
        raise UserError("--rate must be >= 0 (0 means as fast as possible).")
    if workers < 1:
        raise UserError("--workers must be >= 1.")
    if duration is not None and duration <= 0:
        raise UserError("--duration must be > 0 seconds.")
    if config.activities < 0 and duration is None and config.shard_limits is None and sink != "kafka":
        raise UserError("an endless run (--count -1) to stdout or files needs --duration.")
    config = config.replace(shards=max(config.shards, workers)).check()
    logical = [config.topic or Path(config.schema_path).stem] if config.schema_path else list(SOURCES)
    topic_names = {t: settings.topic(t) if settings is not None else t for t in logical}
    registry = schema_registry or (settings.schema_registry_url if settings is not None else None)
    return LoadPlan(settings, config, RateProfile(rate, ramp_s, burst_every_s, burst_for_s, burst_factor),
                    duration, workers, sink, out_dir, topic_names, registry)


def prepare(plan: LoadPlan) -> LoadPlan:
    """For Kafka: the broker answers, the topics exist, and Avro schemas are registered (wire prefixes)."""
    if plan.sink != "kafka":
        return plan
    probe_kafka(plan.settings)
    known = {t.name: t for t in TOPICS}
    ensure_topics(plan.settings, [known.get(t, Topic(t, 1)) for t in plan.topic_names])
    if plan.config.format != "avro" or not plan.schema_registry:
        return plan
    schemas = _schemas(plan.config, plan.topic_names)
    ids = {t: register(plan.schema_registry, f"{name}-value", schemas[t].raw) for t, name in plan.topic_names.items()}
    return replace(plan, headers={t: wire_header(i) for t, i in ids.items()}, registry_ids=ids)


def produce(settings, config: GeneratorConfig, rate: float = 0, duration: float | None = None, workers: int = 1,
            progress: bool | None = None, **options) -> dict:
    """Generate `config` into Kafka (or stdout/files) and return the ledger dict.

    `options` are plan_load's keywords (sink, out_dir, ramp_s, burst_*, schema_registry)."""
    plan = prepare(plan_load(settings, config, rate, duration, workers, **options))
    prog = Progress(sys.stderr.isatty() if progress is None else bool(progress))
    t0 = time.monotonic()
    stop = _Stop()
    restore = stop.install()
    try:
        entities, entity_stats, streams = open_streams(plan.config, plan.shards_of(0) if workers == 1 else [])
        snapshot_sink = plan.open_sink()
        _send_snapshot(plan, snapshot_sink, entities)
        prog.tick(_topic_counts(entity_stats), 0, force=True)
        if workers == 1:
            results = [_stream(plan, snapshot_sink, streams, stop, lambda sent, failed, pending: prog.tick(
                _merge_counts(entity_stats, sent), failed, pending=pending))]
        else:
            snapshot_sink.close()   # its producer threads must not be forked
            results = _stream_in_workers(plan, stop, prog, entity_stats)
    finally:
        restore()
    prog.done()
    return _ledger(plan, entities, entity_stats, snapshot_sink, results, time.monotonic() - t0)


def _send_snapshot(plan: LoadPlan, sink: Sink, entities: list[tuple]) -> None:
    """Customers and offers first, acknowledged before any activity that refers to them is sent."""
    if not entities:
        return
    sink.send(entities)
    if plan.sink == "kafka":
        sink.flush(60)
        if sink.failures():
            raise UserError(f"Kafka rejected the customer/offer snapshot ({'; '.join(sink.errors[:2])}); "
                            "no activity was sent.")


def _stream(plan: LoadPlan, sink: Sink, streams, stop, report) -> StreamResult:
    """The activity phase in this process; `report(sent, failed, pending)` at most every PROGRESS_TTY_S."""
    last = [0.0]

    def tick():
        now = time.monotonic()
        if now - last[0] >= PROGRESS_TTY_S:
            last[0] = now
            report(_sent(streams), sink.failures(), sink.pending())
    t0 = time.monotonic()
    why = _run(streams, sink, plan.profile, plan.deadline(), stop, tick)
    sink.close()
    return StreamResult(ledger_mod.merge([s.finish_stats() for s in streams]), dict(sink.failed), list(sink.errors),
                        why, {s.shard: s.j for s in streams}, t0, time.monotonic())


def _worker(plan: LoadPlan, w: int, stop_event, queue) -> None:
    """One worker process: its shards into its own sink, at its share of the rate; reports to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
    try:
        _, _, streams = open_streams(plan.config, plan.shards_of(w))
        share = replace(plan, profile=plan.profile.scaled(1 / plan.workers))
        result = _stream(share, plan.open_sink(f".w{w}"), streams, _Stop(stop_event),
                         lambda sent, failed, pending: queue.put(("progress", w, sent, failed, pending)))
        queue.put(("done", w, result))
    except BaseException as e:  # noqa: BLE001 - report, never die silently
        queue.put(("error", w, str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"))


def _stream_in_workers(plan: LoadPlan, stop, prog: Progress, entity_stats: Stats) -> list[StreamResult]:
    ctx = mp.get_context("fork")
    queue, stop_event = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(plan, w, stop_event, queue), daemon=True) for w in range(plan.workers)]
    for p in procs:
        p.start()
    sent: dict[int, dict[str, int]] = {w: {} for w in range(plan.workers)}
    failed = {w: 0 for w in range(plan.workers)}
    pending = {w: 0 for w in range(plan.workers)}
    results: dict[int, StreamResult] = {}
    errors: list[str] = []
    while len(results) + len(errors) < plan.workers:
        if stop():
            stop_event.set()
        try:
            msg = queue.get(timeout=0.2)
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs) and queue.empty():
                errors.append("a worker process died without reporting")
                break
            continue
        kind, w, payload = msg[0], msg[1], msg[2:]
        if kind == "progress":
            sent[w], failed[w], pending[w] = payload
            total: dict[str, int] = {}
            for d in sent.values():
                for t, n in d.items():
                    total[t] = total.get(t, 0) + n
            prog.tick(_merge_counts(entity_stats, total), sum(failed.values()), pending=sum(pending.values()))
        elif kind == "done":
            results[w] = payload[0]
        else:
            errors.append(f"worker {w}: {payload[0]}")
            stop_event.set()
    for p in procs:
        p.join(timeout=10)
    if errors:
        raise UserError(errors[0].rstrip(".") + ".")
    return [results[w] for w in sorted(results)]


def _ledger(plan: LoadPlan, entities: list[tuple], entity_stats: Stats, snapshot_sink: Sink,
            results: list[StreamResult], elapsed: float) -> dict:
    """The run as it happened: counts per topic and kind, failures, and the config that reproduces it."""
    config = plan.config
    stats = ledger_mod.merge([entity_stats] + [r.stats for r in results])
    failed = dict(snapshot_sink.failed) if plan.workers > 1 else {}
    for r in results:
        for t, n in r.failed.items():
            failed[t] = failed.get(t, 0) + n
    shard_j = {s: j for r in results for s, j in r.shard_j.items()}
    done_counts = [shard_j.get(s, 0) for s in range(config.shards)]
    why = next((r.why for r in results if r.why != "count"), "count")
    effective = config.replace(activities=sum(done_counts))
    if [effective.shard_limit(s) for s in range(config.shards)] != done_counts:
        effective = effective.replace(shard_limits=done_counts)
    errors = (list(snapshot_sink.errors) if plan.workers > 1 else []) + [e for r in results for e in r.errors]
    out = ledger_mod.build(effective, stats, plan.topic_names, failed, elapsed, activities=sum(done_counts),
                           sink=plan.sink, workers=plan.workers, errors=errors, stopped_by=why,
                           registry_ids=plan.registry_ids)
    # the streaming phase alone (after setup and the entity snapshot): what a load test wants to read;
    # with workers, from the first one streaming to the last one flushed
    stream_elapsed = max(r.t1 for r in results) - min(r.t0 for r in results)
    streamed = sum(t["sent"] for t in out["topics"].values()) - len(entities)
    out["stream_elapsed_s"] = round(stream_elapsed, 3)
    out["stream_rate_msgs_per_s"] = round(streamed / stream_elapsed, 1) if stream_elapsed > 0 else None
    return out


def _sent(streams) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in streams:
        for t, (n, _, _) in s.stats.topics.items():
            out[t] = out.get(t, 0) + n
    return out


def _topic_counts(stats: Stats) -> dict[str, int]:
    return {t: n for t, (n, _, _) in stats.topics.items()}


def _merge_counts(stats: Stats, more: dict[str, int]) -> dict[str, int]:
    out = _topic_counts(stats)
    for t, n in more.items():
        out[t] = out.get(t, 0) + n
    return out


def _schemas(config: GeneratorConfig, topic_names: dict[str, str]) -> dict:
    """Logical topic -> parsed schema: the one --schema file, or the project's schemas."""
    if config.schema_path:
        return {next(iter(topic_names)): load_schema(config.schema_path)}
    return load_project_schemas(config.schema_dir)

"""Load injection: run the stream into a sink at a controlled rate, in one or more processes.

The parent sends the customer/offer snapshot first and waits for it to be acknowledged, so no
activity can reach Kafka before the entities it references. Then each worker process runs its
own shards (a shard owns its customers, so per-customer order holds) with rate/workers, and
the parent merges their counts into one ledger.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import sys
import time

from foundation import UserError
from foundation.catalog import SOURCES
from generator import ledger as ledger_mod
from generator.config import GeneratorConfig, Stats
from generator.ratelimit import RateProfile, TokenBucket
from generator.sinks import FileSink, KafkaSink, StdoutSink, probe_kafka

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


def _pending(sink) -> int:
    """Records handed to the producer and not yet acknowledged (queued or in flight)."""
    producer = getattr(sink, "p", None)
    return len(producer) if producer is not None else 0


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


def _sink_for(kind: str, settings, config: GeneratorConfig, topic_names, headers, out_dir, suffix=""):
    if kind == "kafka":
        return KafkaSink(settings, topic_names, headers)
    if kind == "stdout":
        return StdoutSink(config.format)
    from generator.schema import load_project_schemas, load_schema

    schemas = ({config.topic or load_schema(config.schema_path).name: load_schema(config.schema_path)}
               if config.schema_path else load_project_schemas(config.schema_dir))
    return FileSink(out_dir, config.format, schemas, suffix)


def _worker(w: int, workers: int, settings, config: GeneratorConfig, profile: RateProfile, deadline_s,
            sink_kind, topic_names, headers, out_dir, stop_event, queue) -> None:
    """One worker process: its shards (s % workers == w) into its own sink; report counts to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
    try:
        from generator.stream import open_streams

        _, _, streams = open_streams(config, [s for s in range(config.shards) if s % workers == w])
        sink = _sink_for(sink_kind, settings, config, topic_names, headers, out_dir, f".w{w}")
        stop = _Stop(stop_event)
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        last = [time.monotonic()]

        def tick():
            now = time.monotonic()
            if now - last[0] >= PROGRESS_TTY_S:
                last[0] = now
                queue.put(("progress", w, _sent(streams), sum(sink.failed.values()), _pending(sink)))
        t_start = time.monotonic()
        why = _run(streams, sink, profile, deadline, stop, tick)
        sink.close()
        stats = ledger_mod.merge([s.finish_stats() for s in streams])
        queue.put(("done", w, {"stats": stats, "failed": sink.failed, "errors": sink.errors, "why": why,
                               "shard_j": {s.shard: s.j for s in streams}, "t0": t_start, "t1": time.monotonic()}))
    except BaseException as e:  # noqa: BLE001 - report, never die silently
        queue.put(("error", w, str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"))


def _sent(streams) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in streams:
        for t, (n, _, _) in s.stats.topics.items():
            out[t] = out.get(t, 0) + n
    return out


def produce(settings, config: GeneratorConfig, rate: float = 0, duration: float | None = None, workers: int = 1,
            progress: bool | None = None, *, sink: str = "kafka", out_dir: str | None = None,
            ramp_s: float = 0.0, burst_every_s: float = 0.0, burst_for_s: float = 0.0, burst_factor: float = 1.0,
            schema_registry: str | None = None) -> dict:
    """Generate `config` into Kafka (or stdout/files) and return the ledger dict."""
    if rate < 0:
        raise UserError("--rate must be >= 0 (0 means as fast as possible).")
    if workers < 1:
        raise UserError("--workers must be >= 1.")
    if duration is not None and duration <= 0:
        raise UserError("--duration must be > 0 seconds.")
    if config.activities < 0 and duration is None and config.shard_limits is None and sink != "kafka":
        raise UserError("an endless run (--count -1) to stdout or files needs --duration.")
    config = config.replace(shards=max(config.shards, workers)).check()
    if progress is None:
        progress = sys.stderr.isatty()
    profile = RateProfile(rate, ramp_s, burst_every_s, burst_for_s, burst_factor)

    from generator.stream import open_streams

    logical = [config.topic or _stem(config.schema_path)] if config.schema_path else \
        list(SOURCES)
    topic_names = {t: settings.topic(t) if settings is not None else t for t in logical}
    headers, registry_ids = {}, {}
    if sink == "kafka":
        probe_kafka(settings)
        _ensure_topics(settings, logical)
        registry = schema_registry or settings.schema_registry_url
        if config.format == "avro" and registry:
            headers, registry_ids = _register(registry, config, topic_names)

    t0 = time.monotonic()
    prog = Progress(bool(progress))
    stop = _Stop()
    restore = stop.install()
    try:
        # 1. the snapshot of customers and offers, acknowledged before any activity is sent
        entities, entity_stats, streams = open_streams(config, list(range(config.shards)) if workers == 1 else [])
        main_sink = _sink_for(sink, settings, config, topic_names, headers, out_dir)
        if entities:
            main_sink.send(entities)
            if sink == "kafka":
                main_sink.p.flush(60)
                if sum(main_sink.failed.values()):
                    raise UserError(f"Kafka rejected the customer/offer snapshot ({'; '.join(main_sink.errors[:2])}); "
                                    "no activity was sent.")
        prog.tick(_topic_counts(entity_stats), 0, force=True)
        deadline = None if duration is None else time.monotonic() + duration
        t_stream = time.monotonic()
        # 2. activities
        if workers == 1:
            why = _run(streams, main_sink, profile, deadline, stop,
                       lambda: prog.tick(_merge_counts(entity_stats, _sent(streams)), sum(main_sink.failed.values()),
                                         pending=_pending(main_sink)))
            main_sink.close()
            results = [{"stats": ledger_mod.merge([s.finish_stats() for s in streams]), "failed": {}, "errors": [],
                        "why": why, "shard_j": {s.shard: s.j for s in streams}}]
        else:
            main_sink.close()
            if sink == "kafka":
                main_sink.p = None   # destroy the parent's producer (and its threads) before forking
            results = _run_workers(workers, settings, config, profile.scaled(1 / workers), duration, sink,
                                   topic_names, headers, out_dir, stop, prog, entity_stats)
    finally:
        restore()
    elapsed = time.monotonic() - t0
    stream_elapsed = time.monotonic() - t_stream
    if all("t0" in r for r in results):   # workers: from the first one streaming to the last one flushed
        stream_elapsed = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    prog.done()

    stats = ledger_mod.merge([entity_stats] + [r["stats"] for r in results])
    failed = dict(main_sink.failed)
    for r in results:
        for t, n in r["failed"].items():
            failed[t] = failed.get(t, 0) + n
    shard_j = {}
    for r in results:
        shard_j.update(r["shard_j"])
    done_counts = [shard_j.get(s, 0) for s in range(config.shards)]
    why = next((r["why"] for r in results if r["why"] != "count"), "count")
    effective = config.replace(activities=sum(done_counts))
    if [effective.shard_limit(s) for s in range(config.shards)] != done_counts:
        effective = effective.replace(shard_limits=done_counts)
    errors = list(main_sink.errors) + [e for r in results for e in r["errors"]]
    out = ledger_mod.build(effective, stats, topic_names, failed, elapsed, activities=sum(done_counts),
                           sink=sink, workers=workers, errors=errors, stopped_by=why, registry_ids=registry_ids)
    # the streaming phase alone (after setup and the entity snapshot): what a load test wants to read
    streamed = sum(t["sent"] for t in out["topics"].values()) - len(entities)
    out["stream_elapsed_s"] = round(stream_elapsed, 3)
    out["stream_rate_msgs_per_s"] = round(streamed / stream_elapsed, 1) if stream_elapsed > 0 else None
    return out


def _run_workers(workers, settings, config, profile, duration, sink, topic_names, headers, out_dir, stop, prog,
                 entity_stats) -> list[dict]:
    ctx = mp.get_context("fork")
    queue, stop_event = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(w, workers, settings, config, profile, duration, sink, topic_names,
                                               headers, out_dir, stop_event, queue), daemon=True)
             for w in range(workers)]
    for p in procs:
        p.start()
    sent = {w: {} for w in range(workers)}
    failed = {w: 0 for w in range(workers)}
    pending = {w: 0 for w in range(workers)}
    results, errors = {}, []
    import queue as queue_mod

    while len(results) + len(errors) < workers:
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


def _topic_counts(stats: Stats) -> dict[str, int]:
    return {t: n for t, (n, _, _) in stats.topics.items()}


def _merge_counts(stats: Stats, more: dict[str, int]) -> dict[str, int]:
    out = _topic_counts(stats)
    for t, n in more.items():
        out[t] = out.get(t, 0) + n
    return out


def _stem(path: str) -> str:
    from pathlib import Path

    return Path(path).stem


def _ensure_topics(settings, logical: list[str]) -> None:
    from foundation.catalog import TOPICS, Topic
    from foundation.topics import ensure_topics

    known = {t.name: t for t in TOPICS}
    ensure_topics(settings, [known.get(t, Topic(t, 1)) for t in logical])


def _register(url: str, config: GeneratorConfig, topic_names: dict[str, str]):
    from generator.registry import register, wire_header
    from generator.schema import load_project_schemas, load_schema

    schemas = ({next(iter(topic_names)): load_schema(config.schema_path)} if config.schema_path
               else load_project_schemas(config.schema_dir))
    ids = {t: register(url, f"{topic_names[t]}-value", schemas[t].raw) for t in topic_names}
    return {t: wire_header(i) for t, i in ids.items()}, ids

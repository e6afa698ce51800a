"""Several producer processes: each streams its own shards into its own sink; the parent merges.

Workers are forked after the parent has sent (and closed the sink of) the entity snapshot, so no
producer threads are inherited. Each reports progress and its StreamResult through one queue.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
import time

from foundation import UserError
from generator.drive import StreamResult, add_counts, drive, sent_counts, topic_counts
from generator.plan import LoadPlan
from generator.progress import PROGRESS_TTY_S, Progress, StopSignal
from generator.sinks import open_sink
from generator.stream import open_streams

JOIN_TIMEOUT_S = 10
POLL_S = 0.2


def run_workers(plan: LoadPlan, stop: StopSignal, prog: Progress, entity_stats) -> list[StreamResult]:
    """Run plan.workers processes to the end (or stop); their results in worker order."""
    ctx = mp.get_context("fork")
    queue, stop_event = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_worker, args=(plan, w, stop_event, queue), daemon=True) for w in range(plan.workers)]
    for p in procs:
        p.start()
    board = _Board(plan.workers, prog, topic_counts(entity_stats))
    results: dict[int, StreamResult] = {}
    errors: list[str] = []
    while len(results) + len(errors) < plan.workers:
        if stop():
            stop_event.set()
        try:
            kind, w, *payload = queue.get(timeout=POLL_S)
        except queue_mod.Empty:
            if not any(p.is_alive() for p in procs) and queue.empty():
                errors.append("a worker process died without reporting")
                break
            continue
        if kind == "progress":
            board.update(w, *payload)
        elif kind == "done":
            results[w] = payload[0]
        else:
            errors.append(f"worker {w}: {payload[0]}")
            stop_event.set()
    for p in procs:
        p.join(timeout=JOIN_TIMEOUT_S)
    if errors:
        raise UserError(errors[0].rstrip(".") + ".")
    return [results[w] for w in sorted(results)]


class _Board:
    """The latest counts of every worker, shown as one progress line."""

    def __init__(self, workers: int, prog: Progress, base: dict[str, int]):
        self.prog, self.base = prog, base
        self.sent: dict[int, dict[str, int]] = {w: {} for w in range(workers)}
        self.failed = dict.fromkeys(range(workers), 0)
        self.pending = dict.fromkeys(range(workers), 0)

    def update(self, w: int, sent: dict[str, int], failed: int, pending: int) -> None:
        self.sent[w], self.failed[w], self.pending[w] = sent, failed, pending
        self.prog.tick(add_counts(self.base, *self.sent.values()), sum(self.failed.values()),
                       pending=sum(self.pending.values()))


def _worker(plan: LoadPlan, w: int, stop_event, queue) -> None:
    """One worker process: its shards into its own sink; progress and the result go to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides when to stop
    try:
        _, _, streams = open_streams(plan.config, plan.worker_shards(w))
        sink = open_sink(plan, f".w{w}")
        last = [time.monotonic()]

        def tick():
            now = time.monotonic()
            if now - last[0] >= PROGRESS_TTY_S:
                last[0] = now
                queue.put(("progress", w, sent_counts(streams), sum(sink.failed.values()), sink.pending()))
        result = drive(streams, sink, plan.worker_profile(), plan.deadline(), StopSignal(stop_event), tick)
        queue.put(("done", w, result))
    except BaseException as e:  # noqa: BLE001 - report, never die silently
        queue.put(("error", w, str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"))

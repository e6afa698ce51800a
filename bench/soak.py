"""Soak: the pipeline and the indexer under a steady load for a long time (`python -m bench --soak
600`). Once a minute: how far the job's and the indexer's consumer groups are behind, the newest
checkpoint's duration and size, and the RSS of every process; at the end, whether any of them grows.

Two verdicts per figure, each "more than the noise floor and more than the share": *grew*, the mean
of the last three samples against the three after the warm-up minute (25 %), and *still growing*,
the last three against the three before them (10 %): a figure that grew and levelled off (state
filling up to the deduplication horizon) grew but is not still growing. Noise floors: lag 2 s of
load (the job commits its offsets only at checkpoints, every 5 s), checkpoint time 1 s, sizes and
RSS 16 MB.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time

from foundation import catalog
from foundation.settings import Settings
from flink_jobs import pipeline
from flink_jobs.options import JobOptions
from flink_jobs.rest import FlinkRest

log = logging.getLogger("churnstream.bench")

MB = 1024 * 1024


def group_lag(settings: Settings, group: str, topics: list[str]) -> int | None:
    """Records in `topics` not yet committed by `group` (None before its first commit)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka_client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        parts = []
        for t in topics:
            parts += [TopicPartition(t, p) for p in c.list_topics(t, timeout=10).topics[t].partitions]
        committed = c.committed(parts, timeout=10)
        if all(tp.offset < 0 for tp in committed):
            return None
        lag = 0
        for tp in committed:
            lo, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            lag += hi - (tp.offset if tp.offset >= 0 else lo)
        return lag
    finally:
        c.close()


def checkpoint(rest: FlinkRest, jid: str) -> dict:
    """The newest completed checkpoint: end-to-end ms, full state size and what it wrote (bytes)."""
    stats = rest.checkpoints(jid)
    done = (stats.get("latest") or {}).get("completed") or {}
    counts = stats.get("counts") or {}
    return {"checkpoint_ms": done.get("end_to_end_duration"), "state_mb": _mb(done.get("state_size")),
            "checkpointed_mb": _mb(done.get("checkpointed_data_size")), "checkpoints": counts.get("completed"),
            "checkpoints_failed": counts.get("failed")}


def _mb(n) -> float | None:
    return round(n / MB, 2) if isinstance(n, (int, float)) else None


def rss_mb(mon) -> dict[str, float]:
    """RSS per process group now (MB)."""
    return {g: round(sum(status["VmRSS"] for _, status in procs.values()) / 1024, 1)
            for g, procs in mon.sample().items() if procs}


def grows(values: list[float | None], floor: float, recent: bool = False) -> bool | None:
    """The verdicts of the module doc string (recent: still growing); None with too few samples."""
    v = [x for x in values[1:] if x is not None]     # the first minute is the warm-up
    if len(v) < 6:
        return None
    early = statistics.mean(v[-6:-3] if recent else v[:3])
    late = statistics.mean(v[-3:])
    return late - early > max(floor, (0.10 if recent else 0.25) * abs(early))


FLOORS = {"job_lag": "2 s of load", "indexer_lag": "2 s of load", "checkpoint_ms": 1000, "state_mb": 16}


def verdicts(x: dict) -> dict[str, dict[str, bool | None]]:
    """figure -> {"grew": ..., "still_growing": ...} from the samples of a soak run."""
    samples, rate = x["samples"], x["rate"]
    series = {k: [r[k] for r in samples] for k in FLOORS}
    floors = {k: 2 * rate if isinstance(f, str) else f for k, f in FLOORS.items()}
    for g in sorted({g for r in samples for g in r["rss_mb"]}):
        series[f"rss_{g}"] = [r["rss_mb"].get(g) for r in samples]
        floors[f"rss_{g}"] = 16
    return {k: {"grew": grows(v, floors[k]), "still_growing": grows(v, floors[k], recent=True)}
            for k, v in series.items()}


def soak(settings: Settings, rate: float, seconds: float, mon, every_s: float = 60.0) -> dict:
    from bench.job_bench import _wait_running, produce_events, run_job, start_indexer
    from foundation.topics import ensure_topics
    from kibana.templates import install_templates

    s = settings.with_(topic_prefix=f"{settings.topic_prefix}soak-", index_prefix=f"{settings.index_prefix}soak-")
    ensure_topics(s)
    install_templates(s)
    opts = JobOptions(bounded=False, group_id=f"{s.topic_prefix}job")
    indexer = start_indexer(s)
    result = run_job(s, opts, "pipeline", wait=False)
    samples: list[dict] = []
    ledgers: list[dict] = []
    try:
        _wait_running(result)
        indexer.wait_assigned()
        jid = str(result.get_job_client().get_job_id())
        rest = FlinkRest(json.loads(pipeline.run_file(s).read_text())["rest"], timeout=30)
        feed = threading.Thread(target=lambda: ledgers.append(
            produce_events(s, -1, rate=rate, start_ms=None, duration=seconds)), name="soak-feed", daemon=True)
        t0 = time.monotonic()
        with mon.phase() as measured:     # CPU of every process over the whole feed (bench/procs.py)
            feed.start()
            source = [s.topic(catalog.ACTIVITY)]
            results = list(catalog.result_topics(s).values())
            while True:
                feed.join(timeout=max(0.0, t0 + every_s * (len(samples) + 1) - time.monotonic()))
                row = {"minute": len(samples) + 1, "t_s": round(time.monotonic() - t0, 1),
                       "job_lag": group_lag(s, opts.group_id, source),
                       "indexer_lag": group_lag(s, f"{s.topic_prefix}indexer", results),
                       **checkpoint(rest, jid), "rss_mb": rss_mb(mon)}
                samples.append(row)
                log.info("bench: soak minute %d: job lag %s, indexer lag %s, checkpoint %s ms / %s MB, RSS %s",
                         row["minute"], row["job_lag"], row["indexer_lag"], row["checkpoint_ms"],
                         row["state_mb"], row["rss_mb"])
                if not feed.is_alive():
                    break
    finally:
        if result is not None:
            result.get_job_client().cancel().result()
        indexer.stop()
    ledger = ledgers[0] if ledgers else {}
    act = ledger.get("topics", {}).get(catalog.ACTIVITY, {})
    groups = measured.summary.get("groups", {}) if measured.summary else {}
    flink_cpu = groups.get("flink", {}).get("cpu_s")
    return {"rate": rate, "seconds": seconds, "delivered": act.get("delivered"),
            "state_backend": settings.state_backend, "procs": measured.summary,
            "flink_cpu_us_per_event": (round(flink_cpu * 1e6 / act["delivered"], 1)
                                       if flink_cpu is not None and act.get("delivered") else None),
            "achieved_rate": (round(act["delivered"] / ledger["stream_elapsed_s"])
                              if act.get("delivered") and ledger.get("stream_elapsed_s") else None),
            "samples": samples}


def backends_table(soaks: dict[str, dict]) -> list[str]:
    """The soaks of each state backend side by side (the same rate and length, back to back)."""
    def last(x, key):
        values = [r[key] for r in x["samples"] if r.get(key) is not None]
        return values[-1] if values else None

    def peak(x, group):
        values = [r["rss_mb"].get(group) for r in x["samples"] if r["rss_mb"].get(group) is not None]
        return max(values) if values else None

    def per_processed(x):
        cpu = ((x.get("procs") or {}).get("groups", {}).get("flink") or {}).get("cpu_s")
        done = (x.get("delivered") or 0) - (last(x, "job_lag") or 0)
        return round(cpu * 1e6 / done, 1) if cpu and done > 0 else None

    lines = ["## State backends side by side", "",
             "Each backend's soak (below): the same rate and length, run back to back "
             "(`CHURNSTREAM_STATE_BACKEND=<backend> python -m bench --soak SECONDS --soak-rate RATE`). Flink CPU: "
             "the mini-cluster JVM's CPU over the feed per activity the job read (delivered less its lag at the "
             "end); RSS: its peak of the per-minute samples; checkpoint and state: the last completed "
             "checkpoint (RocksDB's is incremental: what it uploaded); job lag at the end (a backend that "
             "cannot keep up shows here).", "",
             "| backend | msg/s achieved | Flink CPU µs/event read | Flink JVM peak RSS MB | checkpoint ms | state MB "
             "| job lag at the end |", "|---|---:|---:|---:|---:|---:|---:|"]
    for backend, x in soaks.items():
        lines.append(f"| {backend} | {x.get('achieved_rate')} | {per_processed(x)} | "
                     f"{peak(x, 'flink')} | {last(x, 'checkpoint_ms')} | {last(x, 'state_mb')} | "
                     f"{last(x, 'job_lag')} |")
    return lines + [""]

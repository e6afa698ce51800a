"""Flink job throughput (records/s) and end-to-end latency, each next to a pass-through job."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

from churnstream.settings import Settings
from flink_jobs import params as job_params
from flink_jobs import pipeline, sql_runner

log = logging.getLogger("churnstream.bench")
PASSTHROUGH = Path(__file__).with_name("passthrough.sql")


def run_job(settings: Settings, opts: job_params.JobOptions, kind: str, wait: bool = True):
    """kind: 'pipeline' (the product) or 'passthrough' (Kafka -> ES, no logic)."""
    if kind == "pipeline":
        return pipeline.run(settings, opts, wait=wait)
    from churnstream.artifacts import connector_jars

    t_env = pipeline.table_env(settings, jars=connector_jars(settings))
    pipeline.configure_checkpoints(t_env, settings)
    values = dict(job_params.build(settings, opts), index_passthrough=settings.index("passthrough"))
    script = sql_runner.load([pipeline.SOURCES, PASSTHROUGH], values)
    result = sql_runner.apply(t_env, script)
    if wait:
        result.wait()
    return result


def produce_events(settings: Settings, n: int, seed: int = 1, rate: float = 0, start_ms: int | None = 1_767_225_600_000,
                   duration: float | None = None):
    from generator import GeneratorConfig, produce

    config = GeneratorConfig(seed=seed, customers=10_000, offers=20, activities=n, start_ms=start_ms,
                             events_per_second=1000.0, skew="zipf", customer_update_rate=0.0)
    return produce(settings, config, rate=rate, duration=duration, workers=1, progress=False)


def throughput(settings: Settings, events: int, warmup_events: int = 2_000) -> dict:
    """Records/s of a bounded run over `events`, net of job start/stop (measured on a tiny run)."""
    from churnstream.topics import ensure_topics
    from kibana.templates import install_templates

    out = {}
    for kind in ("passthrough", "pipeline"):
        timings = {}
        for label, n in (("small", warmup_events), ("large", events)):
            s = settings.with_(topic_prefix=f"{settings.topic_prefix}{kind}-{label}-",
                               index_prefix=f"{settings.index_prefix}{kind}-{label}-")
            ensure_topics(s)
            install_templates(s)
            produce_events(s, n)
            t0 = time.monotonic()
            run_job(s, job_params.JobOptions(bounded=True, group_id=f"bench-{kind}-{label}"), kind)
            timings[label] = time.monotonic() - t0
            log.info("bench: %s job over %d events took %.1f s", kind, n, timings[label])
        net = max(timings["large"] - timings["small"], 1e-3)
        out[kind] = {"events": events, "wall_s": round(timings["large"], 1), "startup_s": round(timings["small"], 1),
                     "records_per_s": round((events - warmup_events) / net)}
    return out


def latency(settings: Settings, rate: float, seconds: float, out_of_orderness_s: int = 1) -> dict:
    """p50/p99/max from produce time (= event time, real clock) to document visible in Elasticsearch.

    The job runs unbounded; events are produced at `rate` for `seconds`. A poller counts documents
    every 50 ms; the k-th document's visibility is the first poll that saw k documents, the k-th
    event's produce time is its scheduled time. Quantiles over all k (order statistics, so no
    per-document timestamps are needed inside Elasticsearch).
    """
    from churnstream.topics import ensure_topics
    from kibana.templates import install_templates

    out = {}
    for kind, index_key in (("passthrough", "passthrough"), ("pipeline", "enriched")):
        s = settings.with_(topic_prefix=f"{settings.topic_prefix}lat-{kind}-",
                           index_prefix=f"{settings.index_prefix}lat-{kind}-")
        ensure_topics(s)
        install_templates(s)
        index = s.index("passthrough") if kind == "passthrough" else job_params.index_names(s)["enriched"]
        opts = dataclasses.replace(job_params.JobOptions(bounded=False, group_id=f"bench-lat-{kind}"),
                                   out_of_orderness_seconds=out_of_orderness_s, bulk_flush_interval="200ms")
        result = run_job(s, opts, kind, wait=False)
        es = s.es_client()
        _wait_running(result)
        time.sleep(3)     # let sources finish their first fetch
        seen: list[tuple[float, int]] = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    es.indices.refresh(index=index)
                    seen.append((time.time(), es.count(index=index)["count"]))
                except Exception:  # noqa: BLE001 - index not there yet
                    pass
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t_start = time.time()
        ledger = produce_events(s, -1, rate=rate, start_ms=None, duration=seconds)
        n = ledger["topics"]["customer_activity"]["delivered"]
        deadline = time.time() + 60
        while (not seen or seen[-1][1] < n) and time.time() < deadline:
            time.sleep(0.2)
        stop.set()
        poller.join()
        result.get_job_client().cancel().result()
        lat = []
        j = 0
        for k in range(1, n + 1):
            while j < len(seen) and seen[j][1] < k:
                j += 1
            if j == len(seen):
                break
            scheduled = t_start + (k - 1) / rate
            lat.append(seen[j][0] - scheduled)
        lat.sort()
        q = (lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))], 3)) if lat else (lambda p: None)
        out[kind] = {"rate": rate, "events": n, "visible": len(lat), "p50_s": q(0.5), "p99_s": q(0.99),
                     "max_s": round(lat[-1], 3) if lat else None, "out_of_orderness_s": out_of_orderness_s}
        log.info("bench: latency %s at %.0f msg/s: %s", kind, rate, out[kind])
    return out


def _wait_running(result, timeout: float = 120) -> None:
    client = result.get_job_client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "RUNNING" in str(client.get_job_status().result()):
            return
        time.sleep(0.5)
    raise RuntimeError("job did not reach RUNNING")

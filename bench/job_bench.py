"""Flink job throughput (records/s, Kafka -> Flink -> Kafka), end-to-end latency of the enriched index
and of window results (Kafka -> Flink -> result topic -> indexer -> Elasticsearch), each next to a
pass-through job; optionally with CPU/memory of the processes (bench/procs.py)."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from foundation import catalog
from foundation.logs import configure as configure_logs
from foundation.settings import Settings
from flink_jobs import params as job_params
from flink_jobs import pipeline, sql_runner
from flink_jobs.jars import JobJars
from flink_jobs.options import JobOptions

log = logging.getLogger("churnstream.bench")
PASSTHROUGH = Path(__file__).with_name("passthrough.sql")


def run_job(settings: Settings, opts: JobOptions, kind: str, wait: bool = True):
    """kind: 'pipeline' (the product) or 'passthrough' (Kafka -> the enriched result topic, no logic)."""
    try:
        if kind == "pipeline":
            return pipeline.run(settings, opts, wait=wait)
        jars = JobJars.resolve(settings)
        t_env = pipeline.table_env(settings, jars=jars, ship_jars=True)
        pipeline.configure_checkpoints(t_env, settings)
        values = job_params.build(settings, opts, jars)
        script = sql_runner.load([pipeline.SOURCES["json"], PASSTHROUGH], values)
        result = sql_runner.apply(t_env, script)
        if wait:
            result.wait()
        return result
    finally:
        pin_logs()


def pin_logs() -> None:
    """Keep the churnstream.* lines on stderr for the whole run (see foundation.logs.configure)."""
    configure_logs()


def warm_up(settings: Settings, events: int = 200) -> dict:
    """One tiny unmeasured run of each job: the first job of a process starts PyFlink's JVM, the first
    pipeline job also Beam's loopback UDF harness; neither belongs in a start-up or throughput figure."""
    from foundation.topics import ensure_topics

    out = {}
    for kind in ("passthrough", "pipeline"):
        s = settings.with_(topic_prefix=f"{settings.topic_prefix}{kind}-",
                           index_prefix=f"{settings.index_prefix}{kind}-")
        ensure_topics(s)
        produce_events(s, events)
        t0 = time.monotonic()
        run_job(s, JobOptions(bounded=True, group_id=f"bench-warm-{kind}"), kind)
        out[kind] = round(time.monotonic() - t0, 1)
        log.info("bench: warm-up %s job over %d events took %.1f s", kind, events, out[kind])
    return out


def produce_events(settings: Settings, n: int, seed: int = 1, rate: float = 0, start_ms: int | None = 1_767_225_600_000,
                   duration: float | None = None, fmt: str = "json"):
    from generator import GeneratorConfig, produce

    config = GeneratorConfig(seed=seed, customers=10_000, offers=20, activities=n, start_ms=start_ms,
                             events_per_second=1000.0, skew="zipf", customer_update_rate=0.0, format=fmt)
    return produce(settings, config, rate=rate, duration=duration, workers=1, progress=False,
                   schema_registry=settings.schema_registry_url if fmt == "avro" else None)


class _NoPhase:
    summary = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def phase(mon):
    """CPU/memory of the stack's processes while the block runs (bench/procs.py); a no-op without a monitor."""
    return mon.phase() if mon is not None else _NoPhase()


def throughput(settings: Settings, kind: str, events: int, mon=None, small_events: int = 2_000,
               fmt: str = "json", profile_to: Path | None = None) -> dict:
    """Records/s of a bounded run of job `kind` over `events`, Kafka -> Flink -> the result topics, net of
    job start/stop (measured on a tiny run); ``fmt`` avro: the pipeline over Avro topics (--format avro).
    ``profile_to``: a JFR recording of the Flink JVM during the large run is written there and its
    summary (bench/profile.py) returned as "profile"; jcmd runs outside the timed block."""
    import contextlib

    from foundation.topics import ensure_topics

    timings, procs = {}, {}
    for label, n in (("small", small_events), ("large", events)):
        s = settings.with_(topic_prefix=f"{settings.topic_prefix}{kind}-{label}-",
                           index_prefix=f"{settings.index_prefix}{kind}-{label}-")
        ensure_topics(s)      # the sources and the result topics the job writes
        produce_events(s, n, fmt=fmt)
        recording = contextlib.nullcontext()
        if profile_to is not None and label == "large":
            from bench import profile

            recording = profile.Recording(profile.flink_pid(mon), profile_to)   # the small run started the JVM
        with recording:
            with phase(mon) as ph:
                t0 = time.monotonic()
                run_job(s, JobOptions(bounded=True, format=fmt, group_id=f"bench-{kind}-{label}"), kind)
                timings[label] = time.monotonic() - t0
        procs[label] = ph.summary
        log.info("bench: %s job over %d events took %.1f s", kind, n, timings[label])
    net = timings["large"] - timings["small"]
    # A large run no longer than the small one (tiny sizes, noise) gives no figure rather than a silly one.
    rps = round((events - small_events) / net) if net > 0 and events > small_events else None
    out = {"events": events, "small_events": small_events, "wall_s": round(timings["large"], 1), "startup_s": round(timings["small"], 1),
           "records_per_s": rps, "procs": procs["large"], "procs_small": procs["small"]}
    if profile_to is not None:
        from bench import profile

        out["profile"] = profile.summarise_file(profile_to)
    return out


def latency(settings: Settings, kind: str, rate: float, seconds: float, mon=None, out_of_orderness_s: int = 1,
            settle_s: float = 8.0, drain_timeout_s: float = 60.0, warmup_s: float = 0.0) -> dict:
    """p50/p99/max from produce time (= event time, real clock) to document visible in Elasticsearch:
    Kafka -> the job -> its result topics -> the indexer (`churnstream index`, a process of its own,
    sampled as the procs group `indexer`) -> Elasticsearch.

    The first `warmup_s` seconds of the stream are produced but not measured: right after a start
    the temporal joins wait for the idle customer and offer topics to be marked idle (the idle
    timeout, 5 s), and the backlog this builds takes a while to drain at a load near capacity. That
    start-up transient is reported apart (warmup_s=0), not mixed into the steady state.

    The job runs unbounded, and the indexer beside it with its default batching; events are produced
    at `rate` for `seconds`. A poller counts documents every 50 ms; the k-th document's visibility is
    the first poll that saw k documents, the k-th event's produce time is its event time as the
    generator stamped it (the ledger's first and last activity event times, spaced evenly in between:
    the pace the generator really achieved, which is below `rate` when it cannot keep up). Quantiles
    over all k (order statistics, so no per-document timestamps are needed inside Elasticsearch).

    For the pipeline the same run also measures the window results: the poller records when each
    segments (HOP window) document is first seen; its latency is that time minus (window_end +
    the out-of-orderness bound), i.e. window size and watermark delay are subtracted (window_end is
    wall-clock time since the events carry the real clock).

    The pass-through job writes its prefix's enriched result topic (bench/passthrough.sql) with
    documents {"payload": "<the activity's JSON>"}; its index is created beforehand with the same
    shards, replicas and refresh interval as the templates' and no mapping (dynamic false: kept in
    _source, nothing indexed), so the product's strict enriched template does not refuse them.

    The wait after producing ends when every event is visible, or when neither index has grown
    for `settle_s` (the pipeline's last events and windows wait for a watermark that only later
    traffic would move), or after `drain_timeout_s`.
    """
    from foundation.topics import ensure_topics
    from kibana.templates import index_settings, install_templates

    s = settings.with_(topic_prefix=f"{settings.topic_prefix}lat-{kind}-",
                       index_prefix=f"{settings.index_prefix}lat-{kind}-")
    ensure_topics(s)
    names = catalog.index_names(s)
    index = names["enriched"]
    windows_index = names["segments"] if kind == "pipeline" else None
    if kind == "passthrough":
        o = index_settings(s)
        s.es_client().indices.create(index=index, mappings={"dynamic": False}, settings={
            "number_of_shards": o["shards"], "number_of_replicas": o["replicas"],
            "refresh_interval": o["refresh_interval"]})
    else:
        install_templates(s)
    opts = dataclasses.replace(JobOptions(bounded=False, group_id=f"bench-lat-{kind}"),
                               out_of_orderness_seconds=out_of_orderness_s)
    indexer = start_indexer(s)
    result = None
    poller = _Poller(s.es_client(), index, windows_index)
    try:
        result = run_job(s, opts, kind, wait=False)
        _wait_running(result)
        indexer.wait_assigned()
        time.sleep(3)     # let sources finish their first fetch
        poller.start()
        with phase(mon) as ph:
            ledger = produce_events(s, -1, rate=rate, start_ms=None, duration=warmup_s + seconds)
            act = ledger["topics"]["customer_activity"]
            n = act["delivered"]
            why = poller.wait(n, settle_s, drain_timeout_s)
    finally:
        poller.stop()
        if result is not None:
            result.get_job_client().cancel().result()   # never leave an unbounded job running
        indexer.stop()
    log.info("bench: latency %s at %.0f msg/s: %d events, drain ended by %s", kind, rate, n, why)
    t_first, t_last = act["event_time_min"] / 1000, act["event_time_max"] / 1000
    pace = (t_last - t_first) / (n - 1) if n > 1 else 0.0
    lat = []
    j = 0
    seen = poller.counts
    skip = warmup_events(n, pace, warmup_s)
    for k in range(skip + 1, n + 1):
        while j < len(seen) and seen[j][1] < k:
            j += 1
        if j == len(seen):
            break
        lat.append(seen[j][0] - (t_first + (k - 1) * pace))
    out = {"rate": rate, "achieved_rate": round((n - 1) / (t_last - t_first)) if t_last > t_first else None,
           "events": n - skip, "visible": len(lat), **quantiles(lat), "out_of_orderness_s": out_of_orderness_s,
           "warmup_s": warmup_s,
           "procs": ph.summary}
    if windows_index:
        measured = [(t, end) for t, end in poller.windows.values() if end >= t_first + warmup_s]
        wl = [t - (end + out_of_orderness_s) for t, end in measured]
        by_end: dict[str, float] = {}     # per window end: the first of its documents to be seen
        for t, end in measured:
            key = datetime.datetime.fromtimestamp(end, datetime.timezone.utc).strftime("%H:%M:%S")
            by_end[key] = round(min(by_end.get(key, float("inf")), t - (end + out_of_orderness_s)), 3)
        out["windows"] = {"documents": len(wl), "window_ends": len(by_end),
                          "window_size_s": opts.window_size_seconds, "window_slide_s": opts.window_slide_seconds,
                          "out_of_orderness_s": out_of_orderness_s, **quantiles(wl),
                          "first_seen_by_window_end": dict(sorted(by_end.items()))}
    log.info("bench: latency %s at %.0f msg/s: %s", kind, rate,
             {k: v for k, v in out.items() if k not in ("procs", "windows")})
    if windows_index:
        log.info("bench: window latency at %.0f msg/s: %s", rate,
                 {k: v for k, v in out["windows"].items() if k != "first_seen_by_window_end"})
    return out


class IndexerProcess:
    """`churnstream index` over the settings' result topics, as a child process in a session of its
    own (bench/procs.py samples it as the group `indexer`), logging to a file under the run folder."""

    def __init__(self, settings: Settings, group: str):
        self.log_file = Path(settings.run_dir) / f"indexer-{settings.topic_prefix.rstrip('-')}.log"
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **settings.to_env()}
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "churnstream", "index", "--group", group], env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def wait_assigned(self, timeout: float = 60) -> None:
        """Until the indexer has its partitions (its log says so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the indexer exited ({self.proc.returncode}); see {self.log_file}")
            if "indexer: assigned" in self.log_file.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the indexer got no partitions in {timeout:.0f} s; see {self.log_file}")

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (it commits what is indexed and stops), then SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("bench: the indexer did not stop within %.0f s of SIGTERM; killing it", timeout)
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_indexer(settings: Settings) -> IndexerProcess:
    return IndexerProcess(settings, group=f"{settings.topic_prefix}indexer")


def warmup_events(n: int, pace: float, warmup_s: float) -> int:
    """How many of n events spaced `pace` seconds apart were produced within the first `warmup_s`
    seconds (event k at (k-1) * pace; the tolerance keeps 20 / 0.001 from rounding up a whole event)."""
    if pace <= 0 or warmup_s <= 0:
        return 0
    return min(n, math.ceil(warmup_s / pace - 1e-9))


def quantiles(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    q = lambda p: round(v[min(len(v) - 1, int(p * len(v)))], 3)  # noqa: E731
    return {"p50_s": q(0.5), "p99_s": q(0.99), "max_s": round(v[-1], 3)}


class _Poller:
    """Counts the documents of `index` every 50 ms; notes when each window document is first seen."""

    def __init__(self, es, index: str, windows_index: str | None, interval: float = 0.05, windows_every: int = 5):
        self.es, self.index, self.windows_index = es, index, windows_index
        self.interval, self.windows_every = interval, windows_every
        self.counts: list[tuple[float, int]] = []              # (wall time, documents visible)
        self.windows: dict[str, tuple[float, float]] = {}       # window_id -> (first seen, window_end epoch s)
        self.last_growth = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-poller")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            check_windows = self.windows_index is not None and i % self.windows_every == 0
            i += 1
            try:
                self.es.indices.refresh(index=f"{self.index},{self.windows_index}" if check_windows else self.index,
                                        ignore_unavailable=True)
                t = time.time()
                n = self.es.count(index=self.index)["count"]
                if not self.counts or n > self.counts[-1][1]:
                    self.last_growth = time.monotonic()
                self.counts.append((t, n))
                if check_windows:
                    self._windows(t)
            except Exception:  # noqa: BLE001 - index not there yet
                pass
            time.sleep(self.interval)

    def _windows(self, t: float) -> None:
        if self.es.count(index=self.windows_index)["count"] <= len(self.windows):
            return
        r = self.es.search(index=self.windows_index, size=10_000, source=["window_end"],
                           filter_path="hits.hits._id,hits.hits._source")
        for h in r.get("hits", {}).get("hits", []):
            if h["_id"] not in self.windows:
                self.windows[h["_id"]] = (t, window_end_epoch(h["_source"]["window_end"]))
                self.last_growth = time.monotonic()

    def wait(self, n: int, settle_s: float, timeout_s: float) -> str:
        """Until all `n` documents are visible ('all'), nothing grew for `settle_s` ('settled'), or 'timeout'."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.counts and self.counts[-1][1] >= n:
                return "all"
            if time.monotonic() - self.last_growth > settle_s:
                return "settled"
            time.sleep(0.2)
        return "timeout"


def window_end_epoch(value) -> float:
    """window_end as the connector writes it: ISO-8601 in UTC without a zone (table.local-time-zone=UTC)."""
    if isinstance(value, (int, float)):
        return value / 1000
    dt = datetime.datetime.fromisoformat(str(value).rstrip("Z"))
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def _wait_running(result, timeout: float = 120) -> None:
    client = result.get_job_client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "RUNNING" in str(client.get_job_status().result()):
            return
        time.sleep(0.5)
    raise RuntimeError("job did not reach RUNNING")

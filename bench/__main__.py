"""`python -m bench [--smoke] [--repeat N] [--only PHASES] [--profile]`: the benchmark suite on the local stack,
each figure with its ceiling.

Writes RESULTS.md and results.json (environment, command, every raw value) into --out (default bench/).
Each figure is measured --repeat times (median and min-max spread are reported); CPU and peak memory
of Kafka, Elasticsearch, the Flink JVM, the indexer and this Python process are sampled from /proc
during every measured phase. Not a test: no figure is asserted anywhere; a smoke run with tiny sizes is part of
the test suite. --only runs some phases (e.g. `--only throughput --profile --repeat 1`: a few minutes
instead of half an hour); --profile records a Java Flight Recorder profile of the Flink JVM during the
throughput runs (bench/profile.py) and reports where its CPU goes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

from foundation.logs import configure as configure_logs

HERE = Path(__file__).parent
ROOT = HERE.parent
log = logging.getLogger("churnstream.bench")
PHASES = ("indexer", "generator", "throughput", "latency", "scaleout")
RESULT_KEYS = ("indexer", "generator", "job_throughput", "latency", "scaleout")   # where each phase's figures go


def environment() -> dict:
    from foundation.versions import versions

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "?")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    packages = {}
    for d in deps:
        name = d.split("==")[0].split(">")[0].split("<")[0].strip()
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    from foundation.settings import Settings

    s = Settings.from_env()
    return {"flink_heap": s.flink_heap, "checkpoint_interval_ms": s.checkpoint_interval_ms,
            "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(), "java": _java_version(),
            "es_java": _java_version(es=True),
            "versions": vars(versions()), "python_packages": packages,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def _java_version(es: bool = False) -> str:
    """The Java of Kafka and Flink, or (``es``) the one the local Elasticsearch runs on."""
    try:
        from foundation.artifacts import es_java_home, java_home
        from foundation.settings import Settings

        home = es_java_home(Settings.from_env()) if es else java_home()
        r = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30)
        return r.stderr.splitlines()[0].strip()
    except Exception:  # noqa: BLE001 - informative only
        return "?"


def spread(values: list) -> dict:
    """Median and min-max of the repeated measurements (None values: runs that produced no figure)."""
    v = [x for x in values if x is not None]
    if not v:
        return {"median": None, "min": None, "max": None, "values": values}
    med = statistics.median(v)
    return {"median": round(med, 3) if isinstance(med, float) else med, "min": min(v), "max": max(v), "values": values}


def summarise(runs: list[dict], keys: tuple[str, ...]) -> dict:
    return {"runs": runs, **{k: spread([r.get(k) for r in runs]) for k in keys}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--events", type=int, default=1_000_000, help="events for the job throughput run")
    p.add_argument("--rates", default="1000,5000,20000", help="latency loads, msg/s")
    p.add_argument("--latency-seconds", type=float, default=30)
    p.add_argument("--latency-warmup", type=float, default=20,
                   help="seconds of load before latency is measured (the start-up transient; 0 measures it)")
    p.add_argument("--es-docs", type=int, default=200_000,
                   help="enriched documents on the result topic for the indexer and its raw bulk ceiling")
    p.add_argument("--es-warmup-docs", type=int, default=150_000,
                   help="documents indexed (unmeasured) first: a fresh Elasticsearch node is slower at first")
    p.add_argument("--gen-count", type=int, default=500_000, help="messages per generator measurement")
    p.add_argument("--repeat", type=int, default=None, help="measurements of each figure (default 3; --smoke: 1)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (except those given): checks the harness, not the speed")
    p.add_argument("--out", default=str(HERE),
                   help="folder for RESULTS.md and results.json (and, with --profile, profiles/*.jfr)")
    p.add_argument("--soak", type=float, metavar="SECONDS",
                   help="instead of the suite: hold --soak-rate for this long with the job and the indexer running, "
                        "and report lag, checkpoints and memory per minute (added to the existing results)")
    p.add_argument("--soak-rate", type=float, default=5000, help="msg/s of the soak (5000)")
    p.add_argument("--only", default=",".join(PHASES), metavar="PHASES",
                   help=f"comma list of the phases to run, of {', '.join(PHASES)} (default: all)")
    p.add_argument("--profile", action="store_true",
                   help="record a JFR profile of the Flink JVM during each large throughput run (into <out>/profiles/) "
                        "and report the top frames and the CPU share per operator chain")
    args = p.parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    if args.smoke and args.only == p.get_default("only"):
        only.remove("scaleout")     # the cluster topology is tests/test_scaleout.py's; a smoke run checks the harness
    if not only or set(only) - set(PHASES):
        p.error(f"--only takes a comma list of {', '.join(PHASES)}; got {args.only!r}")
    if args.profile:
        if "throughput" not in only:
            p.error("--profile profiles the throughput runs: add throughput to --only")
        from bench.profile import ProfileError, jdk_tool

        try:
            jdk_tool("jcmd"), jdk_tool("jfr")      # fail before the stack starts, not after the first phases
        except ProfileError as e:
            p.error(str(e))
    if args.soak is not None and args.soak < 180:
        p.error("--soak needs at least 180 seconds (the verdict compares minutes 2-4 with the last three)")
    if args.smoke:
        # 12 s of load: a 10 s window slide boundary is always crossed with 2 s to spare, so window
        # results appear even in the smoke run. A size given on the command line is kept (e.g.
        # `--smoke --es-docs 200000` checks the indexer figure at full size, the rest tiny).
        tiny = {"events": 3_000, "rates": "500", "latency_seconds": 12, "es_docs": 2_000, "gen_count": 5_000,
                "es_warmup_docs": 1_000}
        for name, value in tiny.items():
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
        args.latency_warmup = min(args.latency_warmup, 2)
    repeat = args.repeat or (1 if args.smoke else 3)
    configure_logs()
    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, through the finally blocks: the indexer child
    # is stopped, the unbounded job cancelled and the run's topics and indices deleted. Without
    # this, a killed soak left its `churnstream index` polling and its topics on disk.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    from bench import es_bench, generator_bench, job_bench
    from bench.procs import ProcMonitor
    from foundation.localstack import stack
    from foundation.settings import Settings

    job_bench.pin_logs()    # before any job: PyFlink's UDF harness takes over the root logger

    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    settings = stack.up(Settings.from_env())
    kafka, es, _registry = stack.services(settings)
    mon = ProcMonitor(kafka_pid=kafka.pid(), es_pid=es.pid())
    tag = "b" + uuid.uuid4().hex[:6]
    base = settings.with_(run_dir=str(Path(settings.run_dir) / "bench"))
    results = {"command": command.strip(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "repeat": repeat,
               "phases": [x for x in PHASES if x in only],
               "environment": environment(), "processes": {"kafka": mon.fixed["kafka"],
                                                           "elasticsearch": mon.fixed["elasticsearch"]}}
    out = Path(args.out)
    t_all = time.monotonic()
    if args.soak is not None:
        return _soak_only(args, base, tag, mon, command, results["environment"])

    def s_for(what: str, i: int):
        return base.with_(topic_prefix=f"{tag}-{what}{i}-", index_prefix=f"{tag}-{what}{i}-")

    try:
        if "indexer" in only:
            results["indexer"] = indexer_figures(es_bench, s_for, mon, args.es_docs, args.es_warmup_docs, repeat)
        if "generator" in only:
            results["generator"] = generator_figures(generator_bench, job_bench, s_for, mon, args.gen_count, repeat)
        if {"throughput", "latency", "scaleout"} & set(only):
            results["warm_up_s"] = job_bench.warm_up(s_for("warm", 0))
        if "throughput" in only:
            results["job_throughput"] = {}
            for kind in ("passthrough", "pipeline"):
                runs = [job_bench.throughput(s_for("tp", i), kind, args.events, mon,
                                             profile_to=out / "profiles" / f"throughput-{kind}-{i + 1}.jfr"
                                             if args.profile else None)
                        for i in range(repeat)]
                results["job_throughput"][kind] = summarise(runs, ("records_per_s", "wall_s", "startup_s"))
        if "latency" in only:
            results["latency"] = latency_figures(job_bench, s_for, mon, args, repeat)
        if "scaleout" in only:
            from bench import scaleout_bench

            results["scaleout"] = scaleout_bench.figures(s_for, mon, args.events, Path(base.run_dir) / "cluster")
    finally:
        _cleanup(base, tag)
    results["total_s"] = round(time.monotonic() - t_all, 1)
    results["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "RESULTS.md").write_text(render(results))
    print(render(results))
    return 0


def generator_figures(generator_bench, job_bench, s_for, mon, count: int, repeat: int) -> dict:
    """The generator's msgs/s (one and two workers) next to a bare confluent-kafka produce loop."""
    from foundation.topics import ensure_topics

    variants = {"bare": ("bare confluent-kafka loop (ceiling)", 1), "json-1": ("generator json", 1),
                "json-2": ("generator json", 2)}
    gen = {"count": count, "variants": {}}
    for key, (label, workers) in variants.items():
        runs = []
        for i in range(repeat):
            s = s_for("gen", i)
            ensure_topics(s)
            with job_bench.phase(mon) as ph:
                rate = (generator_bench.bare_loop(s, count) if key == "bare"
                        else generator_bench.generator_rate(s, count, "json", workers))
            runs.append({"msgs_per_s": round(rate), "procs": ph.summary})
            log.info("bench: %s x%d %d/%d: %.0f msgs/s", label, workers, i + 1, repeat, rate)
        gen["variants"][key] = {"label": label, "workers": workers, **summarise(runs, ("msgs_per_s",))}
    return gen


def latency_figures(job_bench, s_for, mon, args, repeat: int) -> dict:
    """End-to-end latency of both jobs at each load of --rates, and the pipeline's window results."""
    out = {}
    for rate in args.rates.split(","):
        by_kind = {}
        for kind in ("passthrough", "pipeline"):
            runs = [job_bench.latency(s_for(f"lat{rate}-", i), kind, float(rate), args.latency_seconds, mon,
                                      warmup_s=args.latency_warmup)
                    for i in range(repeat)]
            by_kind[kind] = summarise(runs, ("p50_s", "p99_s", "max_s", "events", "visible", "achieved_rate"))
        windows = [r["windows"] for r in by_kind["pipeline"]["runs"]]
        by_kind["windows"] = summarise(windows, ("p50_s", "p99_s", "max_s", "documents", "window_ends"))
        out[rate] = by_kind
    return out


def _exit_on_sigterm(signum, frame):   # noqa: ARG001
    raise SystemExit(128 + signal.SIGTERM)


def _soak_only(args, base, tag, mon, command: str, env: dict) -> int:
    """The soak alone; its figures join the suite's last results.json and RESULTS.md."""
    from bench import soak

    t0 = time.monotonic()
    try:
        figures = soak.soak(base.with_(topic_prefix=f"{tag}-", index_prefix=f"{tag}-"), args.soak_rate, args.soak, mon)
    finally:
        _cleanup(base, tag)
    figures.update(flink_heap=env["flink_heap"], checkpoint_interval_ms=env["checkpoint_interval_ms"],
                   command=command.strip(), date=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                   total_s=round(time.monotonic() - t0, 1), loadavg_at_end=[round(x, 2) for x in os.getloadavg()])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
    if results is None:
        results = {"command": command.strip(), "date": figures["date"], "repeat": 1, "environment": env}
    # One soak per state backend (CHURNSTREAM_STATE_BACKEND): run both back to back to compare them.
    results["soaks"] = {**_soaks(results), figures["state_backend"]: figures}
    results.pop("soak", None)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    # Alone (no suite run yet in this folder) the report is the soak sections only.
    (out / "RESULTS.md").write_text(render(results) if any(k in results for k in RESULT_KEYS)
                                    else "\n".join(_soaks_sections(results)))
    print("\n".join(_soak_section(figures)))
    return 0


def _soak_section(x: dict) -> list[str]:
    from bench import soak
    from bench.procs import LABELS

    groups = sorted({g for r in x["samples"] for g in r["rss_mb"]}, key=lambda g: list(LABELS).index(g)
                    if g in LABELS else 99)
    lines = [f"## Soak, state backend {x.get('state_backend', 'hashmap')}", "",
             f"`{x['command']}` on {x['date']}: {x['rate']:.0f} msg/s asked for {x['seconds']:.0f} s "
             f"({x.get('delivered')} activities, {x.get('achieved_rate')} msg/s achieved), the live job and one "
             "`churnstream index` running; one row per minute. Job lag: activity records not yet committed by "
             f"the job's consumer group (it commits at each checkpoint, every "
             f"{x.get('checkpoint_interval_ms', '?')} ms, so that much load is the floor). Flink heap "
             f"{x.get('flink_heap', '?')}. Indexer lag: result records not yet committed by the indexer. Checkpoint: the newest "
             "completed one, end to end, and the job's full state size. RSS in MB.", "",
             "| minute | job lag | indexer lag | checkpoint ms | state MB | checkpoints (failed) | "
             + " | ".join(f"{LABELS.get(g, g)} RSS" for g in groups) + " |",
             "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(groups)]
    for r in x["samples"]:
        lines.append(f"| {r['minute']} | {_num(r['job_lag'])} | {_num(r['indexer_lag'])} | {_num(r['checkpoint_ms'])} | "
                     f"{_num(r['state_mb'], 2)} | {r.get('checkpoints')} ({r.get('checkpoints_failed')}) | "
                     + " | ".join(_num(r["rss_mb"].get(g), 0) for g in groups) + " |")
    v = soak.verdicts(x)
    grew = [k for k, d in v.items() if d["grew"]]
    still = [k for k, d in v.items() if d["still_growing"]]
    unknown = [k for k, d in v.items() if d["grew"] is None]
    lines += ["", "Does anything grow (`bench/soak.py`: the last three minutes against minutes 2-4, more than 25 %, "
              "and against the three minutes before them, more than 10 %, each above a noise floor)? "
              + (f"Grew over the run: {', '.join(grew)}. " if grew else "Nothing grew over the run. ")
              + (f"**Still growing at the end: {', '.join(still)}.**" if still else "Nothing still grows at the end.")
              + (f" Too few samples for: {', '.join(unknown)}." if unknown else ""), ""]
    return lines


INDEXER_KEYS = ("docs_per_s", "seconds", "es_us_per_doc", "client_us_per_doc")


def indexer_figures(es_bench, s_for, mon, docs: int, warmup_docs: int, repeat: int) -> dict:
    """Elasticsearch warmed up, then per repeat the raw bulk ceiling and the indexer over the same
    documents (taking turns at going first), each into a fresh index with the enriched template."""
    from foundation.topics import ensure_topics

    out = {"docs": docs, "warm_up": es_bench.warm_up(s_for("esw", 0), warmup_docs)}
    data = es_bench.enriched_documents(docs)
    src = s_for("idx", 0)
    ensure_topics(src)        # every result topic: the indexer subscribes to all of them
    es_bench.fill_result_topic(src, data)
    runs: dict[str, list] = {"bulk": [], "indexer": []}
    for i in range(repeat):
        for what in (("bulk", "indexer") if i % 2 == 0 else ("indexer", "bulk")):
            if what == "bulk":
                r = es_bench.bulk_ceiling(s_for("bulk", i), data, mon)
            else:
                # the same topic each time, read by a new group into a new index
                r = es_bench.indexer_run(src.with_(index_prefix=s_for("idx", i).index_prefix + f"r{i}-"), docs, mon,
                                         group=f"{src.topic_prefix}indexer-{i}")
            runs[what].append(r)
            log.info("bench: %s %d/%d: %s docs/s, Elasticsearch %s µs/doc", what, i + 1, repeat, r["docs_per_s"],
                     r["es_us_per_doc"])
    del data
    return {**out, **{k: summarise(v, INDEXER_KEYS) for k, v in runs.items()}}


def _cleanup(s, tag: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(s.kafka_client_config())
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(tag)]
    if names:
        for f in admin.delete_topics(names).values():
            try:
                f.result()
            except Exception:  # noqa: BLE001
                pass
    es = s.es_client()
    es.indices.delete(index=f"{tag}-*", ignore_unavailable=True)
    try:
        es.indices.delete_index_template(name=f"{tag}-*")    # install_templates' per prefix
    except Exception:  # noqa: BLE001 - none installed
        pass


# ---------------------------------------------------------------- report

def _num(x, digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}".replace(",", " ")


def med(s: dict, digits: int = 0) -> str:
    return _num(s["median"], digits)


def rng(s: dict, digits: int = 0) -> str:
    """The spread of a figure: min–max over the runs (a dash for a single run)."""
    n = len([v for v in s["values"] if v is not None])
    return f"{_num(s['min'], digits)}–{_num(s['max'], digits)}" if n > 1 else "–"


def _proc_cell(summaries: list[dict], group: str) -> str:
    xs = [s["groups"][group] for s in summaries if s and group in s.get("groups", {})]
    if not xs:
        return "–"
    m = lambda k: statistics.median(x[k] for x in xs)  # noqa: E731
    return f"{m('cpu_s'):.1f} s · {m('cpu_pct'):.0f}% · {m('peak_rss_mb'):.0f} MB"


def render(r: dict) -> str:
    from bench.procs import GROUPS, LABELS

    env, n = r["environment"], r["repeat"]
    v = env["versions"]
    pk = env["python_packages"]
    lines = [
        "# Benchmark results", "",
        f"Produced by `{r['command']}` on {r['date']} ({r.get('total_s', '?')} s in all). "
        f"Every figure was measured {n} time{'s' if n > 1 else ''}: the median is shown"
        f"{', with the spread (min–max) over the runs' if n > 1 else ''}; every raw value is in `results.json`."
        + (f" Phases run (`--only`): {', '.join(r['phases'])}; the others' sections are left out."
           if set(r.get("phases", PHASES)) != set(PHASES) else ""), "",
        "## Environment", "",
        "| | |", "|---|---|",
        f"| CPU | {env['cpu']}, {env['cores']} cores |",
        f"| memory | {env['memory_gib']} GiB |",
        f"| kernel | Linux {env.get('kernel', '?')} |",
        f"| load average (1, 5, 15 min) | {env.get('loadavg_at_start', '?')} at start, "
        f"{env.get('loadavg_at_end', '?')} at end |",
        f"| Java | {env.get('java', '?')} |",
        f"| Python | {env['python']}: " + ", ".join(f"{k} {x}" for k, x in pk.items()) + " |",
        f"| Flink | {v['flink']} (Scala {v['flink_scala']}) local mini-cluster; Kafka SQL connector "
        f"{v['flink_kafka_connector']} (sources and result topics); heap "
        f"{env.get('flink_heap', '?')} (CHURNSTREAM_FLINK_HEAP, parallel collector), checkpoints every "
        f"{env.get('checkpoint_interval_ms', '?')} ms |",
        f"| Kafka | {v['kafka']} (KRaft, one broker) |",
        f"| Elasticsearch | {v['elasticsearch']} (one node; {env.get('es_java', '?')}) |", "",
        "JVM versions from `versions.toml`, Python packages as installed (pinned in `pyproject.toml`).", "",
        "## How to read", "",
        "- Each figure stands next to its **ceiling** measured in the same run on the same stack: the generator "
        "next to a bare `confluent-kafka` produce loop; the Flink job, which writes Kafka result topics "
        "(Kafka -> Flink -> Kafka), next to a pass-through job (same Kafka source, an `upsert-kafka` result "
        "topic sink with the same options, keyed by activity id, no logic); the indexer (`churnstream index`: "
        "result topics -> Elasticsearch) next to raw bulk indexing of the same documents from one client "
        "(pre-serialised NDJSON, the ceiling of any Elasticsearch writer).",
        "- End-to-end latency runs the whole path at once: generator -> Kafka -> the live job -> its result topic "
        "-> `churnstream index` (its own process, the `indexer` column below) -> Elasticsearch.",
        "- `median` is the median over the runs, `spread` the smallest and largest run (– with one run).",
        "- Latency is from an event's produce time (its event time: the real clock) to the first 50 ms poll "
        "(with a refresh) that finds it in Elasticsearch. `visible < events` means the rest was still held back "
        "when the wait ended: the pipeline's last events wait for a watermark that only later traffic moves, and at "
        "a load above the job's throughput the backlog grows; quantiles are over the visible documents only.",
        "- Window latency = time a segments (HOP window) document is first seen minus (window_end + the "
        "out-of-orderness bound): the window's size and the watermark delay are subtracted, what remains is what "
        "the pipeline adds.",
        "- CPU and memory: CPU seconds, mean CPU % of one core (200% = both cores of a 2-core machine) and peak "
        "RSS, sampled from /proc every 0.5 s during the phase (job runs: from submission to end; latency: from the "
        "first produced event to the end of the wait; indexer figure: `Indexer.run()` or the bulk loop). Kafka and "
        "Elasticsearch are shared services: their "
        "figures include anything else using them at the time.",
        "- The machine is not isolated: compare figures within this report; the load average above tells how busy "
        "it was.",
    ]
    if _profiled(r):
        lines += [
            "- Where the Flink job's CPU goes (`--profile`): a Java Flight Recorder profile of the Flink JVM "
            "(`jcmd <pid> JFR.start settings=profile`, stopped after the run) during each large throughput run; "
            "the `.jfr` files are kept beside this report for JDK Mission Control or `jfr print`. The shares are "
            "of `jdk.ExecutionSample` events: every 10 ms JFR samples the threads that are running Java code, so a "
            "share is a part of the JVM's Java CPU time (time in native code: JIT compiler, garbage collector, "
            "system calls, is not sampled). Self frame: the method on top of the stack (where the CPU was); "
            "inclusive: the samples whose stack holds the frame anywhere (the method and what it calls, and in an "
            "operator chain the operators chained after it). The profiled run includes the job's start (SQL "
            "planning, code generation) as its wall time does: at smoke sizes that start is most of it. Compare the "
            "tables before and after a change, on the same machine and sizes. The recording costs a few percent, "
            "included in the profiled run's records/s (`jcmd` itself runs outside the timed block)."]
    lines += [""]

    if "generator" in r:
        lines += _generator_section(r["generator"])
    tp = r.get("job_throughput")
    if tp:
        lines += _throughput_section(tp)
        if _profiled(r):
            lines += _profile_section(tp)
    if "latency" in r:
        lines += _latency_section(r["latency"])
    if "indexer" in r:
        lines += _indexer_section(r["indexer"], tp)
    lines += ["## CPU and peak memory per phase", "",
              "Cells: CPU seconds · mean CPU % of one core · peak RSS (medians over the runs).", "",
              "| phase | wall s | " + " | ".join(LABELS[g] for g in GROUPS) + " |",
              "|---|---:|" + "---:|" * len(GROUPS)]
    for name, summaries in _phases(r):
        wall = statistics.median(s["wall_s"] for s in summaries if s) if any(summaries) else None
        lines.append(f"| {name} | {_num(wall, 1)} | " + " | ".join(_proc_cell(summaries, g) for g in GROUPS) + " |")
    lines += ["", "indexer: the `churnstream index` process of the latency runs. "
              "bench driver: this process: the generator, the Elasticsearch poller, the raw bulk client and the "
              "in-process indexer of the indexer figure (the job's functions are Java: no Python runs in the "
              "job; the UDF boot column stays empty unless a Python function is added). Flink JVM: the local "
              "mini-cluster, its heap capped as Environment says. Job throughput phases "
              "run from submission to the end of the bounded job (start-up included)."
              + (" Before them one tiny unmeasured run of each job took "
                 + " and ".join(f"{t} s ({k})" for k, t in r["warm_up_s"].items())
                 + ": PyFlink's JVM starts with the first job of a process." if "warm_up_s" in r
                 else ""), ""]
    if "scaleout" in r:
        from bench import scaleout_bench

        bulk = (r.get("indexer") or {}).get("bulk", {}).get("docs_per_s", {}).get("median")
        bare = (((r.get("generator") or {}).get("variants") or {}).get("bare") or {}).get("msgs_per_s", {}).get("median")
        lines += scaleout_bench.section(r, bulk, bare)
    lines += _soaks_sections(r)
    return "\n".join(lines)


def _soaks(r: dict) -> dict[str, dict]:
    """The soaks of a results.json by state backend (an older one holds a single "soak")."""
    if "soaks" in r:
        return r["soaks"]
    return {r["soak"].get("state_backend", "hashmap"): r["soak"]} if "soak" in r else {}


def _soaks_sections(r: dict) -> list[str]:
    from bench.soak import backends_table

    soaks = _soaks(r)
    lines = backends_table(soaks) if len(soaks) > 1 else []
    for x in soaks.values():
        lines += _soak_section(x)
    return lines


def _generator_section(gen: dict) -> list[str]:
    ceiling = gen["variants"]["bare"]["msgs_per_s"]["median"] or 0
    lines = ["## Generator: messages/s into Kafka", "",
             f"{gen['count']} activity messages per run (streaming phase, after the customer/offer snapshot).", "",
             "| what | workers | msgs/s | spread | vs ceiling |", "|---|---:|---:|---:|---:|"]
    for x in gen["variants"].values():
        m = x["msgs_per_s"]
        ratio = f"{m['median'] / ceiling:.2f}" if ceiling and m["median"] else "–"
        lines.append(f"| {x['label']} | {x['workers']} | {med(m)} | {rng(m)} | {ratio} |")
    return lines + [""]


def _throughput_section(tp: dict) -> list[str]:
    ceiling = tp["passthrough"]["records_per_s"]["median"] or 0
    lines = ["## Flink job throughput (bounded run, Kafka -> Flink -> Kafka result topics)", "",
             "| job | events | records/s | spread | vs ceiling | wall s | start+stop s | Flink JVM CPU µs/event "
             "| Flink JVM peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    us = {kind: spread([_flink_us_per_event(r) for r in tp[kind]["runs"]]) for kind in ("pipeline", "passthrough")}
    rss = {kind: spread([_flink(r, "procs", "peak_rss_mb") for r in tp[kind]["runs"]])
           for kind in ("pipeline", "passthrough")}
    for kind in ("pipeline", "passthrough"):
        t = tp[kind]
        m = t["records_per_s"]
        ratio = f"{m['median'] / ceiling:.2f}" if ceiling and m["median"] else "–"
        lines.append(f"| {kind}{' (ceiling)' if kind == 'passthrough' else ''} | {t['runs'][0]['events']} | "
                     f"{med(m)} | {rng(m)} | {ratio} | {med(t['wall_s'], 1)} | {med(t['startup_s'], 1)} | "
                     f"{med(us[kind])} | {med(rss[kind])} |")
    lines += ["", "records/s = (events - 2000) / (wall time of the large run - wall time of a 2000-event run): "
              "job start and stop are netted out (– when the large run was not longer than the small one: sizes too "
              "small to measure). Flink JVM CPU per event is netted the same way: (CPU s of the large run - CPU s "
              "of the 2000-event run) / (events - 2000), so SQL planning and start-up are left out. The Flink JVM "
              "is PyFlink's, one per bench process: every job runs in it in turn, so a later run's peak RSS "
              "includes what the earlier ones left."]
    rate, p_us, p_rss = tp["pipeline"]["records_per_s"]["median"], us["pipeline"]["median"], rss["pipeline"]["min"]
    if rate and p_us is not None and p_rss is not None:
        checks = [(f"≥ 15 000 records/s ({rate:,.0f})".replace(",", " "), rate >= 15_000),
                  (f"≥ 0.5× the pass-through ({rate / ceiling:.2f}×)" if ceiling else "≥ 0.5× the pass-through (–)",
                   bool(ceiling) and rate >= 0.5 * ceiling),
                  (f"≤ 60 µs Flink JVM CPU per event ({p_us:.0f} µs)", p_us <= 60),
                  (f"≤ 2 GB Flink JVM peak RSS ({p_rss / 1024:.2f} GB, the lowest run)", p_rss <= 2048)]
        lines += ["", "Targets (issue 18), pipeline with every index: " + "; ".join(
            f"{text}: {'met' if ok else 'not met'}" for text, ok in checks) + "."]
    return lines + [""]


def _flink(run: dict, key: str, figure: str):
    return ((run.get(key) or {}).get("groups", {}).get("flink") or {}).get(figure)


def _flink_us_per_event(run: dict):
    big, small = _flink(run, "procs", "cpu_s"), _flink(run, "procs_small", "cpu_s")
    n = run["events"] - run.get("small_events", 2000)
    if big is None or small is None or n <= 0:
        return None
    return 1e6 * max(big - small, 0) / n


def _profiled(r: dict) -> bool:
    return any("profile" in run for t in r.get("job_throughput", {}).values() for run in t["runs"])


def _cell(text: str) -> str:
    """Text for a Markdown table cell: thread names hold `|` (`kafka-producer-network-thread | producer-1`)."""
    return text.replace("|", "\\|")


def _share(x: dict) -> str:
    return f"{100 * x['share']:.1f}%"


def _profile_section(tp: dict, top: int = 15) -> list[str]:
    """Where the Flink JVM's Java CPU time goes in the pipeline's large throughput run (its first
    profiled run; every run's summary is in results.json), with the pass-through's threads beside it."""
    runs = tp["pipeline"]["runs"]
    i, run = next(((i, x) for i, x in enumerate(runs) if "profile" in x), (0, {}))
    prof = run.get("profile")
    lines = ["## Where the Flink job's CPU goes (JFR profile of the pipeline throughput run)", ""]
    if not prof or not prof["samples"]:
        return lines + ["No execution samples were recorded (the run was too short, or the pipeline run was not "
                        "profiled).", ""]
    lines += [f"Pipeline job over {run['events']} events (run {i + 1} of {len(runs)}): {prof['samples']} "
              f"execution samples of the Flink JVM in `{Path(prof['file']).name}`"
              + (f"; {100 * prof['truncated_share']:.0f}% of the stacks were deeper than the 64 frames JFR keeps "
                 "(their outermost frames are missing from the inclusive shares)"
                 if prof.get("truncated_share") else "")
              + ". Shares are of all the JVM's samples.", "",
              f"### Top {top} self frames (the method the CPU was in)", "",
              "| frame | share | samples |", "|---|---:|---:|"]
    lines += [f"| `{_cell(x['frame'])}` | {_share(x)} | {x['samples']} |" for x in prof["self"][:top]]
    threads = prof["threads"]
    shown = threads[:top]
    rest = threads[top:]
    lines += ["", "### CPU share per thread (a Flink task thread runs one operator chain; subtasks together)", "",
              "| thread / operator chain | share | samples |", "|---|---:|---:|"]
    lines += [f"| {_cell(x['thread'])} | {_share(x)} | {x['samples']} |" for x in shown]
    if rest:
        n = sum(x["samples"] for x in rest)
        lines.append(f"| {len(rest)} other threads | {100 * n / prof['samples']:.1f}% | {n} |")
    lines += ["", "Task threads are named after their operator chain (operator ids, the subtask and a sink's "
              "`Committer` step left out; `(a, b)`: the chain forks). `Thread-*`: unnamed threads, mostly PyFlink's "
              "py4j gateway connection, which runs the Python driver's calls into the JVM (SQL planning, code "
              "generation, job submission). `Source Data Fetcher for ...`: a Kafka source's fetch thread; "
              "`kafka-producer-network-thread`: a Kafka sink's sender."]
    if prof.get("inclusive"):
        lines += ["", f"### Top {min(top, len(prof['inclusive']))} operator frames by inclusive share (the frame "
                  "anywhere on the stack)", "",
                  "Frames of the job's operators, SQL functions, formats, Kafka sink and Python UDF operator "
                  "(`bench/profile.py` OPERATOR_CODE) and of the code Flink generates per operator "
                  "(`StreamExecCalc$44` and the like). An operator's share includes what it calls and, in a chain, "
                  "the operators chained after it. Flink's task loop, network input, watermark and timer plumbing "
                  "and the Kafka source reader are left out: they hold every sample of their chain.", "",
                  "| frame | share | samples |", "|---|---:|---:|"]
        lines += [f"| `{_cell(x['frame'])}` | {_share(x)} | {x['samples']} |" for x in prof["inclusive"][:top]]
    base = next((x["profile"] for x in tp["passthrough"]["runs"] if x.get("profile", {}).get("samples")), None)
    if base:
        lines += ["", f"The pass-through job (ceiling), same events: {base['samples']} samples; threads: "
                  + ", ".join(f"{_cell(x['thread'])} {_share(x)}" for x in base["threads"][:5]) + "."]
    return lines + [""]


def _latency_section(latency: dict) -> list[str]:
    lines = ["## End-to-end latency (produce -> job -> result topic -> indexer -> document visible in "
             "Elasticsearch)", "",
             "| load msg/s | index (job) | achieved msg/s | events | visible | p50 s | p99 s | max s | "
             "ceiling p50 / p99 / max s |", "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for rate, by_kind in latency.items():
        c = by_kind["passthrough"]
        ceil = f"{med(c['p50_s'], 2)} / {med(c['p99_s'], 2)} / {med(c['max_s'], 2)}"
        for kind in ("pipeline", "passthrough"):
            x = by_kind[kind]
            what = "enriched (pipeline)" if kind == "pipeline" else "pass-through (ceiling)"
            lines.append(f"| {rate} | {what} | {med(x['achieved_rate'])} | {med(x['events'])} | {med(x['visible'])} | "
                         f"{_q(x['p50_s'])} | {_q(x['p99_s'])} | {_q(x['max_s'])} | "
                         f"{ceil if kind == 'pipeline' else ''} |")
    first = next(iter(latency.values()))
    w0 = first["windows"]["runs"][0] if first["windows"]["runs"] else {}
    oo = first["pipeline"]["runs"][0]["out_of_orderness_s"]
    warm = first["pipeline"]["runs"][0].get("warmup_s", 0)
    p99 = next((by_kind["pipeline"]["p99_s"]["median"] for rate, by_kind in latency.items()
                if float(rate) == 5000), None)
    lines += ["", "Target (issue 18): enriched p99 ≤ 1.5 s at 5000 msg/s"
              + (f": {'met' if p99 <= 1.5 else 'not met'} ({p99:.2f} s)." if p99 is not None else
                 " (not measured in this run).")]
    lines += ["", "Cells: median, spread in brackets. The pipeline runs with bounded out-of-orderness "
              f"{oo} s: its enriched index waits for the watermark before the event-time temporal join emits; "
              "the pass-through job has no such wait. Both are indexed by one `churnstream index` process with its "
              "default batching (a bulk request leaves at the latest 200 ms after its first document); the "
              "pass-through's documents are `{\"payload\": <the activity>}` in an index of the same shards and refresh "
              "interval with no mapping (kept in `_source` only). "
              + (f"Steady state: the first {warm:g} s of load are produced but not measured (after a start the "
                 "temporal joins wait for the idle customer and offer topics to be marked idle, 5 s, and the "
                 "backlog this builds drains only slowly near capacity; `--latency-warmup 0` measures that "
                 "transient too)." if warm else "Measured from the job's start (`--latency-warmup 0`)."), "",
              "### Window results (segments index, from the same pipeline runs)", "",
              f"HOP windows of {w0.get('window_size_s', '?')} s sliding by {w0.get('window_slide_s', '?')} s. "
              f"Latency = first seen in Elasticsearch - (window_end + {oo} s out-of-orderness): window size and "
              "watermark delay are subtracted; 0 would be a window visible the moment the watermark allows it.", "",
              "| load msg/s | window ends | window documents | p50 s | p99 s | max s | ceiling p50 / p99 / max s |",
              "|---:|---:|---:|---:|---:|---:|---|"]
    for rate, by_kind in latency.items():
        w, c = by_kind["windows"], by_kind["passthrough"]
        lines.append(f"| {rate} | {med(w['window_ends'])} | {med(w['documents'])} | {_q(w['p50_s'])} | "
                     f"{_q(w['p99_s'])} | {_q(w['max_s'])} | "
                     f"{med(c['p50_s'], 2)} / {med(c['p99_s'], 2)} / {med(c['max_s'], 2)} |")
    lines += ["", "The ceiling of a window document: the pass-through job's latency for one record at the same "
              "load.", ""]
    return lines


def _ratio(a, b, digits: int = 2) -> str:
    return f"{a / b:.{digits}f}" if a is not None and b else "–"


def _indexer_section(x: dict, tp: dict | None) -> list[str]:
    """The indexer next to its raw bulk ceiling, with the issue's targets."""
    b, i = x["bulk"], x["indexer"]
    rate = _ratio(i["docs_per_s"]["median"], b["docs_per_s"]["median"])
    cpu = _ratio(i["es_us_per_doc"]["median"], b["es_us_per_doc"]["median"])
    run0 = b["runs"][0] if b["runs"] else {}
    lines = ["## Indexer: result topic -> Elasticsearch, next to raw bulk indexing (the ceiling)", "",
             f"{x['docs']} enriched-like documents (~{run0.get('bytes_per_doc', '?')} bytes of JSON each, keyed by id) "
             f"per run, into a new index with the product's enriched template (strict mapping; shards, replicas and "
             f"refresh interval as `install_templates` sets them). "
             f"Elasticsearch was warmed up first with {x['warm_up']['docs']} unmeasured documents "
             f"({x['warm_up']['seconds']} s).", "",
             "| what | docs/s | spread | vs ceiling | Elasticsearch CPU µs/doc | spread | vs ceiling | "
             "client CPU µs/doc | wall s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, y, r1, r2 in (("indexer (`Indexer.run`, until caught up)", i, rate, cpu),
                             ("raw bulk, one client (ceiling)", b, "1.00" if b["docs_per_s"]["median"] else "–",
                              "1.00" if b["es_us_per_doc"]["median"] else "–")):
        lines.append(f"| {label} | {med(y['docs_per_s'])} | {rng(y['docs_per_s'])} | {r1} | "
                     f"{med(y['es_us_per_doc'], 1)} | {rng(y['es_us_per_doc'], 1)} | {r2} | "
                     f"{med(y['client_us_per_doc'], 1)} | {med(y['seconds'], 1)} |")

    def verdict(ratio: str, ok) -> str:
        return "–" if ratio == "–" else ("met" if ok(float(ratio)) else "not met")

    lines += ["", f"Targets (issue): indexer ≥ 0.8× the ceiling's docs/s: {rate} "
              f"({verdict(rate, lambda v: v >= 0.8)}); Elasticsearch CPU per document ≤ 1.5× the ceiling's: {cpu} "
              f"({verdict(cpu, lambda v: v <= 1.5)}).", "",
              "The indexer's documents were on its result topic before the run (3 partitions, lz4 as the job's sink "
              "writes them); it runs in this process (`Indexer(settings, IndexerOptions(until_caught_up=True, "
              "group_id=<new>)).run()`), from the call to its return: the consumer group join, reading, the bulk "
              "requests (external version = offset + 1, 5000 documents or 8 MB per request), the offset commits and "
              "the wait that ends the last batch. The ceiling sends the same documents as `index` actions with their "
              "`_id`, serialised before the clock starts, with `es.bulk(operations=body)`, 5000 per request, one "
              "request after the other. CPU µs/doc = CPU seconds of the process during the phase / documents; "
              "client = this Python process (the indexer, or the bulk loop)."
              + (f" The job's pass-through reaches {med(tp['passthrough']['records_per_s'])} records/s into its "
                 "result topic." if tp else ""), ""]
    return lines


def _q(s: dict) -> str:
    return med(s, 2) + (f" [{rng(s, 2)}]" if rng(s, 2) != "–" else "")


def _phases(r: dict):
    if "indexer" in r:
        yield "indexer: raw bulk (ceiling)", [x["procs"] for x in r["indexer"]["bulk"]["runs"]]
        yield "indexer: `Indexer.run`", [x["procs"] for x in r["indexer"]["indexer"]["runs"]]
    for x in r.get("generator", {}).get("variants", {}).values():
        yield f"{x['label']} ×{x['workers']}", [y["procs"] for y in x["runs"]]
    for kind in ("passthrough", "pipeline") if "job_throughput" in r else ():
        yield f"throughput: {kind} job", [y["procs"] for y in r["job_throughput"][kind]["runs"]]
    for rate, by_kind in r.get("latency", {}).items():
        for kind in ("passthrough", "pipeline"):
            yield f"latency at {rate} msg/s: {kind} job", [y["procs"] for y in by_kind[kind]["runs"]]


if __name__ == "__main__":
    sys.exit(main())

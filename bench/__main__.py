"""`python -m bench [--smoke] [--repeat N]`: the benchmark suite on the local stack, each figure with its ceiling.

Writes RESULTS.md and results.json (environment, command, every raw value) into --out (default bench/).
Each figure is measured --repeat times (median and min-max spread are reported); CPU and peak memory
of Kafka, Elasticsearch, the Flink JVM and this Python process are sampled from /proc during every
measured phase. Not a test: no figure is asserted anywhere; a smoke run with tiny sizes is part of
the test suite.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import shlex
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
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "python": platform.python_version(), "java": _java_version(),
            "versions": vars(versions()), "python_packages": packages,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def _java_version() -> str:
    try:
        from foundation.artifacts import java_home

        r = subprocess.run([str(java_home() / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30)
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
    p.add_argument("--es-docs", type=int, default=200_000)
    p.add_argument("--gen-count", type=int, default=500_000, help="messages per generator measurement")
    p.add_argument("--repeat", type=int, default=None, help="measurements of each figure (default 3; --smoke: 1)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    p.add_argument("--out", default=str(HERE), help="folder for RESULTS.md and results.json")
    args = p.parse_args(argv)
    if args.smoke:
        # 12 s of load: a 10 s window slide boundary is always crossed with 2 s to spare, so window
        # results appear even in the smoke run.
        args.events, args.rates, args.latency_seconds, args.es_docs, args.gen_count = 3_000, "500", 12, 2_000, 5_000
        args.latency_warmup = min(args.latency_warmup, 2)
    repeat = args.repeat or (1 if args.smoke else 3)
    configure_logs()

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
               "environment": environment(), "processes": {"kafka": mon.fixed["kafka"],
                                                           "elasticsearch": mon.fixed["elasticsearch"]}}
    t_all = time.monotonic()

    def s_for(what: str, i: int):
        return base.with_(topic_prefix=f"{tag}-{what}{i}-", index_prefix=f"{tag}-{what}{i}-")

    try:
        runs = []
        for i in range(repeat):
            with job_bench.phase(mon) as ph:
                r = es_bench.bulk_docs_per_s(s_for("es", i), docs=args.es_docs)
            runs.append({**r, "procs": ph.summary})
            log.info("bench: Elasticsearch bulk %d/%d: %s docs/s", i + 1, repeat, r["docs_per_s"])
        results["elasticsearch_bulk"] = summarise(runs, ("docs_per_s", "seconds"))

        from foundation.topics import ensure_topics

        variants = {"bare": ("bare confluent-kafka loop (ceiling)", 1), "json-1": ("generator json", 1),
                    "json-2": ("generator json", 2)}
        gen = {"count": args.gen_count, "variants": {}}
        for key, (label, workers) in variants.items():
            runs = []
            for i in range(repeat):
                s = s_for("gen", i)
                ensure_topics(s)
                with job_bench.phase(mon) as ph:
                    rate = (generator_bench.bare_loop(s, args.gen_count) if key == "bare"
                            else generator_bench.generator_rate(s, args.gen_count, "json", workers))
                runs.append({"msgs_per_s": round(rate), "procs": ph.summary})
                log.info("bench: %s x%d %d/%d: %.0f msgs/s", label, workers, i + 1, repeat, rate)
            gen["variants"][key] = {"label": label, "workers": workers, **summarise(runs, ("msgs_per_s",))}
        results["generator"] = gen

        results["warm_up_s"] = job_bench.warm_up(s_for("warm", 0))
        results["job_throughput"] = {}
        for kind in ("passthrough", "pipeline"):
            runs = [job_bench.throughput(s_for("tp", i), kind, args.events, mon) for i in range(repeat)]
            results["job_throughput"][kind] = summarise(runs, ("records_per_s", "wall_s", "startup_s"))

        results["latency"] = {}
        for rate in args.rates.split(","):
            by_kind = {}
            for kind in ("passthrough", "pipeline"):
                runs = [job_bench.latency(s_for(f"lat{rate}-", i), kind, float(rate), args.latency_seconds, mon,
                                          warmup_s=args.latency_warmup)
                        for i in range(repeat)]
                by_kind[kind] = summarise(runs, ("p50_s", "p99_s", "max_s", "events", "visible", "achieved_rate"))
            windows = [r["windows"] for r in by_kind["pipeline"]["runs"]]
            by_kind["windows"] = summarise(windows, ("p50_s", "p99_s", "max_s", "documents", "window_ends"))
            results["latency"][rate] = by_kind
    finally:
        _cleanup(base, tag)
    results["total_s"] = round(time.monotonic() - t_all, 1)
    results["environment"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "RESULTS.md").write_text(render(results))
    print(render(results))
    return 0


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
    s.es_client().indices.delete(index=f"{tag}-*", ignore_unavailable=True)


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
        f"{', with the spread (min–max) over the runs' if n > 1 else ''}; every raw value is in `results.json`.", "",
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
        f"{v['flink_kafka_connector']}, Elasticsearch 7 SQL connector {v['flink_es_connector']} |",
        f"| Kafka | {v['kafka']} (KRaft, one broker) |",
        f"| Elasticsearch | {v['elasticsearch']} (one node) |", "",
        "JVM versions from `versions.toml`, Python packages as installed (pinned in `pyproject.toml`).", "",
        "## How to read", "",
        "- Each figure stands next to its **ceiling** measured in the same run on the same stack: the generator "
        "next to a bare `confluent-kafka` produce loop, the Flink job next to a pass-through job (same Kafka "
        "source and Elasticsearch sink, no logic), and Elasticsearch bulk indexing as the ceiling of any sink.",
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
        "first produced event to the end of the wait). Kafka and Elasticsearch are shared services: their "
        "figures include anything else using them at the time.",
        "- The machine is not isolated: compare figures within this report; the load average above tells how busy "
        "it was.", "",
    ]

    gen = r["generator"]
    ceiling = gen["variants"]["bare"]["msgs_per_s"]["median"] or 0
    lines += ["## Generator: messages/s into Kafka", "",
              f"{gen['count']} activity messages per run (streaming phase, after the customer/offer snapshot).", "",
              "| what | workers | msgs/s | spread | vs ceiling |", "|---|---:|---:|---:|---:|"]
    for x in gen["variants"].values():
        m = x["msgs_per_s"]
        ratio = f"{m['median'] / ceiling:.2f}" if ceiling and m["median"] else "–"
        lines.append(f"| {x['label']} | {x['workers']} | {med(m)} | {rng(m)} | {ratio} |")

    tp = r["job_throughput"]
    ceiling = tp["passthrough"]["records_per_s"]["median"] or 0
    lines += ["", "## Flink job throughput (bounded run from Kafka to Elasticsearch)", "",
              "| job | events | records/s | spread | vs ceiling | wall s | start+stop s |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in ("pipeline", "passthrough"):
        t = tp[kind]
        m = t["records_per_s"]
        ratio = f"{m['median'] / ceiling:.2f}" if ceiling and m["median"] else "–"
        lines.append(f"| {kind}{' (ceiling)' if kind == 'passthrough' else ''} | {t['runs'][0]['events']} | "
                     f"{med(m)} | {rng(m)} | {ratio} | {med(t['wall_s'], 1)} | {med(t['startup_s'], 1)} |")
    lines += ["", "records/s = (events - 2000) / (wall time of the large run - wall time of a 2000-event run): "
              "job start and stop are netted out (– when the large run was not longer than the small one: sizes too "
              "small to measure).", ""]

    lines += ["## End-to-end latency (produce -> document visible in Elasticsearch)", "",
              "| load msg/s | index (job) | achieved msg/s | events | visible | p50 s | p99 s | max s | "
              "ceiling p50 / p99 / max s |", "|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for rate, by_kind in r["latency"].items():
        c = by_kind["passthrough"]
        ceil = f"{med(c['p50_s'], 2)} / {med(c['p99_s'], 2)} / {med(c['max_s'], 2)}"
        for kind in ("pipeline", "passthrough"):
            x = by_kind[kind]
            what = "enriched (pipeline)" if kind == "pipeline" else "pass-through (ceiling)"
            lines.append(f"| {rate} | {what} | {med(x['achieved_rate'])} | {med(x['events'])} | {med(x['visible'])} | "
                         f"{_q(x['p50_s'])} | {_q(x['p99_s'])} | {_q(x['max_s'])} | "
                         f"{ceil if kind == 'pipeline' else ''} |")
    first = next(iter(r["latency"].values()))
    w0 = first["windows"]["runs"][0] if first["windows"]["runs"] else {}
    oo = first["pipeline"]["runs"][0]["out_of_orderness_s"]
    warm = first["pipeline"]["runs"][0].get("warmup_s", 0)
    lines += ["", "Cells: median, spread in brackets. The pipeline runs with bounded out-of-orderness "
              f"{oo} s: its enriched index waits for the watermark before the event-time temporal join emits; "
              "the pass-through job has no such wait. "
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
    for rate, by_kind in r["latency"].items():
        w, c = by_kind["windows"], by_kind["passthrough"]
        lines.append(f"| {rate} | {med(w['window_ends'])} | {med(w['documents'])} | {_q(w['p50_s'])} | "
                     f"{_q(w['p99_s'])} | {_q(w['max_s'])} | "
                     f"{med(c['p50_s'], 2)} / {med(c['p99_s'], 2)} / {med(c['max_s'], 2)} |")
    lines += ["", "The ceiling of a window document: the pass-through job's latency for one record at the same "
              "load.", ""]

    es = r["elasticsearch_bulk"]
    lines += ["## Elasticsearch bulk indexing (one client, pre-serialised NDJSON: the ceiling of any sink)", "",
              f"{es['runs'][0]['docs']} docs per run: **{med(es['docs_per_s'])} docs/s** "
              f"(spread {rng(es['docs_per_s'])}; the Flink job's pass-through reaches "
              f"{med(tp['passthrough']['records_per_s'])} records/s through the same sink).", ""]

    lines += ["## CPU and peak memory per phase", "",
              "Cells: CPU seconds · mean CPU % of one core · peak RSS (medians over the runs).", "",
              "| phase | wall s | " + " | ".join(LABELS[g] for g in GROUPS) + " |",
              "|---|---:|" + "---:|" * len(GROUPS)]
    for name, summaries in _phases(r):
        wall = statistics.median(s["wall_s"] for s in summaries if s) if any(summaries) else None
        lines.append(f"| {name} | {_num(wall, 1)} | " + " | ".join(_proc_cell(summaries, g) for g in GROUPS) + " |")
    lines += ["", "bench driver: this process: the generator, the Elasticsearch poller and bulk client, and, during "
              "pipeline runs, the pipeline's Python UDF (pseudonymisation), which PyFlink runs in loopback mode "
              "inside the driver in a local mini-cluster; UDF boot: the runner processes the Flink JVM starts to "
              "hand the UDF over to it. Job throughput phases run from submission to the end of the bounded job "
              "(start-up included)."
              + (" Before them one tiny unmeasured run of each job took "
                 + " and ".join(f"{t} s ({k})" for k, t in r["warm_up_s"].items())
                 + ": PyFlink's JVM and the UDF harness start with the first job of a process." if "warm_up_s" in r
                 else ""), ""]
    return "\n".join(lines)


def _q(s: dict) -> str:
    return med(s, 2) + (f" [{rng(s, 2)}]" if rng(s, 2) != "–" else "")


def _phases(r: dict):
    yield "Elasticsearch bulk", [x["procs"] for x in r["elasticsearch_bulk"]["runs"]]
    for x in r["generator"]["variants"].values():
        yield f"{x['label']} ×{x['workers']}", [y["procs"] for y in x["runs"]]
    for kind in ("passthrough", "pipeline"):
        yield f"throughput: {kind} job", [y["procs"] for y in r["job_throughput"][kind]["runs"]]
    for rate, by_kind in r["latency"].items():
        for kind in ("passthrough", "pipeline"):
            yield f"latency at {rate} msg/s: {kind} job", [y["procs"] for y in by_kind[kind]["runs"]]


if __name__ == "__main__":
    sys.exit(main())

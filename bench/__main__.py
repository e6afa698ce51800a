"""`python -m bench [--smoke]`: the benchmark suite on the local stack, with a ceiling for each figure.

Writes bench/RESULTS.md and bench/results.json (environment, command, figures). Not a test: no
figure is asserted anywhere; a smoke run with tiny sizes is part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
import uuid
from pathlib import Path

from churnstream.logs import configure as configure_logs

HERE = Path(__file__).parent


def environment() -> dict:
    from churnstream.versions import versions

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(mem) / 1024 / 1024, 1),
            "python": platform.python_version(), "versions": vars(versions())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--events", type=int, default=1_000_000, help="events for the job throughput run")
    p.add_argument("--rates", default="1000,5000,20000", help="latency loads, msg/s")
    p.add_argument("--latency-seconds", type=float, default=30)
    p.add_argument("--es-docs", type=int, default=200_000)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    p.add_argument("--out", default=str(HERE), help="folder for RESULTS.md and results.json")
    args = p.parse_args(argv)
    if args.smoke:
        args.events, args.rates, args.latency_seconds, args.es_docs = 3_000, "500", 3, 2_000
    configure_logs()

    from bench import es_bench, job_bench
    from churnstream.localstack import stack
    from churnstream.settings import Settings

    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    settings = stack.up(Settings.from_env())
    tag = "b" + uuid.uuid4().hex[:6]
    s = settings.with_(topic_prefix=f"{tag}-", index_prefix=f"{tag}-", run_dir=str(Path(settings.run_dir) / "bench"))
    results = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "environment": environment()}
    try:
        results["elasticsearch_bulk"] = es_bench.bulk_docs_per_s(s, docs=args.es_docs)
        results["job_throughput"] = job_bench.throughput(s, args.events)
        results["latency"] = {r: job_bench.latency(s, float(r), args.latency_seconds) for r in args.rates.split(",")}
    finally:
        _cleanup(s, tag)
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


def render(r: dict) -> str:
    env = r["environment"]
    lines = [
        "# Benchmark results", "",
        f"Produced by `{r['command']}` on {r['date']}.", "",
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['memory_gib']} GiB; Python {env['python']}; "
        f"Flink {env['versions']['flink']}, Kafka {env['versions']['kafka']}, "
        f"Elasticsearch {env['versions']['elasticsearch']}.", "",
        "Every figure stands next to its ceiling measured in the same run.", "",
        "## Flink job throughput (bounded run from Kafka to Elasticsearch)", "",
        "| job | events | wall s | start+stop s | records/s |", "|---|---:|---:|---:|---:|",
    ]
    for kind in ("pipeline", "passthrough"):
        t = r["job_throughput"][kind]
        lines.append(f"| {kind}{' (ceiling)' if kind == 'passthrough' else ''} | {t['events']} | {t['wall_s']} | "
                     f"{t['startup_s']} | {t['records_per_s']} |")
    lines += ["", "records/s = (events - 2000) / (wall time of the large run - wall time of a 2000-event run).", "",
              "## End-to-end latency (produce -> document visible in Elasticsearch)", "",
              "| load msg/s | job | events | p50 s | p99 s | max s |", "|---:|---|---:|---:|---:|---:|"]
    for rate, by_kind in r["latency"].items():
        for kind in ("pipeline", "passthrough"):
            x = by_kind[kind]
            lines.append(f"| {rate} | {kind}{' (ceiling)' if kind == 'passthrough' else ''} | {x['events']} | "
                         f"{x['p50_s']} | {x['p99_s']} | {x['max_s']} |")
    oo = next(iter(r["latency"].values()))["pipeline"]["out_of_orderness_s"]
    lines += ["", f"The pipeline's enriched index waits for the watermark (bounded out-of-orderness {oo} s here) "
              "before the event-time temporal join emits; the pass-through job has no such wait.", "",
              "## Elasticsearch bulk indexing (one client, pre-serialised NDJSON)", "",
              f"{r['elasticsearch_bulk']['docs']} docs in {r['elasticsearch_bulk']['seconds']} s: "
              f"**{r['elasticsearch_bulk']['docs_per_s']} docs/s**.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

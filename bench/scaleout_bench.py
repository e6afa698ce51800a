"""`python -m bench --only scaleout`: what parallelism and the cluster topology cost and give, in one run.

- The pipeline's throughput and Flink JVM CPU per event at parallelism 1 and 4, on the local
  mini-cluster, back to back over the same events (bench/job_bench.throughput: a bounded run net of
  a small one, so start-up is left out of both figures).
- The cluster topology (foundation/localstack/cluster.py: 3 brokers with replicated topics, a session
  cluster of 2 TaskManagers, the job at 4) over the same events: records/s, and the CPU of its
  JobManager and TaskManagers from /proc, next to the single-node stack's.
- A sizing for 100k and 1M events/s worked out from those costs (section()).
"""

from __future__ import annotations

import logging
import math
import socket
import time

from bench import job_bench
from bench.procs import CLK_TCK, ProcReader, descendants

log = logging.getLogger("churnstream.bench")


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds so far of these processes (bench/procs.py reads /proc)."""
    reader = ProcReader()
    return sum(st.ticks for st in map(reader.stat, pids) if st is not None) / CLK_TCK


def _java_pids(root: int) -> list[int]:
    """The process and its descendants (a start script and the JVM it runs)."""
    table = ProcReader().table()
    return [root, *descendants(root, {p: st.ppid for p, st in table.items()})]


def _net(run: dict, cpu_key: str) -> float | None:
    """CPU µs per event of the large run net of the small one."""
    big, small = run.get(cpu_key), run.get(cpu_key + "_small")
    n = run["events"] - run["small_events"]
    if big is None or small is None or n <= 0:
        return None
    return round((big - small) * 1e6 / n, 1)


def _flink_cpu(procs: dict | None) -> float | None:
    return ((procs or {}).get("groups", {}).get("flink") or {}).get("cpu_s")


def local_run(settings, parallelism: int, events: int, mon) -> dict:
    run = job_bench.throughput(settings.with_(parallelism=parallelism), "pipeline", events, mon)
    run["flink_cpu_s"], run["flink_cpu_s_small"] = _flink_cpu(run["procs"]), _flink_cpu(run["procs_small"])
    run["flink_cpu_us_per_event"] = _net(run, "flink_cpu_s")
    log.info("bench: parallelism %d: %s records/s, Flink %s µs/event", parallelism, run["records_per_s"],
             run["flink_cpu_us_per_event"])
    return {"parallelism": parallelism, **run}


def cluster_run(settings, events: int, run_dir) -> dict:
    """The cluster topology, started for this and stopped after; the job at its parallelism (4)."""
    import shutil

    from foundation.localstack.cluster import ClusterPorts, ClusterTopology

    ports = []
    for _ in range(15):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    topology = ClusterTopology(settings.with_(run_dir=str(run_dir)), ClusterPorts.from_list(ports))
    try:
        topology.up()
        s = topology.settings(settings).with_(run_dir=str(run_dir / "job"))
        pids = [p for role in topology.flink.roles for p in _java_pids(topology.flink.pid(role))]
        marks = {}

        class Mark:                       # job_bench.phase(mon): CPU of the Flink cluster around each run
            def phase(self):
                return self

            def __enter__(self):
                marks["start"] = _cpu_s(pids)
                return self

            def __exit__(self, *exc):
                self.summary = {"groups": {"flink": {"cpu_s": round(_cpu_s(pids) - marks["start"], 2)}}}

        run = job_bench.throughput(s, "pipeline", events, Mark())
        run["flink_cpu_s"], run["flink_cpu_s_small"] = _flink_cpu(run["procs"]), _flink_cpu(run["procs_small"])
        run["flink_cpu_us_per_event"] = _net(run, "flink_cpu_s")
        log.info("bench: cluster topology: %s records/s, Flink (JobManager + TaskManagers) %s µs/event",
                 run["records_per_s"], run["flink_cpu_us_per_event"])
        return {"parallelism": s.parallelism, "brokers": len(topology.brokers),
                "taskmanagers": len(topology.flink.taskmanagers), **run}
    finally:
        topology.down()
        for node in topology.es_nodes:
            shutil.rmtree(node.base, ignore_errors=True)


def figures(s_for, mon, events: int, run_dir) -> dict:
    t0 = time.monotonic()
    out = {"events": events,
           "local": [local_run(s_for(f"p{p}-", 0), p, events, mon) for p in (1, 4)],
           "cluster": cluster_run(s_for("cluster-", 0), events, run_dir)}
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def sizing(us_per_event: float, es_docs_per_s: float | None, broker_msgs_per_s: float | None,
           rate: float, partitions_per_core: int = 2) -> dict:
    """Cores, partitions, brokers and Elasticsearch data nodes for ``rate`` events/s from measured
    costs: Flink cores = rate x CPU per event, at 70 % busy; partitions: 2 per Flink core (room to
    rescale up to twice); brokers: the rate x 3 replicas against one broker's measured produce
    rate, at 50 % (reads and replication share it), at least 3; Elasticsearch: ~1.2 documents per
    event (the enriched one plus windows, customers, sessions), times 2 for the replica, against
    one node's measured bulk rate at 70 %, at least 2."""
    cores = math.ceil(rate * us_per_event / 1e6 / 0.7)
    out = {"rate": rate, "flink_cores": cores, "partitions": max(4, partitions_per_core * cores)}
    if broker_msgs_per_s:
        out["brokers"] = max(3, math.ceil(rate * 3 / (broker_msgs_per_s * 0.5)))
    if es_docs_per_s:
        out["es_data_nodes"] = max(2, math.ceil(rate * 1.2 * 2 / (es_docs_per_s * 0.7)))
    return out


def section(r: dict, es_docs_per_s: float | None = None, broker_msgs_per_s: float | None = None) -> list[str]:
    x = r["scaleout"]
    lines = ["## Scale-out", "",
             f"`{r['command']}`: the pipeline over {x['events']} events, bounded, net of a small run (start-up left "
             "out), at parallelism 1 and 4 on the local mini-cluster and at 4 on the cluster topology (3 brokers "
             "with 3 replicas and acks=all, a session cluster of 2 TaskManagers x 4 slots, started for this), "
             "back to back on one machine. Flink CPU: the mini-cluster JVM's, or the cluster's JobManager and "
             "TaskManagers', per event. A bounded run includes the batch read of where its input ends "
             "(`flink_jobs/bounded.py`), so these figures are not comparable with throughput figures of "
             "commits before it.", "",
             "| where | parallelism | records/s | Flink CPU µs/event |", "|---|---:|---:|---:|"]
    for run in x["local"]:
        lines.append(f"| local mini-cluster | {run['parallelism']} | {run['records_per_s']} | "
                     f"{run['flink_cpu_us_per_event']} |")
    c = x["cluster"]
    lines.append(f"| cluster topology | {c['parallelism']} | {c['records_per_s']} | {c['flink_cpu_us_per_event']} |")
    base = next((run for run in x["local"] if run["parallelism"] == 1), None)
    low, high = (base or {}).get("flink_cpu_us_per_event"), c.get("flink_cpu_us_per_event")
    if low and high:
        lines += ["", "### Sizing, from these costs", "",
                  "Worked out by `bench/scaleout_bench.sizing` (its docstring gives the margins) from this run's "
                  "costs: Flink cores from the CPU per event at parallelism 1 in one JVM (no exchange crosses "
                  "a process: the floor) and on the cluster topology (every exchange serialised between "
                  "TaskManagers, and 2 cores shared by 12 JVMs: the ceiling); partitions from the larger;"
                  + (" brokers from the generator figure's bare produce rate to one broker;" if broker_msgs_per_s else "")
                  + (" Elasticsearch data nodes from the indexer figure's raw bulk rate of one node."
                     if es_docs_per_s else "")
                  + " On this machine all of it shares 2 cores; a cluster's nodes each have their own, so the "
                    "broker and Elasticsearch counts are pessimistic.", "",
                  "| events/s | Flink cores (floor - ceiling) | activity partitions | Kafka brokers | "
                  "Elasticsearch data nodes |", "|---:|---:|---:|---:|---:|"]
        for rate in (100_000, 1_000_000):
            a = sizing(low, es_docs_per_s, broker_msgs_per_s, rate)
            b = sizing(high, es_docs_per_s, broker_msgs_per_s, rate)
            lines.append(f"| {rate:,} | {a['flink_cores']} - {b['flink_cores']} | {b['partitions']} | "
                         f"{b.get('brokers', '?')} | {b.get('es_data_nodes', '?')} |")
    return lines + [""]

"""CPU seconds and peak memory of the stack's processes during a benchmark phase, from /proc only.

    mon = ProcMonitor(kafka_pid=..., es_pid=...)          # pids of the stack (pid files)
    with mon.phase() as ph:
        ...                                               # the measured work
    ph.summary   # {"wall_s": 12.3, "groups": {"kafka": {"cpu_s", "cpu_pct", "peak_rss_mb", "pids"}, ...}}

Groups of processes (resolved again at every sample, so processes started mid-phase are seen):
  kafka          the broker JVM (the pid file's process, or its java descendant)
  elasticsearch  the Elasticsearch server JVM (the pid file names `runuser`; below it Elasticsearch 9
                 runs a launcher JVM, which starts the server JVM: the JVM that starts no other)
  flink          the Flink mini-cluster JVM: a java descendant of this Python process whose
                 command line contains org.apache.flink (PyFlink's gateway JVM runs the mini-cluster)
  flink_python   the processes below that JVM: PyFlink's UDF runner shell and beam_boot. In a local
                 mini-cluster PyFlink runs the UDF harness itself in loopback mode, inside the
                 driver process, so these only start it and the UDF's CPU shows up under driver
  indexer        `churnstream index` processes started by this process (the latency runs start
                 one beside the job) and their descendants
  driver         this Python process (bench driver, generator, Elasticsearch poller, loopback UDF
                 harness, an in-process indexer) and its other descendants (generator worker processes)
Only descendants of this process count as Flink or indexer: another Flink job or indexer on the same
machine is ignored.
Kafka and Elasticsearch are shared services: their figures include whatever else used them.

CPU: utime+stime of /proc/<pid>/stat (clock ticks). The first and last samples are taken in the
caller's thread at the phase's boundaries; a process that starts during the phase counts from 0,
one that exits counts up to its last sample. cpu_pct is of one core (100 = one core busy).
Memory: VmRSS of /proc/<pid>/status summed over the group, maximum over the samples (every
`interval` s); a process born during the phase also contributes its VmHWM (its own peak, which
then lies inside the phase). Lifetime VmHWM of an older process is not used: it may predate the phase.
The sampling thread runs in the driver and its (small) cost is counted there.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
GROUPS = ("kafka", "elasticsearch", "flink", "flink_python", "indexer", "driver")
LABELS = {"kafka": "Kafka broker", "elasticsearch": "Elasticsearch", "flink": "Flink JVM",
          "flink_python": "UDF boot (Python)", "indexer": "indexer (Python)", "driver": "bench driver (Python)"}


# ---------------------------------------------------------------- parsers (pure, unit-tested)

@dataclass(frozen=True)
class Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    ticks: int        # utime + stime
    start: int        # starttime, clock ticks after boot


def parse_stat(text: str) -> Stat:
    """One /proc/<pid>/stat line. comm may hold spaces and parentheses: it ends at the last ')'."""
    head, _, rest = text.rpartition(")")
    pid, _, comm = head.partition(" (")
    f = rest.split()
    return Stat(pid=int(pid), comm=comm, state=f[0], ppid=int(f[1]), ticks=int(f[11]) + int(f[12]), start=int(f[19]))


def parse_status(text: str) -> dict[str, int]:
    """VmRSS and VmHWM of /proc/<pid>/status in kB (0 when absent, e.g. a zombie or kernel thread)."""
    out = {"VmRSS": 0, "VmHWM": 0}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0])
    return out


def parse_uptime(text: str) -> float:
    return float(text.split()[0])


def is_indexer(cmdline: str) -> bool:
    """A `churnstream index` process: `churnstream` (the console script or `-m churnstream`) followed
    by the `index` command. cmdline: /proc/<pid>/cmdline with NULs as spaces."""
    args = cmdline.split()
    for i, a in enumerate(args[:-1]):
        if (a == "churnstream" or a.endswith("/churnstream")) and args[i + 1] == "index":
            return True
    return False


def descendants(pid: int, parent_of: dict[int, int]) -> set[int]:
    """Every process below `pid` in a {pid: ppid} table."""
    children: dict[int, list[int]] = {}
    for p, pp in parent_of.items():
        children.setdefault(pp, []).append(p)
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), ()):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


# ---------------------------------------------------------------- accounting (pure, unit-tested)

@dataclass
class Usage:
    """Accumulates samples {group: {pid: (Stat, status)}} of one phase into per-group figures."""

    start_ticks: float                        # uptime at the phase's start, in clock ticks
    first: dict = field(default_factory=dict)     # (group, pid, start) -> ticks at first sight
    last: dict = field(default_factory=dict)      # (group, pid, start) -> ticks at last sight
    peak_kb: dict = field(default_factory=dict)   # group -> max over samples of sum RSS
    born_hwm_kb: dict = field(default_factory=dict)   # group -> max VmHWM of processes born in the phase
    pids: dict = field(default_factory=dict)      # group -> pids seen

    def add(self, sample: dict[str, dict[int, tuple[Stat, dict]]]) -> None:
        for group, procs in sample.items():
            rss = 0
            for pid, (st, status) in procs.items():
                key = (group, pid, st.start)
                if key not in self.first:
                    # Born during the phase: all its CPU time is in the phase.
                    self.first[key] = 0 if st.start >= self.start_ticks else st.ticks
                self.last[key] = st.ticks
                rss += status["VmRSS"]
                if st.start >= self.start_ticks:
                    self.born_hwm_kb[group] = max(self.born_hwm_kb.get(group, 0), status["VmHWM"])
                self.pids.setdefault(group, set()).add(pid)
            self.peak_kb[group] = max(self.peak_kb.get(group, 0), rss)

    def summary(self, wall_s: float, clk_tck: int = CLK_TCK) -> dict[str, dict]:
        out = {}
        for group in self.peak_kb:
            if not self.pids.get(group):
                continue          # never running during the phase (e.g. no Flink job yet)
            ticks = sum(self.last[k] - self.first[k] for k in self.first if k[0] == group)
            cpu_s = ticks / clk_tck
            peak = max(self.peak_kb[group], self.born_hwm_kb.get(group, 0))
            out[group] = {"cpu_s": round(cpu_s, 2), "cpu_pct": round(100 * cpu_s / wall_s, 1) if wall_s > 0 else None,
                          "peak_rss_mb": round(peak / 1024, 1), "pids": sorted(self.pids.get(group, ()))}
        return out


# ---------------------------------------------------------------- live /proc

class ProcReader:
    def __init__(self, root: str = "/proc"):
        self.root = Path(root)
        self._cmdline: dict[tuple[int, int], str] = {}

    def stat(self, pid: int) -> Stat | None:
        try:
            return parse_stat((self.root / str(pid) / "stat").read_text())
        except (OSError, ValueError, IndexError):
            return None

    def status(self, pid: int) -> dict | None:
        try:
            return parse_status((self.root / str(pid) / "status").read_text())
        except (OSError, ValueError, IndexError):
            return None

    def uptime_ticks(self) -> float:
        return parse_uptime((self.root / "uptime").read_text()) * CLK_TCK

    def table(self) -> dict[int, Stat]:
        out = {}
        for d in self.root.iterdir():
            if d.name.isdigit():
                st = self.stat(int(d.name))
                if st is not None:
                    out[st.pid] = st
        return out

    def cmdline(self, st: Stat) -> str:
        key = (st.pid, st.start)
        if key not in self._cmdline:
            try:
                self._cmdline[key] = (self.root / str(st.pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                return ""
        return self._cmdline[key]


def java_of(pid: int | None, table: dict[int, Stat]) -> int | None:
    """The server JVM of a service: `pid` or a java descendant of it (Elasticsearch runs below `runuser`)
    that starts no other JVM (Elasticsearch 9's CLI launcher JVM starts the server JVM below it)."""
    if pid is None or pid not in table:
        return None
    parent_of = {p: s.ppid for p, s in table.items()}
    jvms = sorted(p for p in {pid} | descendants(pid, parent_of) if table[p].comm == "java")
    leaves = [p for p in jvms if not any(table[c].comm == "java" for c in descendants(p, parent_of))]
    return leaves[0] if leaves else None


class ProcMonitor:
    """Samples the groups every `interval` s in a background thread while a phase runs."""

    def __init__(self, kafka_pid: int | None, es_pid: int | None, driver_pid: int | None = None,
                 interval: float = 0.5, reader: ProcReader | None = None):
        self.reader = reader or ProcReader()
        self.driver = driver_pid or os.getpid()
        self.interval = interval
        table = self.reader.table()
        self.fixed = {"kafka": java_of(kafka_pid, table), "elasticsearch": java_of(es_pid, table)}

    def groups(self) -> dict[str, set[int]]:
        table = self.reader.table()
        parent_of = {p: s.ppid for p, s in table.items()}
        below = descendants(self.driver, parent_of)
        flink = {p for p in below if table[p].comm == "java" and "org.apache.flink" in self.reader.cmdline(table[p])}
        flink_python = set()
        for p in flink:
            flink_python |= descendants(p, parent_of)
        indexer = {p for p in below - flink - flink_python if is_indexer(self.reader.cmdline(table[p]))}
        for p in list(indexer):
            indexer |= descendants(p, parent_of)
        out = {g: {p} for g, p in self.fixed.items() if p is not None}
        out.update(flink=flink, flink_python=flink_python, indexer=indexer,
                   driver={self.driver} | (below - flink - flink_python - indexer))
        return out

    def sample(self) -> dict[str, dict[int, tuple[Stat, dict]]]:
        out = {}
        for group, pids in self.groups().items():
            procs = {}
            for pid in pids:
                st, status = self.reader.stat(pid), self.reader.status(pid)
                if st is not None and status is not None and st.state != "Z":
                    procs[pid] = (st, status)
            out[group] = procs
        return out

    def phase(self) -> "Phase":
        return Phase(self)


class Phase:
    def __init__(self, monitor: ProcMonitor):
        self.m = monitor
        self.summary: dict[str, dict] = {}
        self._stop = threading.Event()

    def __enter__(self) -> "Phase":
        self.usage = Usage(start_ticks=self.m.reader.uptime_ticks())
        self.t0 = time.monotonic()
        self.usage.add(self.m.sample())
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-procs")
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.m.interval):
            try:
                self.usage.add(self.m.sample())
            except Exception:  # noqa: BLE001 - a sample lost to a racing exit is not worth failing a run
                pass

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.usage.add(self.m.sample())
        wall_s = time.monotonic() - self.t0
        self.summary = {"wall_s": round(wall_s, 2), "groups": self.usage.summary(wall_s)}

"""A Java Flight Recorder profile of the Flink JVM during a bench run, summarised by CPU share.

    with Recording(pid, out / "pipeline.jfr"):      # jcmd <pid> JFR.start ... / JFR.stop
        ...                                          # the measured job run
    summary = summarise_file(out / "pipeline.jfr")   # {"samples", "self", "threads", "inclusive", ...}

Why JFR: it is built into the JDK the Flink mini-cluster already runs on (no agent to install), it
attaches to the running PyFlink gateway JVM, and at `settings=profile` it costs a few percent. Its
`jdk.ExecutionSample` events sample the threads that are running Java code (every 10 ms with that
settings file), so the share of samples is a CPU share among the JVM's Java threads; time in native
code (JIT compiler, GC, I/O syscalls) is not in them.

The summary reads `jfr print --json` output event by event (read_events), never whole: a long run
has tens of thousands of samples. The shape of one event, as JDK 17's `jfr print --json --events
jdk.ExecutionSample` prints it (only the fields used here; every `/` is escaped as `\\/`):

    {"type": "jdk.ExecutionSample",
     "values": {"startTime": "...", "state": "STATE_RUNNABLE",
                "sampledThread": {"osName": "...", "javaName": "Calc[3] -> Sink: ... (1/1)#0", ...},
                "stackTrace": {"truncated": false,
                               "frames": [{"method": {"type": {"name": "org/apache/flink/Foo$Bar", ...},
                                                      "name": "processElement", "descriptor": "(...)V", ...},
                                           "lineNumber": 42, "bytecodeIndex": 7, "type": "JIT compiled"},
                                          ...]}}}     # frames[0] is the top (innermost) frame
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

log = logging.getLogger("churnstream.bench")

EVENT = "jdk.ExecutionSample"
STACK_DEPTH = 64          # JFR records at most 64 frames per stack by default: deeper printing gains nothing
# Frames counted for the inclusive share: the code of the job's operators, SQL functions, formats and
# sinks, ours (the Java UDF jar), and the code Flink generates per operator (StreamExecCalc$44 and the
# like, compiled by Janino into the default package). Flink's task loop, network input, watermark and
# timer plumbing and the source reader path are not: in a chain they hold every downstream operator's
# samples too, and filled the table (40% each) without naming an operator.
OPERATOR_CODE = ("org.apache.flink.table.runtime.", "org.apache.flink.cep.", "org.apache.flink.formats.",
                 "org.apache.flink.connector.kafka.sink.", "org.apache.flink.streaming.api.operators.python.",
                 "org.apache.flink.python.", "io.churnstream.")
PASS_ON = ("collect", "emitRow", "outputResult")     # collectors: hand a record to the next operator


class ProfileError(RuntimeError):
    """A profile could not be taken; the message says how to fix it."""


# ---------------------------------------------------------------- the recording (live JVM)

def jdk_tool(name: str, pid: int | None = None) -> str:
    """`jcmd` or `jfr` of the JDK the JVM `pid` runs on (a JDK attaches best to its own version), else
    the one on PATH."""
    if pid is not None:
        try:
            candidate = Path(os.readlink(f"/proc/{pid}/exe")).parent / name
            if candidate.exists():
                return str(candidate)
        except OSError:
            pass
    found = shutil.which(name)
    if found is None:
        raise ProfileError(f"`{name}` is not on PATH; install a full JDK 17 (e.g. 'apt-get install "
                           "openjdk-17-jdk-headless'), not only a JRE, and run again.")
    return found


def flink_pid(mon=None) -> int:
    """The Flink mini-cluster JVM below this process (bench/procs.py's group `flink`)."""
    from bench.procs import ProcMonitor

    pids = sorted((mon or ProcMonitor(kafka_pid=None, es_pid=None)).groups()["flink"])
    if not pids:
        raise ProfileError("no Flink JVM runs below this process to profile; run a job first "
                           "(job_bench.warm_up starts PyFlink's JVM).")
    return pids[0]


class Recording:
    """JFR on the JVM `pid` while the with block runs: `JFR.start` on entry, `JFR.stop` on exit, which
    writes the recording to `path`. The recording is stopped even when the block fails, so no JVM is
    left recording."""

    def __init__(self, pid: int, path: Path, settings: str = "profile", timeout: float = 120):
        # absolute: the JVM resolves a relative filename against its own working directory
        self.pid, self.path, self.settings, self.timeout = pid, Path(path).resolve(), settings, timeout
        self.name = f"churnstream-{self.path.stem}"

    def _jcmd(self, *args: str) -> str:
        cmd = [jdk_tool("jcmd", self.pid), str(self.pid), *args]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ProfileError(f"`{' '.join(cmd)}` did not answer in {self.timeout:.0f} s; check that the JVM "
                               f"{self.pid} is alive and not started with -XX:+DisableAttachMechanism.") from None
        out = (r.stdout + r.stderr).strip()
        # jcmd exits 0 on some failures (the JVM's answer is only text): recognise the failure in it too
        if r.returncode != 0 or "Exception" in out or "Could not" in out:
            raise ProfileError(f"`{' '.join(cmd)}` failed ({out.splitlines()[-1] if out else r.returncode}); "
                               "check that the JVM is alive and runs as this user.")
        return out

    def __enter__(self) -> "Recording":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self._jcmd("JFR.start", f"name={self.name}", f"settings={self.settings}", f"filename={self.path}")
        log.info("bench: JFR profile of the Flink JVM (pid %d) started, settings=%s", self.pid, self.settings)
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            self._jcmd("JFR.stop", f"name={self.name}", f"filename={self.path}")
        except ProfileError:
            if exc_type is None:
                raise
            log.warning("bench: could not stop JFR recording %s on pid %d", self.name, self.pid)
            return
        if not self.path.exists():
            if exc_type is None:
                raise ProfileError(f"JFR.stop wrote no {self.path}; check that the folder is writable by the JVM's "
                                   "user.")
            return
        log.info("bench: JFR profile written to %s (%.1f MB)", self.path, self.path.stat().st_size / 1e6)


def _jfr_print(path: Path, args: list[str], consume):
    """consume(stdout) of `jfr print <args> --events jdk.ExecutionSample <path>`, read as it is printed."""
    cmd = [jdk_tool("jfr"), "print", *args, "--events", EVENT, str(path)]
    with tempfile.TemporaryFile("w+") as err, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err,
                                                                text=True) as p:
        try:
            result, problem = consume(p.stdout), None
        except ValueError as e:         # output cut short or not JSON: jfr's own error says more
            result, problem = None, e
        p.stdout.close()
        p.wait()
        err.seek(0)
        why = err.read().strip()[-300:] or str(problem)
    if p.returncode != 0 or problem is not None:
        raise ProfileError(f"`{' '.join(cmd)}` failed ({why}); check that {path} is a complete JFR recording.")
    return result


def summarise_file(path: Path, top: int = 15) -> dict:
    """summarise() of a .jfr file's ExecutionSample events, with the inclusive shares of Flink's and our
    frames. Two passes, because of the cost: `jfr print --json` repeats every frame's class loader and
    module, ~3 KB per frame, so full 64-frame stacks come to ~200 KB per sample (GBs for a long run);
    the JSON pass prints only the top frame, and the stacks come from `jfr print`'s text (~5 KB per
    sample)."""
    summary = _jfr_print(path, ["--json", "--stack-depth", "1"],
                         lambda out: summarise(read_events(iter(lambda: out.read(1 << 20), "")), top=top))
    incl = _jfr_print(path, ["--stack-depth", str(STACK_DEPTH)],
                      lambda out: inclusive(read_stacks(out), summary["samples"], top=top))
    return {"file": str(path), **summary, "inclusive": incl}


# ---------------------------------------------------------------- the summary (pure, unit-tested)

_EVENTS_START = re.compile(r'"events"\s*:\s*\[')


def read_events(chunks: Iterable[str]) -> Iterator[dict]:
    """The events of `jfr print --json` output ({"recording": {"events": [...]}}) one at a time, from its
    text in pieces of any size."""
    decoder = json.JSONDecoder()
    chunks = iter(chunks)
    buf, pos, done = "", 0, False
    started = False

    def more() -> bool:
        """The next piece appended, what is already parsed dropped (so the buffer stays about a piece)."""
        nonlocal buf, pos, done
        nxt = next(chunks, None)
        if nxt is None:
            done = True
            return False
        buf, pos = buf[pos:] + nxt, 0
        return True

    while not started:
        m = _EVENTS_START.search(buf)
        if m:
            pos, started = m.end(), True
        elif not more():
            raise ValueError("no \"events\" array in the jfr print --json output")
    while True:
        while True:                     # skip the separators between events
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if pos < len(buf) or not more():
                break
        if pos >= len(buf):
            raise ValueError("jfr print --json output ends inside the events array")
        if buf[pos] == "]":
            return
        try:
            event, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            if done or not more():      # an event cut by the end of a piece: read on
                raise
            continue
        pos = end
        yield event


def frame_name(frame: dict) -> str:
    """`package.Class.method` of one JSON stack frame (JFR writes class names with slashes). The
    numbered hidden classes of lambdas (`Foo$$Lambda$12+0x...`) are folded into one name per site."""
    method = frame.get("method") or {}
    cls = re.sub(r"\$\$Lambda.*$", "$$Lambda", (method.get("type") or {}).get("name") or "?")
    return _generated_parts(f"{cls.replace('/', '.')}.{method.get('name') or '?'}")


def _generated_parts(name: str) -> str:
    """Flink splits a long generated method into numbered parts (`processElement_split1614`,
    `processElement_0_3_rewriteGroup10_14_...`, hundreds of characters): one name for all the parts."""
    name = re.sub(r"_split\d+$", "_split*", name)
    return re.sub(r"_\d+_\d+_rewriteGroup\w*$", "_rewriteGroup*", name)


def read_stacks(lines: Iterable[str]) -> Iterator[list[str]]:
    """The stacks of `jfr print` text output (top frame first, `package.Class.method` as frame_name
    writes them), one per event. Shape:

        jdk.ExecutionSample {
          startTime = 17:03:01.173
          sampledThread = "Thread-3" (javaThreadId = 19)
          state = "STATE_RUNNABLE"
          stackTrace = [
            java.util.HashMap.forEach(BiConsumer) line: 1421
            StreamExecCalc$44.processElement(StreamRecord)
            ...                                    <- the stack was cut at the depth limit
          ]
        }
    """
    frames = None
    for line in lines:
        text = line.strip()
        if frames is None:
            if text == "stackTrace = [":
                frames = []
        elif text == "]":
            yield frames
            frames = None
        elif text and text != "...":
            frames.append(_generated_parts(text.split("(", 1)[0]))


def is_operator_code(frame: str, code: tuple[str, ...] = OPERATOR_CODE) -> bool:
    """A frame of an operator, SQL function, format or sink (OPERATOR_CODE) or of generated code (no
    package), other than a collector's hand-over and the numbered parts of a split generated method
    (its whole method is counted)."""
    cls, _, method = frame.rpartition(".")
    return ((frame.startswith(code) or "." not in cls) and method not in PASS_ON
            and not method.endswith(("_split*", "_rewriteGroup*")))


def inclusive(stacks: Iterable[list[str]], samples: int, top: int = 15) -> list[dict]:
    """The `top` operator frames (is_operator_code) by the share of `samples` whose stack holds them
    anywhere: an operator's or function's whole cost, what it calls included (and, in an operator chain,
    the chained operators downstream of it; a recursive frame counts once per sample)."""
    counts: Counter = Counter()
    for frames in stacks:
        counts.update({f for f in frames if is_operator_code(f)})
    return _top(counts, top, samples, "frame") if samples else []


_SUBTASK = re.compile(r"\s*\(\d+/\d+\)(#\d+)?$")
_NUMBERED = re.compile(r"(?<=[-#: ])\d+\b")


def _operator_names(chain: str) -> str:
    """`Source: x[1] -> Calc(select=[a, f(b)])[2] -> (Calc[3], Calc[4])` -> `Source: x -> Calc -> (Calc, Calc)`:
    operator ids and argument lists go (a parenthesis right after a name), the parentheses of a fork
    stay (they follow `-> `)."""
    out, depth, i = [], 0, 0
    while i < len(chain):
        ch = chain[i]
        if depth == 0 and ch == "[" and re.match(r"\[\d+\]", chain[i:]):
            i = chain.index("]", i) + 1
            continue
        if depth or (ch == "(" and out and (out[-1].isalnum() or out[-1] in "_$])")):
            depth += (ch == "(") - (ch == ")")
        else:
            out.append(ch)
        i += 1
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _top_level_ops(chain: str) -> list[str]:
    """The operators of a chain split at its ` -> ` outside parentheses (a fork group stays one piece)."""
    ops, depth, start = [], 0, 0
    for i, ch in enumerate(chain):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and chain.startswith(" -> ", i):
            ops.append(chain[start:i])
            start = i + 4
    return ops + [chain[start:]]


def thread_group(name: str, width: int = 160) -> str:
    """A thread's name grouped across its instances and shortened for a table. Flink names a task
    thread after its operator chain plus the subtask, `Source: x[1] -> Calc(select=[...])[2] (1/2)#0`:
    the subtask suffix goes, each operator keeps only its name (`Source: x -> Calc`), a sink's
    `t: Writer -> t: Committer` becomes `t: Writer`, and a chain still longer than `width` keeps its first
    operators and its last one. Other threads (pools) lose their numbers (`pool-3-thread-7` ->
    `pool-*-thread-*`; `BLOB connection for /127.0.0.1:35486` -> `BLOB connection for /127.0.0.1:*`)."""
    name = name or "?"
    chain = _SUBTASK.sub("", name)
    if chain == name and " -> " not in name:     # not a task thread
        return _NUMBERED.sub("*", name)
    chain = _operator_names(chain)
    chain = re.sub(r"([^\s(,>]+): Writer -> \1: Committer", r"\1: Writer", chain)
    if len(chain) <= width:
        return chain
    ops = _top_level_ops(chain)
    last = ops[-1] if len(ops) > 1 and len(ops[-1]) <= width // 2 else ""
    head = []
    for op in ops[:-1] if last else ops:
        if len(" -> ".join([*head, op, "…", last])) > width:
            break
        head.append(op)
    short = " -> ".join([*head, "…", *([last] if last else [])])
    return short if head else chain[:width - 1] + "…"


def _top(counter: Counter, n: int, total: int, key: str) -> list[dict]:
    return [{key: k, "samples": c, "share": round(c / total, 4)}
            for k, c in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def summarise(events: Iterable[dict], top: int = 15) -> dict:
    """Where the samples of one recording (`jfr print --json` events) fall; shares are of all of them:

    samples          how many (0: nothing was running Java code, or the recording was too short)
    self             the `top` most frequent top frames: the method the CPU was in
    threads          every thread group (thread_group) with its share: a Flink task thread per operator chain
    truncated_share  samples whose stack JFR cut at its depth limit (64 frames): their outermost frames are
                     missing from inclusive shares
    """
    n = truncated = 0
    self_c, thread_c = Counter(), Counter()
    for e in events:
        if e.get("type", EVENT) != EVENT:
            continue
        v = e.get("values") or {}
        stack = v.get("stackTrace") or {}
        frames = stack.get("frames") or []
        th = v.get("sampledThread") or {}
        n += 1
        truncated += bool(stack.get("truncated"))
        thread_c[thread_group(th.get("javaName") or th.get("osName") or "?")] += 1
        self_c[frame_name(frames[0]) if frames else "(no stack)"] += 1
    if n == 0:
        return {"samples": 0, "truncated_share": None, "self": [], "threads": []}
    return {"samples": n, "truncated_share": round(truncated / n, 4), "self": _top(self_c, top, n, "frame"),
            "threads": _top(thread_c, len(thread_c), n, "thread")}

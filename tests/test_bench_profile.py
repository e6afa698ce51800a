"""The JFR profile summary of bench/profile.py, and the report's profile section, on literal
`jfr print` output in the shape JDK 17 prints it (taken from a real recording of the Flink JVM)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # bench/ is not an installed package

from bench.profile import (frame_name, inclusive, is_operator_code, read_events, read_stacks,  # noqa: E402
                           summarise, thread_group)

CHAIN = ("TemporalJoin[161] -> Calc[162] -> PythonCalc[163] -> Calc[164] -> (Calc[165] -> ConstraintEnforcer[166] -> "
         "kafka_enriched[166]: Writer -> kafka_enriched[166]: Committer, Correlate[167] -> Calc[168] -> "
         "LocalWindowAggregate[169], Calc[174]) (1/1)#0")
SOURCE = ("Source: activity_raw[136] -> Calc[137] -> Correlate[138] -> Calc[139] -> (Calc[140] -> (Calc[141], "
          "Calc[193]), Calc[192]) (1/1)#0")

# One event exactly as `jfr print --json --stack-depth 2 --events jdk.ExecutionSample` prints it.
EVENT = {
    "type": "jdk.ExecutionSample",
    "values": {
        "startTime": "2026-12-02T17:03:09.503119811Z",
        "sampledThread": {"osName": SOURCE, "osThreadId": 26951, "javaName": SOURCE, "javaThreadId": 828,
                          "group": {"parent": {"parent": None, "name": "system"}, "name": "main"}},
        "stackTrace": {"truncated": False, "frames": [
            {"method": {"type": {"classLoader": {"type": None, "name": "bootstrap"}, "name": "java/lang/String",
                                 "package": {"name": "java/lang", "module": {
                                     "name": "java.base", "version": "17.0.15", "location": "jrt:/java.base",
                                     "classLoader": {"type": None, "name": "bootstrap"}}, "exported": True},
                                 "modifiers": 17, "hidden": False},
                        "name": "equals", "descriptor": "(Ljava/lang/Object;)Z", "modifiers": 1, "hidden": False},
             "lineNumber": 1832, "bytecodeIndex": 2, "type": "JIT compiled"},
            {"method": {"type": {"classLoader": {"type": None, "name": "app"}, "name": "StreamExecCalc$44",
                                 "package": None, "modifiers": 17, "hidden": False},
                        "name": "processElement", "descriptor": "(Lorg/apache/flink/streaming/runtime/streamrecord/"
                                                                "StreamRecord;)V", "modifiers": 1, "hidden": False},
             "lineNumber": -1, "bytecodeIndex": 0, "type": "Inlined"}]},
        "state": "STATE_RUNNABLE",
    },
}


def sample(thread: str, *frames: str, truncated: bool = False) -> dict:
    """An event of the same shape: frames as `pkg/Class.method`, top first."""
    def frame(f):
        cls, _, method = f.rpartition(".")
        return {"method": {"type": {"name": cls, "package": None, "hidden": False}, "name": method,
                           "descriptor": "()V", "modifiers": 1, "hidden": False},
                "lineNumber": 1, "bytecodeIndex": 0, "type": "JIT compiled"}
    return {"type": "jdk.ExecutionSample",
            "values": {"startTime": "2026-12-02T17:03:09Z", "sampledThread": {"osName": thread, "javaName": thread},
                       "stackTrace": {"truncated": truncated, "frames": [frame(f) for f in frames]},
                       "state": "STATE_RUNNABLE"}}


def test_frame_name_is_the_dotted_class_and_method():
    assert frame_name(EVENT["values"]["stackTrace"]["frames"][0]) == "java.lang.String.equals"
    assert frame_name(EVENT["values"]["stackTrace"]["frames"][1]) == "StreamExecCalc$44.processElement"
    # JDK 17's hidden lambda classes carry a number and an address: one name per lambda site
    lam = sample("t", "org.apache.flink.runtime.taskmanager.Task$$Lambda$1180+0x00007ff59cd82e10/1870653079.run")
    assert frame_name(lam["values"]["stackTrace"]["frames"][0]) == "org.apache.flink.runtime.taskmanager.Task$$Lambda.run"
    # the parts Flink splits a long generated method into are one frame each kind
    for part, name in (("processElement_split1614", "processElement_split*"),
                       ("processElement_0_3_rewriteGroup10_14_rewriteGroup17_21", "processElement_rewriteGroup*")):
        f = sample("t", f"StreamExecCalc$188.{part}")["values"]["stackTrace"]["frames"][0]
        assert frame_name(f) == f"StreamExecCalc$188.{name}"


@pytest.mark.parametrize("name, group", [
    (SOURCE, "Source: activity_raw -> Calc -> Correlate -> Calc -> (Calc -> (Calc, Calc), Calc)"),
    (CHAIN, "TemporalJoin -> Calc -> PythonCalc -> Calc -> (Calc -> ConstraintEnforcer -> kafka_enriched: Writer, "
            "Correlate -> Calc -> LocalWindowAggregate, Calc)"),
    ("HOP(win=[size 10 s], f(x)) -> Calc(select=[a, b]) (2/4)#1", "HOP -> Calc"),     # argument lists go
    ("Source Data Fetcher for Source: offers[155] -> Calc[156] (1/1)#0", "Source Data Fetcher for Source: offers -> Calc"),
    ("kafka-producer-network-thread | producer-12", "kafka-producer-network-thread | producer-*"),
    ("flink-pekko.actor.default-dispatcher-7", "flink-pekko.actor.default-dispatcher-*"),
    ("Thread-3", "Thread-*"),
    ("BLOB connection for /127.0.0.1:35486", "BLOB connection for /127.0.0.1:*"),
])
def test_thread_groups(name, group):
    assert thread_group(name) == group


def test_a_long_chain_keeps_its_first_operators_and_its_last():
    assert thread_group("A[1] -> B[2] -> C[3] -> D[4] -> E[5] -> F[6] (1/1)#0", width=20) == "A -> B -> … -> F"
    short = thread_group(CHAIN, width=60)
    assert short == "TemporalJoin -> Calc -> PythonCalc -> Calc -> …" and len(short) <= 60


def test_subtasks_of_one_chain_are_one_group():
    assert thread_group(SOURCE) == thread_group(SOURCE.replace("(1/1)#0", "(2/2)#3"))


def test_summary_of_samples():
    events = [EVENT,
              sample(SOURCE.replace("(1/1)", "(2/2)"), "java/lang/String.equals", "StreamExecCalc$44.processElement"),
              sample(CHAIN, "org/apache/flink/table/runtime/operators/join/temporal/X.processElement1",
                     truncated=True),
              sample("Thread-3", "java/util/HashMap.forEach"),
              sample("Thread-4", "java/lang/String.equals"),
              {"type": "jdk.CPULoad", "values": {}},                    # another event type is ignored
              sample("kafka-producer-network-thread | producer-1")]    # a sample without frames
    s = summarise(events, top=2)
    assert s["samples"] == 6 and s["truncated_share"] == round(1 / 6, 4)
    assert s["self"] == [{"frame": "java.lang.String.equals", "samples": 3, "share": 0.5},
                         {"frame": "(no stack)", "samples": 1, "share": round(1 / 6, 4)}]
    threads = {t["thread"]: t["samples"] for t in s["threads"]}       # every thread group, not only `top`
    assert threads == {"Source: activity_raw -> Calc -> Correlate -> Calc -> (Calc -> (Calc, Calc), Calc)": 2,
                       "Thread-*": 2, thread_group(CHAIN): 1, "kafka-producer-network-thread | producer-*": 1}
    assert [t["samples"] for t in s["threads"]] == sorted(threads.values(), reverse=True)
    assert summarise([]) == {"samples": 0, "truncated_share": None, "self": [], "threads": []}


JSON_TEXT = json.dumps({"recording": {"events": [EVENT, sample("Thread-3", "a/B.c"), sample("Thread-3", "a/B.d")]}},
                       indent=2)


@pytest.mark.parametrize("size", [1, 7, 100, 1 << 20])
def test_events_are_read_one_at_a_time_from_any_pieces(size):
    text = JSON_TEXT.replace("/", "\\/")        # jfr escapes every slash: "java\/lang\/String"
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    events = list(read_events(pieces))
    assert events == json.loads(JSON_TEXT)["recording"]["events"]


def test_no_events_and_cut_output():
    assert list(read_events(['{\n  "recording": {\n    "events": []\n  }\n}'])) == []
    with pytest.raises(ValueError):
        list(read_events([JSON_TEXT[:len(JSON_TEXT) // 2]]))
    with pytest.raises(ValueError):
        list(read_events(["jfr: file not found"]))


# Two events exactly as `jfr print --stack-depth 64 --events jdk.ExecutionSample` prints them (cut short).
TEXT = """jdk.ExecutionSample {
  startTime = 17:03:09.546
  sampledThread = "Source: activity_raw[136] -> Calc[137] (1/1)#0" (javaThreadId = 828)
  state = "STATE_RUNNABLE"
  stackTrace = [
    java.lang.String.equals(Object) line: 1832
    StreamExecCalc$44.processElement_split1556(StreamRecord)
    StreamExecCalc$44.processElement(StreamRecord)
    org.apache.flink.streaming.runtime.tasks.ChainingOutput.pushToOperator(StreamRecord) line: 75
    org.apache.flink.connector.base.source.reader.SourceReaderBase.pollNext(ReaderOutput) line: 160
    org.apache.flink.streaming.runtime.tasks.StreamTask.processInput(MailboxDefaultAction$Controller) line: 638
    java.lang.Thread.run() line: 840
  ]
}

jdk.ExecutionSample {
  startTime = 17:03:01.173
  sampledThread = "Thread-3" (javaThreadId = 19)
  state = "STATE_RUNNABLE"
  stackTrace = [
    org.apache.calcite.sql.SqlCall.accept(SqlVisitor) line: 161
    org.apache.flink.table.planner.delegation.ParserImpl.parse(String) line: 106
    org.apache.flink.table.planner.delegation.ParserImpl.<init>(String) line: 10
    org.apache.flink.table.planner.delegation.ParserImpl.parse(String) line: 106
    ...
  ]
}
"""


def test_stacks_from_the_text_output():
    stacks = list(read_stacks(TEXT.splitlines(keepends=True)))
    assert stacks[0][:2] == ["java.lang.String.equals", "StreamExecCalc$44.processElement_split*"]
    assert stacks[0][-1] == "java.lang.Thread.run" and len(stacks[0]) == 7
    assert stacks[1] == ["org.apache.calcite.sql.SqlCall.accept",             # the `...` of a cut stack is no frame
                         "org.apache.flink.table.planner.delegation.ParserImpl.parse",
                         "org.apache.flink.table.planner.delegation.ParserImpl.<init>",
                         "org.apache.flink.table.planner.delegation.ParserImpl.parse"]


def test_inclusive_shares_of_operator_frames():
    stacks = list(read_stacks(TEXT.splitlines(keepends=True)))
    stacks.append(["java.util.HashMap.get",
                   "org.apache.flink.table.runtime.operators.join.temporal.TemporalRowTimeJoinOperator.onEventTime",
                   "org.apache.flink.table.runtime.util.StreamRecordCollector.collect",    # a hand-over
                   "StreamExecCalc$44.processElement",
                   "org.apache.flink.streaming.api.operators.InternalTimerServiceImpl.advanceWatermark"])
    got = {x["frame"]: x["samples"] for x in inclusive(stacks, samples=4)}
    assert got == {"StreamExecCalc$44.processElement": 2,       # generated code; its split parts are not counted
                   "org.apache.flink.table.runtime.operators.join.temporal.TemporalRowTimeJoinOperator.onEventTime": 1}
    # not: java.*, calcite, the planner, the task loop and source reader (StreamTask, ChainingOutput,
    # SourceReaderBase), timers, collectors
    assert inclusive(stacks, samples=4, top=1) == [
        {"frame": "StreamExecCalc$44.processElement", "samples": 2, "share": 0.5}]
    assert inclusive([], samples=0) == []


@pytest.mark.parametrize("frame, counted", [
    ("org.apache.flink.table.runtime.functions.SqlJsonUtils.jsonValue", True),
    ("org.apache.flink.connector.kafka.sink.KafkaWriter.write", True),
    ("io.churnstream.udf.AvroDecode.eval", True),
    ("StreamExecCorrelate$63.processElement", True),
    ("StreamExecCorrelate$63.processElement_split*", False),
    ("StreamExecCorrelate$63$TableFunctionCollector$2.collect", False),
    ("org.apache.flink.connector.base.source.reader.SourceReaderBase.pollNext", False),
    ("org.apache.flink.streaming.runtime.io.AbstractStreamTaskNetworkInput.emitNext", False),
    ("org.apache.flink.table.planner.delegation.ParserImpl.parse", False),
    ("java.lang.String.equals", False),
])
def test_operator_code(frame, counted):
    assert is_operator_code(frame) is counted


def test_report_of_a_throughput_only_profiled_run():
    """--only throughput --profile: the other phases' sections are left out, the profile is shown."""
    from bench.__main__ import render

    profile = {"file": "/tmp/x/profiles/throughput-pipeline-1.jfr", **summarise([EVENT, sample(CHAIN, "a/B.c")]),
               "inclusive": [{"frame": "StreamExecCalc$44.processElement", "samples": 1, "share": 0.5}]}
    base = {"file": "p.jfr", **summarise([sample("kafka-producer-network-thread | producer-1", "a/B.c")]),
            "inclusive": []}
    fig = {"median": None, "min": None, "max": None, "values": [None]}
    procs = {"wall_s": 3.0, "groups": {"flink": {"cpu_s": 3.0, "cpu_pct": 100.0, "peak_rss_mb": 900.0, "pids": [1]}}}
    tp = {kind: {"runs": [{"events": 3000, "wall_s": 3.0, "startup_s": 2.0, "records_per_s": None, "procs": procs,
                           "profile": prof}],
                 "records_per_s": fig, "wall_s": fig, "startup_s": fig}
          for kind, prof in (("pipeline", profile), ("passthrough", base))}
    r = {"command": "python -m bench --smoke --only throughput --profile", "date": "today", "repeat": 1,
         "phases": ["throughput"], "total_s": 60.0, "warm_up_s": {"passthrough": 14.0, "pipeline": 13.7},
         "environment": {"cpu": "cpu", "cores": 2, "memory_gib": 8, "python": "3.11", "python_packages": {},
                         "versions": {"flink": "1.20", "flink_scala": "2.12", "flink_kafka_connector": "3",
                                      "kafka": "3", "elasticsearch": "9"}},
         "job_throughput": tp}
    md = render(r)
    assert "## Where the Flink job's CPU goes" in md and "Phases run (`--only`): throughput" in md
    assert "| `java.lang.String.equals` | 50.0% | 1 |" in md
    assert f"| {thread_group(SOURCE)} | 50.0% | 1 |" in md
    assert "| `StreamExecCalc$44.processElement` | 50.0% | 1 |" in md
    assert "kafka-producer-network-thread \\| producer-* 100.0%" in md          # `|` escaped in a table's text
    assert "## Generator" not in md and "## End-to-end latency" not in md and "## Indexer" not in md
    assert "| throughput: pipeline job | 3.0 |" in md
    no_profile = {**r, "job_throughput": {k: {**v, "runs": [{x: y for x, y in v["runs"][0].items() if x != "profile"}]}
                                          for k, v in tp.items()}}
    assert "Where the Flink job's CPU goes" not in render(no_profile)

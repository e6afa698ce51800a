"""The /proc parsers and the per-phase accounting of bench/procs.py, on literal /proc text."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # bench/ is not an installed package

from bench.procs import (Stat, Usage, descendants, is_indexer, java_of, parse_stat, parse_status,  # noqa: E402
                         parse_uptime)

JAVA_STAT = ("20521 (java) S 20511 20511 20511 0 -1 4194304 189628 1573 2 0 4374 294 3 0 20 0 155 0 1935120 "
             "9562169344 173876 18446744073709551615 94030803873792 94030803874677 140733721488000 0 0 0 0 2 "
             "16800973 0 0 0 17 0 0 0 0 0 0 94030803885376 94030803886104 94030823448576 140733721492398 "
             "140733721495191 140733721495191 140733721497578 0\n")

STATUS = """Name:\tjava
Umask:\t0022
State:\tS (sleeping)
Tgid:\t20521
PPid:\t20511
VmPeak:\t 9338056 kB
VmSize:\t 9338056 kB
VmHWM:\t  698164 kB
VmRSS:\t  695720 kB
RssAnon:\t  671920 kB
Threads:\t155
"""


def test_parse_stat_fields():
    st = parse_stat(JAVA_STAT)
    assert st == Stat(pid=20521, comm="java", state="S", ppid=20511, ticks=4374 + 294, start=1935120)


def test_parse_stat_comm_with_spaces_and_parentheses():
    line = "77 (my (odd) name) R 1 77 77 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 500 0 0\n"
    st = parse_stat(line)
    assert (st.pid, st.comm, st.state, st.ppid, st.ticks, st.start) == (77, "my (odd) name", "R", 1, 15, 500)


def test_parse_status_and_uptime():
    assert parse_status(STATUS) == {"VmRSS": 695720, "VmHWM": 698164}
    assert parse_status("Name:\tkworker/0:1\nState:\tI (idle)\n") == {"VmRSS": 0, "VmHWM": 0}
    assert parse_uptime("19476.12 38001.50\n") == 19476.12


def _st(pid, ppid, comm="python", ticks=0, start=0):
    return Stat(pid=pid, comm=comm, state="S", ppid=ppid, ticks=ticks, start=start)


def test_descendants_and_java_of():
    table = {1: _st(1, 0, "init"), 10: _st(10, 1, "runuser"), 11: _st(11, 10, "java"),
             20: _st(20, 1, "java"), 30: _st(30, 1), 31: _st(31, 30, "java"), 32: _st(32, 31, "bash"),
             33: _st(33, 32)}
    parent_of = {p: s.ppid for p, s in table.items()}
    assert descendants(30, parent_of) == {31, 32, 33}
    assert descendants(33, parent_of) == set()
    assert java_of(10, table) == 11          # Elasticsearch: the pid file names runuser
    assert java_of(20, table) == 20          # Kafka: the pid file names the JVM
    assert java_of(99, table) is None and java_of(None, table) is None


def test_java_of_elasticsearch_9_is_the_server_jvm_not_its_launcher():
    # runuser -> java (CliToolLauncher) -> java (the server), and a JVM-less process: no JVM at all
    table = {1: _st(1, 0, "init"), 40: _st(40, 1, "runuser"), 41: _st(41, 40, "java"), 45: _st(45, 41, "java"),
             46: _st(46, 45, "controller"), 50: _st(50, 1, "runuser")}
    assert java_of(40, table) == 45
    assert java_of(41, table) == 45
    assert java_of(50, table) is None


def test_is_indexer_recognises_churnstream_index_only():
    assert is_indexer("/w/.venv/bin/python -m churnstream index --group b1-indexer ")
    assert is_indexer("/w/.venv/bin/python /w/.venv/bin/churnstream index")
    assert not is_indexer("/w/.venv/bin/python -m churnstream job --bounded")
    assert not is_indexer("/w/.venv/bin/python -m bench --smoke --out /tmp/x")
    assert not is_indexer("python -m churnstream")
    assert not is_indexer("")


def test_usage_cpu_and_peak_per_group():
    mem = lambda rss, hwm=0: {"VmRSS": rss, "VmHWM": hwm or rss}  # noqa: E731
    u = Usage(start_ticks=1000)
    # An old process (started before the phase) counts from its first sample; its lifetime
    # VmHWM is ignored. A process born during the phase counts from 0 and contributes its VmHWM.
    u.add({"kafka": {5: (_st(5, 1, "java", ticks=400, start=10), mem(1024, 999_999))}, "flink": {}})
    u.add({"kafka": {5: (_st(5, 1, "java", ticks=450, start=10), mem(2048, 999_999))},
           "flink": {7: (_st(7, 6, "java", ticks=30, start=1100), mem(512, 4096))}})
    u.add({"kafka": {5: (_st(5, 1, "java", ticks=500, start=10), mem(1024, 999_999))},
           "flink": {7: (_st(7, 6, "java", ticks=80, start=1100), mem(1024, 4096)),
                     8: (_st(8, 7, "python", ticks=20, start=1200), mem(1024))}})
    s = u.summary(wall_s=2.0, clk_tck=100)
    assert s["kafka"] == {"cpu_s": 1.0, "cpu_pct": 50.0, "peak_rss_mb": 2.0, "pids": [5]}
    assert s["flink"] == {"cpu_s": 1.0, "cpu_pct": 50.0, "peak_rss_mb": 4.0, "pids": [7, 8]}


def test_usage_pid_reuse_is_a_new_process_and_unseen_groups_are_left_out():
    u = Usage(start_ticks=20)   # pid 9 first an old process, then a new one with the same pid
    u.add({"driver": {9: (_st(9, 1, ticks=100, start=5), {"VmRSS": 100, "VmHWM": 100})}, "flink": {}})
    u.add({"driver": {9: (_st(9, 1, ticks=10, start=50), {"VmRSS": 100, "VmHWM": 100})}, "flink": {}})
    s = u.summary(wall_s=1.0, clk_tck=100)
    assert s["driver"]["cpu_s"] == 0.1 and "flink" not in s

"""The benchmark harness runs end to end with tiny sizes (its figures are not asserted: speed is
measured by `python -m bench`, not by tests)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_smoke_run_writes_every_figure(tmp_path, stack):
    r = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "churnstream.bench bench: latency pipeline" in r.stderr   # our log lines survive PyFlink's logging setup
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["command"].startswith("python -m bench --smoke") and res["repeat"] == 1
    idx = res["indexer"]
    for what in ("bulk", "indexer"):      # the indexer next to its raw bulk ceiling, same documents
        run = idx[what]["runs"][0]
        assert run["docs_per_s"] > 0 and run["es_us_per_doc"] is not None and run["client_us_per_doc"] is not None
        assert "elasticsearch" in run["procs"]["groups"]
    assert idx["indexer"]["runs"][0]["indexed"] == idx["indexer"]["runs"][0]["visible"] == idx["docs"]
    assert all(v["msgs_per_s"]["median"] > 0 for v in res["generator"]["variants"].values())
    for kind in ("pipeline", "passthrough"):
        assert res["job_throughput"][kind]["runs"][0]["wall_s"] > 0     # records/s may be None at smoke sizes
        lat = res["latency"]["500"][kind]["runs"][0]
        # The pipeline's last events wait for a watermark that only later traffic moves: not all visible.
        assert 0 < lat["visible"] <= lat["events"] and lat["p50_s"] is not None
        # a live job and `churnstream index` beside it, each sampled as its own group
        assert {"kafka", "elasticsearch", "flink", "indexer", "driver"} <= set(lat["procs"]["groups"])
    assert res["latency"]["500"]["windows"]["documents"]["median"] > 0     # 12 s of load cross a window end
    md = (tmp_path / "RESULTS.md").read_text()
    assert "| enriched (pipeline) |" in md and "Window results" in md and "Flink JVM" in md
    assert "## Indexer: result topic -> Elasticsearch" in md and "| raw bulk, one client (ceiling) |" in md
    assert "Kafka -> Flink -> Kafka" in md and "indexer (Python)" in md

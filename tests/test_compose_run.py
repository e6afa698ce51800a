"""`docker compose up` for real: docker/smoke.sh, the path people run, run here as it is.

It needs nothing installed by hand: with no Docker engine running it installs Debian's docker.io and
starts a private engine (data root under $CHURNSTREAM_HOME, so the layer cache is kept between
runs; stopped by its pid at the end); with no image registry it builds debian:bookworm-slim from
Debian's packages and runs Kafka and Elasticsearch from the project's stack image
(docker/compose.no-registry.yml). What the script checks, each as a step line of its output: every
service healthy or completed in its order, no app process running as root, the job RUNNING with 0
restarts, every index equal to the recomputation of a seeded feed with two indexers sharing the
partitions, the Avro profile's job beside it, the TaskManager killed in the middle of an Avro feed
and both jobs restored from their checkpoints with every index, JSON and Avro, exact, and `down -v`
leaving nothing behind.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from foundation import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.docker]

SMOKE = PROJECT_ROOT / "docker" / "smoke.sh"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    log = tmp_path_factory.mktemp("compose-run") / "smoke.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_") or k == "CHURNSTREAM_HOME"}
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", str(SMOKE)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=3600)
        except subprocess.TimeoutExpired:
            proc.terminate()          # SIGTERM: the script's EXIT trap still takes the stack and its engine down
            proc.wait(timeout=300)
    text = log.read_text(errors="replace")
    steps = [line for line in text.splitlines() if re.match(r"^\d\d:\d\d:\d\d smoke \[", line)]
    print("\n".join(steps))
    return proc.returncode, text, steps


def _step(steps: list[str], text: str) -> str:
    found = [s for s in steps if text in s]
    assert found, f"no step line with {text!r}:\n" + "\n".join(steps[-15:])
    return found[0]


def test_the_compose_stack_builds_runs_and_is_exact(smoke_run):
    code, text, steps = smoke_run
    tail = "\n".join(text.splitlines()[-80:])
    assert code == 0, f"docker/smoke.sh exited {code}:\n{tail}"
    _step(steps, "ok: built, healthy in order, no root, every index exact")


def test_every_service_became_healthy_in_its_order_and_none_runs_as_root(smoke_run):
    _, text, steps = smoke_run
    healthy = _step(steps, "every service healthy or completed")
    for service in ("kafka", "elasticsearch", "es-setup", "topics", "jobmanager", "taskmanager", "job", "indexerx2"):
        assert re.search(rf"\b{service}\b", healthy), healthy
    assert re.search(r"^order: (\d+) depends_on edges, 0 broken$", text, re.M)
    uids = dict(re.findall(r"(\w[\w-]*)=(\d+)", _step(steps, "no app process runs as root")))
    assert {"jobmanager", "taskmanager", "job", "indexer"} <= set(uids)
    assert all(uid != "0" for uid in uids.values()), uids


def test_every_index_equals_the_recomputation_before_and_after_a_taskmanager_is_lost(smoke_run):
    _, text, steps = smoke_run
    _step(steps, "every index equals the recomputation")
    kill = steps.index(_step(steps, "kill taskmanager (SIGKILL) mid-feed"))
    for job in ("json", "avro"):
        recovered = _step(steps, f"the {job} job recovered")
        assert steps.index(recovered) > kill and '"restarts": 0,' not in recovered and "chk-" in recovered, recovered
    _step(steps, "every index still equals the recomputation")
    tables = re.findall(r"^(churn-[a-z-]+)\s+(\d+)\s+(\d+)\s+0\s+0\s+0\s+0\s+OK$", text, re.M)
    assert len(tables) == 2 * 7, f"two verify tables of 7 exact indices: {tables}"
    assert all(int(expected) > 0 for name, expected, _ in tables if name != "churn-inactivity"), tables


def test_two_indexers_share_every_result_partition(smoke_run):
    _, text, _ = smoke_run
    m = re.search(r"^group churnstream-indexer: 2 members, \S+, partitions per member \[(\d+), (\d+)\], "
                  r"(\d+) result partitions$", text, re.M)
    assert m and int(m[1]) + int(m[2]) == int(m[3]) and min(int(m[1]), int(m[2])) > 0, m and m[0]


def test_the_avro_profile_runs_beside_the_json_job_and_is_exact(smoke_run):
    _, text, steps = smoke_run
    _step(steps, "avro: every avro-churn index equals the recomputation, the TaskManager lost mid-feed")
    tables = re.findall(r"^(avro-churn-[a-z-]+)\s+(\d+)\s+(\d+)\s+0\s+0\s+0\s+0\s+OK$", text, re.M)
    assert len(tables) == 7 and all(int(n) > 0 for name, n, _ in tables if name.endswith("enriched")), tables


def test_down_v_leaves_nothing_behind(smoke_run):
    _, _, steps = smoke_run
    _step(steps, "down -v left no container, network or volume")

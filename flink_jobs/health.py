"""Is the churn job healthy on a session cluster? The compose `job` service's healthcheck.

    python -m flink_jobs.health jobmanager:8081        # exit 0 healthy, 1 not; one line saying why

"RUNNING" alone means little: a job that fails on every record is RUNNING between its restarts,
and Flink's /jobs/overview shows it so. Healthy here means: a job named churnstream-pipeline is
RUNNING (churnstream-pipeline-<prefix> with CHURNSTREAM_TOPIC_PREFIX set, as for the compose Avro
job), every one of its tasks is RUNNING, and its restart count (the numRestarts metric) is the
one the previous probe saw for the same job. A probe is a fresh process, so it keeps that count in
a small state file; the first probe of a job is therefore never healthy, and "stable" means stable
over one healthcheck interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from foundation.settings import Settings
from flink_jobs.rest import JOB_NAME, FlinkRest, job_name, task_states


def assess(jobs: list[dict], detail: dict | None, restarts: int | None,
           previous: dict | None, name: str = JOB_NAME) -> tuple[bool, str, dict | None]:
    """(healthy, why, state to keep for the next probe), from the REST answers of one probe."""
    ours = [j for j in jobs if j.get("name") == name]
    running = [j for j in ours if j.get("state") == "RUNNING"]
    if not running:
        states = ", ".join(sorted({j.get("state", "?") for j in ours})) or "none submitted"
        return False, f"no {name} job is RUNNING ({states})", None
    job = max(running, key=lambda j: j.get("start-time", 0))
    jid = job["jid"]
    if detail is None or restarts is None:
        return False, f"job {jid} is RUNNING but its details could not be read", previous
    state = {"jid": jid, "restarts": restarts}
    if not all(v.get("status") == "RUNNING" for v in detail.get("vertices", [])):
        return False, f"job {jid} is RUNNING but not all its tasks are ({task_states(detail)})", state
    if previous != state:
        if previous and previous.get("jid") == jid:
            return False, f"job {jid} restarted (restart count {previous['restarts']} -> {restarts})", state
        return False, f"job {jid} is RUNNING with {restarts} restarts; healthy if still so at the next probe", state
    return True, f"job {jid} RUNNING, all tasks running, {restarts} restarts, none since the last probe", state


def probe(address: str, state_file: Path, name: str = JOB_NAME) -> tuple[bool, str]:
    rest = FlinkRest(address)
    try:
        previous = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        previous = None
    try:
        jobs = rest.jobs()
    except OSError as e:
        return False, f"the JobManager at {address} does not answer ({getattr(e, 'reason', e)})"
    detail = restarts = None
    ours = [j for j in jobs if j.get("name") == name and j.get("state") == "RUNNING"]
    if ours:
        jid = max(ours, key=lambda j: j.get("start-time", 0))["jid"]
        try:
            detail, restarts = rest.job(jid), rest.num_restarts(jid)
        except (OSError, ValueError, KeyError, IndexError):
            pass
    healthy, why, state = assess(jobs, detail, restarts, previous, name)
    if state is not None:
        state_file.write_text(json.dumps(state))
    return healthy, why


def default_state_file(address: str) -> Path:
    return Path(tempfile.gettempdir()) / f"churnstream-job-health-{address.replace(':', '-')}.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flink_jobs.health", description=__doc__.splitlines()[0])
    p.add_argument("jobmanager", metavar="HOST:PORT", help="the JobManager's REST address")
    p.add_argument("--state", type=Path, help="where the previous probe's restart count is kept "
                                               "(default: one file per address in the temp folder)")
    args = p.parse_args(argv)
    # The container's environment says which topics its job reads (no other setting is needed).
    name = job_name(Settings.from_env().topic_prefix)
    state = args.state or default_state_file(f"{args.jobmanager}-{name}")
    healthy, why = probe(args.jobmanager, state, name)
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

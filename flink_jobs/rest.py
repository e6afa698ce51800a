"""The few calls of a Flink JobManager's REST API the product needs (standard library only).

Used by `churnstream job --detach` (wait until the submitted job runs), the compose `job`
healthcheck (flink_jobs/health.py) and the session-cluster test.
"""

from __future__ import annotations

import json
import time
import urllib.request

# The job's name on a cluster (pipeline.name): how the health probe tells our job from others.
JOB_NAME = "churnstream-pipeline"
ENDED = ("FAILED", "CANCELED", "FINISHED")


class FlinkRest:
    def __init__(self, address: str, timeout: float = 5.0):
        host, _, port = address.partition(":")
        self.base = f"http://{host}:{port or '8081'}"
        self.timeout = timeout

    def _call(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def jobs(self) -> list[dict]:
        """Every job the cluster knows: jid, name, state, start-time ..."""
        return self._call("/jobs/overview")["jobs"]

    def running(self, name: str) -> str | None:
        """The id of a job of that name that has not ended (the newest), if any."""
        alive = [j for j in self.jobs() if j.get("name") == name and j.get("state") not in ENDED]
        return max(alive, key=lambda j: j.get("start-time", 0))["jid"] if alive else None

    def job(self, jid: str) -> dict:
        """One job with its vertices (each with a status)."""
        return self._call(f"/jobs/{jid}")

    def num_restarts(self, jid: str) -> int:
        """How often the job restarted since it was submitted (the job metric numRestarts)."""
        metrics = self._call(f"/jobs/{jid}/metrics?get=numRestarts")
        return int(float(metrics[0]["value"])) if metrics else 0

    def last_failure(self, jid: str) -> str | None:
        """The first line of the job's latest failure, if it has failed since it was submitted."""
        root = (self._call(f"/jobs/{jid}/exceptions?maxExceptions=1") or {}).get("root-exception")
        return root.strip().splitlines()[0] if root else None

    def cancel(self, jid: str) -> None:
        self._call(f"/jobs/{jid}?mode=cancel", method="PATCH")

    def wait_running(self, jid: str, timeout: float = 120.0) -> dict:
        """Until the job and every one of its tasks run; raises RuntimeError if it ends or times out."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.job(jid)
            if detail["state"] in ENDED:
                raise RuntimeError(f"the job {jid} is {detail['state']} on {self.base}")
            if detail["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in detail["vertices"]):
                return detail
            if time.monotonic() > deadline:
                failure = self.last_failure(jid)
                raise RuntimeError(f"the job {jid} was not running after {timeout:.0f} s "
                                   f"(job {detail['state']}, tasks {task_states(detail)}"
                                   + (f"; last failure: {failure}" if failure else "") + ")")
            time.sleep(0.5)


def task_states(detail: dict) -> str:
    counts: dict[str, int] = {}
    for v in detail.get("vertices", []):
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"

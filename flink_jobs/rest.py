"""The few calls of a Flink JobManager's REST API the product needs (urllib: no client library).

Used by `churnstream job --detach` (wait until the submitted job runs), the compose `job`
healthcheck (flink_jobs/health.py) and the session-cluster test.
"""

from __future__ import annotations

import json
import time
import urllib.request

from foundation.settings import prefix_tag

# The job's name on a cluster (pipeline.name): how the health probe, `job` (idempotent on a
# cluster) and `job --stop` tell our job from others. Jobs on other topics (the compose Avro job on
# the avro- topics) share the cluster under their own name: job_name().
JOB_NAME = "churnstream-pipeline"


def job_name(topic_prefix: str = "") -> str:
    """churnstream-pipeline, or churnstream-pipeline-<prefix> for the topics under that prefix."""
    tag = prefix_tag(topic_prefix)
    return f"{JOB_NAME}-{tag}" if tag else JOB_NAME
ENDED = ("FAILED", "CANCELED", "FINISHED")


class FlinkRest:
    def __init__(self, address: str, timeout: float = 5.0):
        host, _, port = address.partition(":")
        self.base = f"http://{host}:{port or '8081'}"
        self.timeout = timeout

    def _call(self, path: str, method: str = "GET", body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
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
        """How often the job failed and restarted since it was submitted: its numRestarts metric, or
        the entries of its exception history if more (Flink 2.3's metric read 0 on a job that had
        restarted twice after a TaskManager was lost; the history keeps the last 16 by default)."""
        metrics = self._call(f"/jobs/{jid}/metrics?get=numRestarts")
        metric = int(float(metrics[0]["value"])) if metrics else 0
        history = (self._call(f"/jobs/{jid}/exceptions?maxExceptions=1000") or {}).get("exceptionHistory") or {}
        return max(metric, len(history.get("entries") or []))

    def last_failure(self, jid: str) -> str | None:
        """The first line of the job's latest failure, if it has failed since it was submitted."""
        root = (self._call(f"/jobs/{jid}/exceptions?maxExceptions=1") or {}).get("root-exception")
        return root.strip().splitlines()[0] if root else None

    def cancel(self, jid: str) -> None:
        self._call(f"/jobs/{jid}?mode=cancel", method="PATCH")

    def checkpoints(self, jid: str) -> dict:
        """The job's checkpoint statistics (counts, latest completed: duration and sizes)."""
        return self._call(f"/jobs/{jid}/checkpoints")

    def trigger_stop(self, jid: str, target_dir: str | None = None) -> str:
        """Ask the job to stop with a savepoint (no drain: windows stay open in the savepoint, to be
        continued by the resumed job); returns the request id for savepoint_location(). ``target_dir``:
        a URI the cluster can write, or None for the cluster's execution.checkpointing.savepoint-dir."""
        body = {"drain": False, "formatType": "CANONICAL"}
        if target_dir:
            body["targetDirectory"] = target_dir
        return self._call(f"/jobs/{jid}/stop", method="POST", body=body)["request-id"]

    def savepoint_location(self, jid: str, request_id: str, timeout: float = 300.0) -> str:
        """Until the savepoint of that request is complete; its location. RuntimeError when it failed
        (the job then keeps running) or takes longer than ``timeout``; OSError when the REST endpoint
        goes away meanwhile (a local mini-cluster shuts down as soon as its job has stopped)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self._call(f"/jobs/{jid}/savepoints/{request_id}")
            if status["status"]["id"] == "COMPLETED":
                op = status.get("operation") or {}
                if "location" in op:
                    return op["location"]
                cause = (op.get("failure-cause") or {}).get("stack-trace", "unknown cause")
                raise RuntimeError(f"the savepoint failed: {cause.strip().splitlines()[0]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no savepoint after {timeout:.0f} s")
            time.sleep(0.5)

    def watermarks(self, jid: str, vertex_name_part: str) -> list[int]:
        """The current input watermark (epoch ms) of each subtask of the first vertex whose name
        contains ``vertex_name_part``."""
        for v in self.job(jid)["vertices"]:
            if vertex_name_part in v["name"]:
                marks = self._call(f"/jobs/{jid}/vertices/{v['id']}/watermarks")
                return [int(float(m["value"])) for m in marks]
        raise KeyError(f"no vertex of job {jid} has {vertex_name_part!r} in its name")

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

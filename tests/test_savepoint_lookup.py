"""Finding the savepoint a local job left when its mini-cluster shut down before `job --stop` read
the savepoint's status (pure file logic on literal folders)."""

from __future__ import annotations

import os
import time

from flink_jobs.pipeline import _savepoint_left_by

JID = "bfd8e6363ddd76d043c8e48a208aefb3"


def _savepoint(root, name: str, mtime: float | None = None, complete: bool = True):
    d = root / name
    d.mkdir()
    if complete:
        (d / "_metadata").write_bytes(b"x")
        if mtime is not None:
            os.utime(d / "_metadata", (mtime, mtime))
    return d


def test_the_newest_complete_savepoint_of_that_job_written_since_the_stop(tmp_path):
    asked = time.time()
    _savepoint(tmp_path, "savepoint-bfd8e6-000000000001", mtime=asked - 3600)       # an older stop
    _savepoint(tmp_path, "savepoint-aaaaaa-000000000002")                           # another job
    _savepoint(tmp_path, "savepoint-bfd8e6-000000000003", complete=False)           # no _metadata
    new = _savepoint(tmp_path, "savepoint-bfd8e6-000000000004")
    assert _savepoint_left_by(tmp_path, JID, asked, wait_s=0) == new.as_uri()


def test_none_when_the_job_left_no_savepoint(tmp_path):
    _savepoint(tmp_path, "savepoint-bfd8e6-000000000001", mtime=time.time() - 3600)
    assert _savepoint_left_by(tmp_path, JID, time.time(), wait_s=0) is None
    assert _savepoint_left_by(tmp_path / "missing", JID, time.time(), wait_s=0) is None

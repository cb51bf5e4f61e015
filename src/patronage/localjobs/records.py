"""Run records: ``<state_dir>/runs/<run_id>.json``, the latest pointer and the lock.

A record keeps what a repair needs: the resolved parameters, the start time
and each task's outcome. Writes are atomic (temp file + rename); one run at a
time per state directory, like a job with ``max_concurrent_runs: 1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from patronage.localjobs.dag import FAILED, RUNNING, SUCCESS
from patronage.localjobs.errors import JobsError


def runs_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir).resolve() / "runs"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save_record(
    state_dir: str | os.PathLike[str], record: dict[str, Any], latest: bool = True
) -> Path:
    d = runs_dir(state_dir)
    path = d / f"{record['run_id']}.json"
    _write_json(path, record)
    if latest:
        tmp = d / "latest.tmp"
        tmp.write_text(f"{record['run_id']}\n", encoding="utf-8")
        os.replace(tmp, d / "latest")
    return path


def latest_run_id(state_dir: str | os.PathLike[str]) -> str:
    pointer = runs_dir(state_dir) / "latest"
    if not pointer.is_file():
        raise JobsError(f"no local run recorded under {runs_dir(state_dir)}; start a run first")
    return pointer.read_text(encoding="utf-8").strip()


def load_record(
    state_dir: str | os.PathLike[str], run_id: str | int | None = None
) -> dict[str, Any]:
    """The record of ``run_id`` (or the latest run; ``"latest"`` works too)."""
    rid = latest_run_id(state_dir) if run_id in (None, "", "latest") else str(run_id)
    path = runs_dir(state_dir) / f"{rid}.json"
    if not path.is_file():
        raise JobsError(f"no record of run {rid} under {runs_dir(state_dir)}")
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def new_run_id(state_dir: str | os.PathLike[str]) -> int:
    """A unique integer like a Databricks run id (milliseconds since the epoch)."""
    rid = int(time.time() * 1000)
    d = runs_dir(state_dir)
    while (d / f"{rid}.json").exists():
        rid += 1
    return rid


#: What a task left RUNNING by a process that is gone is recorded as.
ABANDONED_ERROR = "the process running the task ended without recording an outcome (killed?)"


def settle_abandoned(record: dict[str, Any]) -> list[str]:
    """Mark what a dead process left RUNNING as FAILED, as Databricks fails a lost driver's task.

    Call it only under :func:`state_lock`: while the lock is free, no live run
    can own a RUNNING entry. Returns the task keys it failed.
    """
    settled = []
    for key, entry in (record.get("tasks") or {}).items():
        if entry.get("status") == RUNNING:
            entry.update(status=FAILED, error=ABANDONED_ERROR)
            settled.append(key)
    if record.get("status") == RUNNING:
        record["status"] = FAILED
    return settled


@contextlib.contextmanager
def state_lock(state_dir: str | os.PathLike[str]) -> Iterator[None]:
    """One run at a time per state directory (the job has max_concurrent_runs: 1)."""
    d = runs_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(d / "lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JobsError(
                f"another run is in progress in {Path(state_dir).resolve()} (max_concurrent_runs 1)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclasses.dataclass
class RunResult:
    run_id: int | str
    status: str
    record: dict[str, Any]
    values: dict[str, dict[str, Any]]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == SUCCESS else 1

    def summary(self) -> dict[str, Any]:
        """The ``--summary-json`` document."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "tasks": {
                key: {"status": t["status"], "values": self.values.get(key, {})}
                for key, t in self.record["tasks"].items()
            },
        }

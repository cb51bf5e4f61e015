"""The deployed job, seen through the workspace: find it, read its runs, repair one, check it.

The bundle YAML (read by :mod:`patronage.localjobs`) says what a target
should have deployed; :class:`patronage.workspace.Workspace` says what the
workspace has. The choices are the local runner's: a repair re-runs the failed
(canceled, timed-out, upstream-failed) tasks and everything downstream of them,
on the run's latest repair.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from patronage.checks import Check, CheckStatus
from patronage.localjobs.bundle import DEFAULT_TARGET, Bundle
from patronage.localjobs.dag import downstream, job_tasks, topological_order
from patronage.workspace import EXISTS, MISSING, Workspace, WorkspaceError

#: Task result states a repair re-runs (with everything downstream).
REPAIRABLE = frozenset(
    {"FAILED", "TIMEDOUT", "CANCELED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED",
     "MAXIMUM_CONCURRENT_RUNS_REACHED", "INTERNAL_ERROR"}
)  # fmt: skip
_ENDED = frozenset({"TERMINATED", "INTERNAL_ERROR", "SKIPPED"})

PASS, FAIL, SKIP = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.SKIP


def is_workspace_target(target: str) -> bool:
    """Every target but the local runner's is deployed to a workspace."""
    return target != DEFAULT_TARGET


def short_user_name(user_name: str) -> str:
    """The CLI's ``workspace.current_user.short_name``: the local part, normalized."""
    local = "".join(c if c.isalnum() else "_" for c in user_name.split("@", 1)[0].lower())
    return re.sub(r"_+", "_", local).strip("_")


def deployed_job_name(bundle: Bundle, job_key: str, user_name: str) -> str:
    """The job's name as the CLI deploys it: prefixed per developer in development mode."""
    name = str(bundle.job(job_key).get("name") or job_key)
    prefix = (bundle.target_setting("presets") or {}).get("name_prefix")
    if prefix is None and bundle.target_setting("mode") == "development":
        prefix = f"[dev {short_user_name(user_name)}] "
    return f"{prefix or ''}{name}"


def find_job(ws: Workspace, bundle: Bundle, job_key: str) -> dict[str, Any]:
    name = deployed_job_name(bundle, job_key, ws.current_user())
    found = ws.jobs_named(name)
    if not found:
        raise WorkspaceError(
            f"no job named '{name}' in the workspace: deploy it with "
            f"`databricks bundle deploy -t {bundle.target}`"
        )
    if len(found) > 1:
        ids = ", ".join(str(j["job_id"]) for j in found)
        raise WorkspaceError(f"{len(found)} jobs are named '{name}' (ids {ids}); expected one")
    return found[0]


# --------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------


def task_state(task: Mapping[str, Any]) -> str:
    state = task.get("state") or {}
    return str(state.get("result_state") or state.get("life_cycle_state") or "PENDING")


def run_state(run: Mapping[str, Any]) -> str:
    return task_state(run)


def latest_repair_id(run: Mapping[str, Any]) -> int | None:
    ids = [int(i["id"]) for i in run.get("repair_history") or [] if i.get("type") == "REPAIR"]
    return ids[-1] if ids else None


def tasks_to_repair(job_settings: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """The run's repairable tasks and every task after them, in dependency order."""
    tasks = job_tasks(job_settings)
    states = {t["task_key"]: task_state(t) for t in run.get("tasks") or []}
    bad = {key for key, state in states.items() if state in REPAIRABLE}
    rerun = downstream(tasks, bad) & set(states)
    return [t.key for t in topological_order(tasks) if t.key in rerun]


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """A workspace run as status and repair print it."""
    start, end = run.get("start_time"), run.get("end_time")
    return {
        "run_id": run.get("run_id"),
        "state": run_state(run),
        "started_utc": (
            dt.datetime.fromtimestamp(start / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            if start else None
        ),
        "duration_seconds": round((end - start) / 1000, 1) if start and end else None,
        "repairs": sum(1 for i in run.get("repair_history") or [] if i.get("type") == "REPAIR"),
        "tasks": {
            t["task_key"]: {"state": task_state(t), "attempt": int(t.get("attempt_number") or 0)}
            for t in run.get("tasks") or []
        },
    }


def workspace_status(ws: Workspace, bundle: Bundle, job_key: str, runs: int) -> dict[str, Any]:
    job = find_job(ws, bundle, job_key)
    schedule = (job.get("settings") or {}).get("schedule") or {}
    return {
        "job_name": (job.get("settings") or {}).get("name"),
        "job_id": job["job_id"],
        "schedule_pause_status": schedule.get("pause_status"),
        "runs": [run_summary(r) for r in ws.recent_runs(int(job["job_id"]), runs)],
    }


@dataclasses.dataclass
class Repair:
    run_id: int
    tasks: list[str]
    repair_id: int | None = None
    after: dict[str, Any] | None = None


def repair(
    ws: Workspace, bundle: Bundle, job_key: str, run_id: int | None, timeout: dt.timedelta
) -> Repair:
    """Repair ``run_id`` (default: the job's latest run) and wait for its outcome."""
    job = find_job(ws, bundle, job_key)
    if run_id is None:
        latest = ws.recent_runs(int(job["job_id"]), 1)
        if not latest:
            raise WorkspaceError(f"job '{job['settings']['name']}' has no run to repair")
        run_id = int(latest[0]["run_id"])
    run = ws.get_run(run_id)
    if run.get("job_id") != job["job_id"]:
        raise WorkspaceError(f"run {run_id} is not a run of job {job['job_id']}")
    life = (run.get("state") or {}).get("life_cycle_state")
    if life not in _ENDED:
        raise WorkspaceError(f"run {run_id} is {life}; repair it once it has ended")
    plan = Repair(run_id, tasks_to_repair(job["settings"], run))
    if plan.tasks:
        plan.repair_id, plan.after = ws.repair(run_id, plan.tasks, latest_repair_id(run), timeout)
    else:
        plan.after = run
    return plan


# --------------------------------------------------------------------------
# Preflight
# --------------------------------------------------------------------------



#: Inputs that must exist (directory, or file for the seed) and outputs created on first write.
INPUT_DIRS = ("inbound_scd_dir", "inbound_cg_dir", "mvi_psa_dir", "mvi_person_dir",
              "mvi_institution_dir")  # fmt: skip
INPUT_FILES = ("cg_seed_file",)
OUTPUT_DIRS = ("export_dir", "backup_dir")


def _job_checks(job: Mapping[str, Any], bundle: Bundle) -> list[Check]:
    settings = job.get("settings") or {}
    expected = str(bundle.variables.get("schedule_pause_status") or "PAUSED")
    found = (settings.get("schedule") or {}).get("pause_status")
    checks = [
        Check("job", PASS, f"deployed as '{settings.get('name')}' (job id {job['job_id']})"),
        Check("schedule", PASS if found == expected else FAIL,
              f"pause status {found}, the target's is {expected}"),
    ]  # fmt: skip
    run_as = bundle.target_setting("run_as") or {}
    runs_as = job.get("run_as_user_name")
    want = run_as.get("service_principal_name") or run_as.get("user_name")
    if want:
        ok = runs_as == want and (settings.get("run_as") or {}) == run_as
        detail = f"runs as {runs_as}; the target's run_as is {want}"
    else:
        want = job.get("creator_user_name")
        ok = runs_as == want
        detail = f"runs as {runs_as}; the target runs as its deployer ({want})"
    checks.append(Check("run as", PASS if ok else FAIL, detail))
    return checks


def _volume_of(path: str) -> str | None:
    parts = path.split("/")
    return ".".join(parts[2:5]) if len(parts) >= 5 and path.startswith("/Volumes/") else None


def _location_check(ws: Workspace, setting: str, path: str) -> Check:
    name = f"{setting} {path}"
    if not path.startswith(("/Volumes/", "/Workspace/", "/Users/", "/Shared/", "dbfs:/", "/dbfs/")):
        return Check(name, SKIP, "not a workspace path (an external location or table URL): "
                     "the job's compute reaches it, the workspace APIs do not")  # fmt: skip
    state, how = ws.path_state(path, is_file=setting in INPUT_FILES)
    if state == EXISTS:
        return Check(name, PASS, f"exists ({how})")
    if state != MISSING:
        return Check(name, SKIP, f"cannot be checked here: {how}")
    if setting in OUTPUT_DIRS:
        volume = _volume_of(path)
        if volume and ws.volume_exists(volume):
            return Check(name, PASS, f"absent; volume {volume} exists, created on first write")
        parent = path.rstrip("/").rsplit("/", 1)[0]
        if not volume and parent.count("/") >= 3 and ws.path_state(parent)[0] == EXISTS:
            return Check(name, PASS, f"absent; {parent} exists, created on first write")
    return Check(name, FAIL, f"does not exist ({how})")


def preflight_checks(ws: Workspace, bundle: Bundle, job_key: str) -> list[Check]:
    """The workspace's side of runbook section 1; one check failing never hides the others."""
    try:
        job = find_job(ws, bundle, job_key)
    except WorkspaceError as exc:
        checks = [Check("job", FAIL, str(exc))]
    else:
        checks = _job_checks(job, bundle)
    for setting in (*INPUT_DIRS, *INPUT_FILES, *OUTPUT_DIRS):
        path = str(bundle.variables.get(setting) or "")
        try:
            checks.append(_location_check(ws, setting, path))
        except WorkspaceError as exc:
            checks.append(Check(f"{setting} {path}", FAIL, str(exc)))
    return checks

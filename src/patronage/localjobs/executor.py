"""Executing a job run locally: tasks in order, ``run_if``, records, task-level repair.

Product-agnostic: what the product must supply comes in as :class:`Hooks`:
preparing the session before the first task (a Spark session, fixture
landing), resolving a wheel entry point, and reading the task values the run
published. Each ``python_wheel_task`` runs in-process through its console
script with the very ``--name=value`` list the wheel gets on Databricks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import importlib.metadata
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from patronage.localjobs.bundle import Bundle, load_bundle
from patronage.localjobs.dag import (
    CANCELED,
    EXCLUDED,
    FAILED,
    NOT_RUN,
    REPAIRABLE_STATES,
    RUNNING,
    SUCCESS,
    TaskDef,
    downstream,
    job_status,
    job_tasks,
    run_if_verdict,
    topological_order,
)
from patronage.localjobs.errors import JobsError
from patronage.localjobs.records import (
    RunResult,
    load_record,
    new_run_id,
    save_record,
    settle_abandoned,
    state_lock,
)
from patronage.localjobs.references import (
    RunContext,
    ValuesGetter,
    job_parameters,
    resolve_parameter_defaults,
    task_argv,
)

log = logging.getLogger(__name__)


class Hooks(Protocol):
    """What the product supplies to the runner."""

    def prepare(self, bundle: Bundle, state_dir: Path, *, repair: bool) -> None:
        """Before the first task of a run (``repair`` false) or a repair: start the session,
        land inputs."""

    def entry_point(self, package_name: str | None, name: str) -> Callable[..., Any]:
        """The callable behind a wheel task's ``entry_point``."""

    def values_getter(
        self, bundle: Bundle, tasks: Sequence[TaskDef], task: TaskDef, run_id: int | str
    ) -> ValuesGetter:
        """Resolves ``{{tasks.X.values.Y}}`` for ``task``."""

    def read_values(
        self, bundle: Bundle, tasks: Sequence[TaskDef], run_id: int | str
    ) -> dict[str, dict[str, Any]]:
        """Every task's published values for the run."""


def load_entry_point(package_name: str | None, name: str) -> Callable[..., Any]:
    """The console-script ``name`` from the installed package's metadata."""
    matches = list(importlib.metadata.entry_points(group="console_scripts").select(name=name))
    if package_name:
        own = [
            ep
            for ep in matches
            if ep.dist is not None
            and ep.dist.name.replace("-", "_").lower() == package_name.replace("-", "_").lower()
        ]
        matches = own or matches
    if not matches:
        raise JobsError(
            f"entry point '{name}' is not declared by package '{package_name}' "
            "(is the package installed? pip install -e .)"
        )
    loaded: Callable[..., Any] = matches[0].load()
    return loaded


def call_entry_point(fn: Callable[..., Any], argv: list[str]) -> None:
    """Call ``main(argv)``; a ``SystemExit`` other than 0 is a failure."""
    try:
        params: Mapping[str, Any] = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    try:
        if params:
            fn(argv)
        else:  # a plain console-script main() reads sys.argv
            saved = sys.argv
            sys.argv = [getattr(fn, "__name__", "task"), *argv]
            try:
                fn()
            finally:
                sys.argv = saved
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"entry point exited with status {exc.code}") from None


def _first_line(text: str, limit: int = 300) -> str:
    return ((text or "").strip().splitlines() or [""])[0][:limit]


def _run_task(
    hooks: Hooks, bundle: Bundle, tasks: list[TaskDef], task: TaskDef, ctx: RunContext
) -> dict[str, Any]:
    """Run one task's entry point; its record entry (a KeyboardInterrupt propagates)."""
    entry: dict[str, Any] = {"status": NOT_RUN, "duration_seconds": 0.0, "error": None}
    entry["start_time"] = dt.datetime.now(dt.UTC).isoformat()
    started = time.monotonic()
    try:
        argv = task_argv(task, ctx, hooks.values_getter(bundle, tasks, task, ctx.run_id))
        wheel = task.wheel_task or {}
        fn = hooks.entry_point(wheel.get("package_name"), str(wheel.get("entry_point")))
        log.info("task %s starting (entry point %s)", task.key, wheel.get("entry_point"))
        call_entry_point(fn, argv)
        entry["status"] = SUCCESS
    except KeyboardInterrupt:
        entry.update(status=CANCELED, error="KeyboardInterrupt")
        raise
    except Exception as exc:
        entry["status"] = FAILED
        message = str(exc).strip()
        entry["error"] = f"{type(exc).__name__}: {_first_line(message)}"
        # Task messages name files, rows and rules, never record contents.
        log.error("task %s failed: %s: %s", task.key, type(exc).__name__, message[:2000])
        log.debug("task %s traceback", task.key, exc_info=True)
    finally:
        entry["duration_seconds"] = round(time.monotonic() - started, 3)
    return entry


@dataclasses.dataclass
class _Run:
    """One run (or repair) being executed: what every step of it needs."""

    hooks: Hooks
    bundle: Bundle
    tasks: list[TaskDef]
    record: dict[str, Any]
    ctx: RunContext
    state_dir: Path
    on_task: Callable[[str, dict[str, Any]], None] | None

    def execute(self, to_run: set[str], ignore_run_if: bool = False) -> None:
        """Run ``to_run`` in dependency order; other tasks keep their recorded state."""
        record = self.record
        order = topological_order(self.tasks)
        states = {k: v["status"] for k, v in record["tasks"].items()}
        for t in order:
            states.setdefault(t.key, NOT_RUN)
            record["tasks"].setdefault(t.key, {"status": NOT_RUN})
        self.ctx.states = states
        for task in order:
            if task.key not in to_run:
                continue
            verdict = None
            if not ignore_run_if:
                verdict = run_if_verdict(task.run_if, [states[d] for d in task.depends_on])
            if verdict is not None:
                entry: dict[str, Any] = {"status": verdict, "duration_seconds": 0.0, "error": None}
                log.info("task %s not run: %s (run_if %s)", task.key, verdict, task.run_if)
            else:
                # On disk before it starts: a process that dies mid-task leaves
                # it RUNNING, which a repair settles as FAILED.
                record["tasks"][task.key] = {
                    "status": RUNNING,
                    "start_time": dt.datetime.now(dt.UTC).isoformat(),
                }
                record["status"] = RUNNING
                save_record(self.state_dir, record)
                try:
                    entry = _run_task(self.hooks, self.bundle, self.tasks, task, self.ctx)
                except KeyboardInterrupt:
                    record["tasks"][task.key] = {
                        "status": CANCELED, "error": "KeyboardInterrupt", "duration_seconds": 0.0
                    }  # fmt: skip
                    states[task.key] = CANCELED
                    raise
            record["tasks"][task.key] = entry
            states[task.key] = entry["status"]
            record["status"] = RUNNING
            save_record(self.state_dir, record)
            if self.on_task:
                self.on_task(task.key, entry)
        record["status"] = job_status(self.tasks, states)

    def finish(self) -> RunResult:
        record = self.record
        record["end_time"] = dt.datetime.now(dt.UTC).isoformat()
        save_record(self.state_dir, record)
        try:
            values = self.hooks.read_values(self.bundle, self.tasks, record["run_id"])
        except Exception as exc:  # the summary must not hide the run's own outcome
            log.warning("could not read task values: %s", type(exc).__name__)
            values = {}
        return RunResult(record["run_id"], record["status"], record, values)

    def execute_and_finish(
        self, to_run: set[str], only: Sequence[str] | None = None
    ) -> RunResult:
        try:
            self.execute(to_run, ignore_run_if=bool(only))
        except KeyboardInterrupt:
            self.record["status"] = CANCELED
            self.finish()
            raise
        if only:
            # A task run alone: the job's status reflects the tasks that have run.
            ran = [v["status"] for v in self.record["tasks"].values() if v["status"] != NOT_RUN]
            ok = all(s in (SUCCESS, EXCLUDED) for s in ran)
            self.record["status"] = SUCCESS if ok else FAILED
        return self.finish()


def _exclusive(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> RunResult:
        with state_lock(kwargs["state_dir"]):
            return fn(**kwargs)

    return wrapper


def _context(record: dict[str, Any], jobdef: Mapping[str, Any], repair_count: int) -> RunContext:
    """The facts of a recorded run: same id, parameters and start time."""
    return RunContext(
        record["run_id"],
        record["job"],
        str(jobdef.get("name") or record["job"]),
        dt.datetime.fromisoformat(record["start_time"]),
        dict(record["parameters"]),
        repair_count,
    )


@_exclusive
def run_job(
    *,
    hooks: Hooks,
    job: str,
    state_dir: str | os.PathLike[str],
    target: str | None = None,
    variables: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    run_date: str | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
    run_id: int | str | None = None,
    on_task: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run the job as defined in the bundle; returns the outcome (exit code via ``.exit_code``).

    ``only`` restricts the run to those tasks (one task run alone);
    ``run_id`` joins an existing run's id (its record supplies parameters).
    """
    state = Path(state_dir).resolve()
    existing: dict[str, Any] | None = None
    if run_id is not None:
        try:
            existing = load_record(state, run_id)
        except JobsError:
            existing = None
    if existing is not None:
        bundle = load_bundle(
            bundle_dir or existing.get("bundle_dir"),
            existing["target"],
            existing.get("variable_overrides") or {},
            state,
        )
        job = existing["job"]
    else:
        bundle = load_bundle(bundle_dir, target or "local", variables, state)
    jobdef = bundle.job(job)
    tasks = job_tasks(jobdef)
    keys = {t.key for t in tasks}
    for k in only or ():
        if k not in keys:
            raise JobsError(f"job '{job}' has no task '{k}'; tasks: {', '.join(sorted(keys))}")

    if existing is not None:
        record = existing
        ctx = _context(record, jobdef, int(record.get("repair_count", 0)))
    else:
        rid = run_id if run_id is not None else new_run_id(state)
        start = dt.datetime.now(dt.UTC)
        raw_params = job_parameters(jobdef, params, run_date)
        ctx = RunContext(rid, job, str(jobdef.get("name") or job), start, raw_params)
        ctx.parameters = resolve_parameter_defaults(raw_params, ctx)
        record = {
            "run_id": rid,
            "job": job,
            "job_name": ctx.job_name,
            "target": bundle.target,
            "bundle_dir": str(bundle.root),
            "state_dir": str(state),
            "variable_overrides": dict(variables or {}),
            "variables": bundle.variables,
            "parameters": ctx.parameters,
            "start_time": start.isoformat(),
            "status": RUNNING,
            "repair_count": 0,
            "repairs": [],
            "tasks": {},
        }
    log.info("run %s of job %s (target %s) starting", ctx.run_id, job, bundle.target)
    # Inputs the product refuses leave no run behind.
    hooks.prepare(bundle, state, repair=False)
    save_record(state, record)
    to_run = set(only) if only else keys
    run = _Run(hooks, bundle, tasks, record, ctx, state, on_task)
    return run.execute_and_finish(to_run, only)


@_exclusive
def repair(
    *,
    hooks: Hooks,
    state_dir: str | os.PathLike[str],
    run_id: int | str | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    on_task: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Task-level repair: re-run failed tasks and all downstream, same run id and parameters."""
    state = Path(state_dir).resolve()
    record = load_record(state, run_id)
    abandoned = settle_abandoned(record)
    if abandoned:
        log.warning(
            "run %s: %s left RUNNING by a process that ended; counted as FAILED",
            record["run_id"], ", ".join(abandoned),
        )  # fmt: skip
        save_record(state, record)
    bundle = load_bundle(
        bundle_dir or record.get("bundle_dir"),
        record["target"],
        record.get("variable_overrides") or {},
        state,
    )
    jobdef = bundle.job(record["job"])
    tasks = job_tasks(jobdef)
    keys = {t.key for t in tasks}
    to_fix = {
        k for k in keys if record["tasks"].get(k, {}).get("status", NOT_RUN) in REPAIRABLE_STATES
    }
    rerun = downstream(tasks, to_fix)
    repair_count = int(record.get("repair_count", 0)) + 1
    ctx = _context(record, jobdef, repair_count)
    hooks.prepare(bundle, state, repair=True)
    if not rerun:
        log.info("run %s has no failed task; nothing to repair", record["run_id"])
        values = hooks.read_values(bundle, tasks, record["run_id"])
        return RunResult(record["run_id"], record["status"], record, values)
    record["repair_count"] = repair_count
    record.setdefault("repairs", []).append(
        {
            "repair_count": repair_count,
            "start_time": dt.datetime.now(dt.UTC).isoformat(),
            "tasks": [t.key for t in topological_order(tasks) if t.key in rerun],
        }
    )
    log.info("repairing run %s: re-running %s", record["run_id"], ", ".join(sorted(rerun)))
    return _Run(hooks, bundle, tasks, record, ctx, state, on_task).execute_and_finish(rerun)


def parse_assignments(items: Iterable[str] | None, what: str) -> dict[str, str]:
    """``NAME=VALUE`` strings (from --var / --param) into a dict."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise JobsError(f"{what} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out

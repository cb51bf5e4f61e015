"""The job as a DAG: tasks, dependency order, ``run_if`` and the job's result state.

State names and rules are Databricks': excluded dependencies count as
succeeded, a job whose only failures are non-leaf tasks ends
SUCCESS_WITH_FAILURES.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from patronage.localjobs.errors import JobsError

# Task result states (Databricks names).
SUCCESS = "SUCCESS"
FAILED = "FAILED"
UPSTREAM_FAILED = "UPSTREAM_FAILED"
EXCLUDED = "EXCLUDED"
CANCELED = "CANCELED"
NOT_RUN = "NOT_RUN"  # local only: not reached yet (run interrupted, or a task-only record)
#: Job result states.
SUCCESS_WITH_FAILURES = "SUCCESS_WITH_FAILURES"
RUNNING = "RUNNING"

_FAILED_STATES = frozenset({FAILED, UPSTREAM_FAILED, CANCELED})
#: What a task-level repair re-runs (plus everything downstream of these).
REPAIRABLE_STATES = frozenset({FAILED, UPSTREAM_FAILED, CANCELED, NOT_RUN})

RUN_IF_VALUES = (
    "ALL_SUCCESS",
    "AT_LEAST_ONE_SUCCESS",
    "NONE_FAILED",
    "ALL_DONE",
    "AT_LEAST_ONE_FAILED",
    "ALL_FAILED",
)


@dataclasses.dataclass(frozen=True)
class TaskDef:
    key: str
    depends_on: tuple[str, ...]
    run_if: str
    raw: dict[str, Any]

    @property
    def wheel_task(self) -> dict[str, Any] | None:
        return self.raw.get("python_wheel_task")


def job_tasks(job: Mapping[str, Any]) -> list[TaskDef]:
    """The job's tasks in YAML order, checked (keys unique, deps known, run_if valid)."""
    tasks: list[TaskDef] = []
    seen: set[str] = set()
    for raw in job.get("tasks") or []:
        key = raw.get("task_key")
        if not key:
            raise JobsError("a task has no task_key")
        if key in seen:
            raise JobsError(f"task_key '{key}' is used twice")
        seen.add(key)
        deps = tuple(d["task_key"] for d in raw.get("depends_on") or [])
        run_if = str(raw.get("run_if") or "ALL_SUCCESS").upper()
        if run_if not in RUN_IF_VALUES:
            raise JobsError(f"task '{key}': run_if {run_if!r} is not one of {RUN_IF_VALUES}")
        tasks.append(TaskDef(key, deps, run_if, dict(raw)))
    for task in tasks:
        for dep in task.depends_on:
            if dep not in seen:
                raise JobsError(f"task '{task.key}' depends on unknown task '{dep}'")
    if not tasks:
        raise JobsError("the job has no tasks")
    return tasks


def topological_order(tasks: Sequence[TaskDef]) -> list[TaskDef]:
    """Dependency order; among ready tasks the one first in the YAML goes first."""
    remaining = list(tasks)
    done: set[str] = set()
    order: list[TaskDef] = []
    while remaining:
        ready = next((t for t in remaining if set(t.depends_on) <= done), None)
        if ready is None:
            raise JobsError(
                "tasks depend on each other in a cycle: " + ", ".join(t.key for t in remaining)
            )
        order.append(ready)
        done.add(ready.key)
        remaining.remove(ready)
    return order


def downstream(tasks: Sequence[TaskDef], keys: Iterable[str]) -> set[str]:
    """``keys`` and every task that depends on them, directly or not."""
    out = set(keys)
    changed = True
    while changed:
        changed = False
        for t in tasks:
            if t.key not in out and out.intersection(t.depends_on):
                out.add(t.key)
                changed = True
    return out


def upstream(tasks: Sequence[TaskDef], key: str) -> set[str]:
    """Every task ``key`` depends on, directly or not."""
    by_key = {t.key: t for t in tasks}
    out: set[str] = set()
    todo = list(by_key[key].depends_on)
    while todo:
        k = todo.pop()
        if k not in out:
            out.add(k)
            todo.extend(by_key[k].depends_on)
    return out


def run_if_verdict(run_if: str, dep_states: Sequence[str]) -> str | None:
    """None when the task runs, else the state it gets (Databricks' rules).

    Excluded dependencies count as succeeded; when all dependencies are
    excluded the task is excluded whatever its run_if.
    """
    if not dep_states:
        return None
    if all(s == EXCLUDED for s in dep_states):
        return EXCLUDED
    succeeded = [s in (SUCCESS, EXCLUDED) for s in dep_states]
    failed = [s in _FAILED_STATES for s in dep_states]
    if run_if == "ALL_SUCCESS":
        return None if all(succeeded) else UPSTREAM_FAILED
    if run_if == "AT_LEAST_ONE_SUCCESS":
        return None if any(succeeded) else UPSTREAM_FAILED
    if run_if == "NONE_FAILED":
        return None if not any(failed) else UPSTREAM_FAILED
    if run_if == "ALL_DONE":
        return None
    if run_if == "AT_LEAST_ONE_FAILED":
        return None if any(failed) else EXCLUDED
    if run_if == "ALL_FAILED":
        return None if all(failed) else EXCLUDED
    raise JobsError(f"unknown run_if {run_if!r}")


def job_status(tasks: Sequence[TaskDef], states: Mapping[str, str]) -> str:
    """SUCCESS, SUCCESS_WITH_FAILURES (only non-leaf tasks failed) or FAILED."""
    bad = {k for k, s in states.items() if s in _FAILED_STATES or s == NOT_RUN}
    if not bad:
        return SUCCESS
    parents = {d for t in tasks for d in t.depends_on}
    leaves = [t.key for t in tasks if t.key not in parents]
    if any(states.get(k, NOT_RUN) in _FAILED_STATES or states.get(k) == NOT_RUN for k in leaves):
        return FAILED
    return SUCCESS_WITH_FAILURES

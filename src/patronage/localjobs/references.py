"""Dynamic value references ``{{...}}``: job facts, job parameters and task values.

A wheel task gets its ``named_parameters`` as ``--name=value`` arguments with
every reference resolved, the way Databricks resolves them at run time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from patronage.localjobs.dag import TaskDef, upstream
from patronage.localjobs.errors import JobsError

_DYNAMIC = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_KNOWN_NAMESPACES = ("job", "task", "tasks")

ValuesGetter = Callable[[str, str], Any]


@dataclasses.dataclass
class RunContext:
    """The facts of a job run that ``{{job.*}}`` references read."""

    run_id: int | str
    job_key: str
    job_name: str
    start_time: dt.datetime  # UTC, aware
    parameters: dict[str, str]
    repair_count: int = 0
    states: dict[str, str] = dataclasses.field(default_factory=dict)

    def start_values(self) -> dict[str, str]:
        st = self.start_time.astimezone(dt.UTC)
        return {
            "iso_date": st.date().isoformat(),
            "iso_datetime": st.replace(microsecond=0, tzinfo=None).isoformat(),
            "year": f"{st.year:04d}",
            "month": f"{st.month:02d}",
            "day": f"{st.day:02d}",
            "hour": f"{st.hour:02d}",
            "minute": f"{st.minute:02d}",
            "second": f"{st.second:02d}",
            "timestamp_ms": str(int(st.timestamp() * 1000)),
            "is_weekday": str(st.isoweekday() <= 5).lower(),
            "iso_weekday": str(st.isoweekday()),
        }


def format_value(value: Any) -> str:
    """A task value as it lands in a parameter string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def resolve_dynamic(
    text: str,
    ctx: RunContext,
    task_key: str | None = None,
    values: ValuesGetter | None = None,
) -> str:
    """Replace ``{{...}}`` references; unknown names in a known namespace are errors."""

    def sub(m: re.Match[str]) -> str:
        ref = m.group(1)
        parts = ref.split(".")
        ns = parts[0]
        if ns not in _KNOWN_NAMESPACES:
            return m.group(0)  # not ours: Databricks leaves it literal too
        if ns == "job":
            rest = parts[1:]
            if rest == ["run_id"]:
                return str(ctx.run_id)
            if rest == ["id"]:
                return ctx.job_key
            if rest == ["name"]:
                return ctx.job_name
            if rest == ["repair_count"]:
                return str(ctx.repair_count)
            if rest == ["trigger", "type"]:
                return "ONE_TIME"
            if len(rest) == 2 and rest[0] == "parameters":
                if rest[1] not in ctx.parameters:
                    raise JobsError(f"{{{{{ref}}}}}: the job has no parameter '{rest[1]}'")
                return ctx.parameters[rest[1]]
            if len(rest) == 2 and rest[0] == "start_time":
                sv = ctx.start_values()
                if rest[1] in sv:
                    return sv[rest[1]]
        elif ns == "task":
            if parts[1:] == ["name"] and task_key:
                return task_key
            if parts[1:] == ["run_id"]:
                return str(ctx.run_id)
            if parts[1:] == ["execution_count"]:
                return "1"
        elif ns == "tasks" and len(parts) >= 3:
            other = parts[1]
            if parts[2] == "values" and len(parts) == 4:
                if values is None:
                    raise JobsError(f"{{{{{ref}}}}}: task values are not available here")
                return format_value(values(other, parts[3]))
            if parts[2:] == ["result_state"] and len(parts) == 3:
                return ctx.states.get(other, "").lower()
        raise JobsError(f"{{{{{ref}}}}} is not a dynamic value reference the runner knows")

    return _DYNAMIC.sub(sub, text)


def job_parameters(
    job: Mapping[str, Any],
    overrides: Mapping[str, str] | None = None,
    run_date: str | None = None,
) -> dict[str, str]:
    """The job's parameters: defaults, then ``--param``, then ``--run-date`` (unresolved)."""
    params = {
        str(p["name"]): format_value(p.get("default", "")) for p in job.get("parameters") or []
    }
    for name, value in (overrides or {}).items():
        if name not in params:
            raise JobsError(
                f"--param {name}: the job has no such parameter; parameters: "
                + ", ".join(sorted(params))
            )
        params[name] = value
    if run_date is not None:
        if "run_date" not in params:
            raise JobsError("--run-date: the job has no run_date parameter")
        try:
            dt.date.fromisoformat(run_date)
        except ValueError:
            raise JobsError(f"--run-date must be YYYY-MM-DD, got {run_date!r}") from None
        params["run_date"] = run_date
    return params


def resolve_parameter_defaults(params: Mapping[str, str], ctx: RunContext) -> dict[str, str]:
    """Job parameter values may use ``{{job.*}}`` references (e.g. the start date)."""
    return {k: resolve_dynamic(v, ctx) for k, v in params.items()}


def task_argv(task: TaskDef, ctx: RunContext, values: ValuesGetter | None = None) -> list[str]:
    """What the wheel entry point gets on Databricks: ``--name=value`` per named parameter."""
    wheel = task.wheel_task
    if wheel is None:
        kinds = [k for k in task.raw if k.endswith("_task")]
        raise JobsError(
            f"task '{task.key}': only python_wheel_task runs locally (found {', '.join(kinds)})"
        )
    named = wheel.get("named_parameters")
    if named is not None:
        return [
            f"--{name}={resolve_dynamic(format_value(value), ctx, task.key, values)}"
            for name, value in named.items()
        ]
    return [
        resolve_dynamic(format_value(v), ctx, task.key, values)
        for v in wheel.get("parameters") or []
    ]


def values_getter(
    tasks: Sequence[TaskDef],
    task: TaskDef,
    run_id: int | str,
    read: Callable[[], Mapping[str, Mapping[str, Any]]],
) -> ValuesGetter:
    """``{{tasks.X.values.Y}}`` for ``task``: X must be upstream and have published Y.

    ``read`` returns every task's values of the run; it is called at most once.
    """
    ups = upstream(tasks, task.key)
    cache: Mapping[str, Mapping[str, Any]] | None = None

    def get(other: str, name: str) -> Any:
        nonlocal cache
        if other not in ups:
            raise JobsError(
                f"task '{task.key}' references {{{{tasks.{other}.values.{name}}}}} "
                f"but '{other}' is not upstream of it"
            )
        if cache is None:
            cache = read()
        published = cache.get(other, {})
        if name not in published:
            raise JobsError(
                f"task '{task.key}' references {{{{tasks.{other}.values.{name}}}}} but task "
                f"'{other}' published no value '{name}' in run {run_id}"
            )
        return published[name]

    return get

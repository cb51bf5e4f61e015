"""Run the bundle's job locally, the way Databricks Jobs would run it.

The runner reads ``databricks.yml`` and the job YAML under ``resources/``: the
DAG exists once, in the bundle. It resolves ``${var.*}`` for the chosen target
and the ``{{...}}`` dynamic value references at run time, runs every
``python_wheel_task`` in-process through its console-script entry point with
the very ``--name=value`` list the wheel gets on Databricks, and applies
Databricks' ``run_if`` rules, job-status rules and task-level repair. A run
record (``<state_dir>/runs/<run_id>.json``) keeps what a repair needs: the
resolved parameters, the start time and each task's outcome. Task values live
in the run-state table, as on Databricks.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import functools
import glob
import importlib.metadata
import inspect
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

DEFAULT_JOB = "patronage_pipeline"
DEFAULT_TARGET = "local"
DEFAULT_STATE_DIR = ".patronage"
BUNDLE_FILE = "databricks.yml"
STATE_DIR_VAR = "state_dir"

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


class RunnerError(Exception):
    """The bundle, the job or the command line is wrong; the message says where."""


# --------------------------------------------------------------------------
# The bundle: databricks.yml + includes, variables per target, ${...} refs
# --------------------------------------------------------------------------


def find_bundle_dir(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above ``start`` (default cwd) holding databricks.yml."""
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise RunnerError(f"no {BUNDLE_FILE} in {here} or any parent directory; use --bundle-dir")


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RunnerError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunnerError(f"{path}: expected a mapping at the top level")
    return data


_KEYED_LISTS = {"tasks": "task_key", "job_clusters": "job_cluster_key", "parameters": "name"}


def _merge(base: Any, override: Any, key: str | None = None) -> Any:
    """Deep-merge like the bundle CLI: maps by key, task-like lists by their key field."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = _merge(out[k], v, k) if k in out else copy.deepcopy(v)
        return out
    id_field = _KEYED_LISTS.get(key or "")
    if id_field and isinstance(base, list) and isinstance(override, list):
        out_list = [copy.deepcopy(x) for x in base]
        index = {x.get(id_field): i for i, x in enumerate(out_list) if isinstance(x, dict)}
        for item in override:
            ident = item.get(id_field) if isinstance(item, dict) else None
            if ident is not None and ident in index:
                out_list[index[ident]] = _merge(out_list[index[ident]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(override)


def load_bundle_config(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """databricks.yml with every ``include`` file merged in (unresolved)."""
    root = Path(bundle_dir)
    main = root / BUNDLE_FILE
    if not main.is_file():
        raise RunnerError(f"{main} not found")
    config = _load_yaml(main)
    includes = config.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    seen: set[Path] = set()
    for pattern in includes:
        matches = sorted(Path(p) for p in glob.glob(str(root / pattern), recursive=True))
        for path in matches:
            if path in seen or not path.is_file():
                continue
            seen.add(path)
            part = _load_yaml(path)
            for key, value in part.items():
                if key == "resources":
                    for kind, items in (value or {}).items():
                        existing = config.setdefault("resources", {}).setdefault(kind, {})
                        for name, item in (items or {}).items():
                            if name in existing:
                                raise RunnerError(
                                    f"{path}: resource {kind}.{name} is defined more than once"
                                )
                            existing[name] = item
                else:
                    config[key] = _merge(config[key], value, key) if key in config else value
    return config


def default_target(config: Mapping[str, Any]) -> str | None:
    for name, target in (config.get("targets") or {}).items():
        if isinstance(target, dict) and target.get("default") is True:
            return name
    return None


def _variable_default(spec: Any) -> tuple[bool, Any]:
    if isinstance(spec, dict):
        if "default" in spec:
            return True, spec["default"]
        return False, None
    return True, spec  # shorthand `name: value`


def _target_value(raw: Any) -> tuple[bool, Any]:
    # Target overrides are plain values, or {default: ...} in the long form.
    if isinstance(raw, dict) and set(raw) <= {"default", "description", "type"}:
        return ("default" in raw), raw.get("default")
    return True, raw


def target_variables(
    config: Mapping[str, Any],
    target: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Variable values for ``target``: defaults, then the target's, then ``overrides``.

    Values are returned unresolved (they may contain ``${var.*}``). A variable
    with no value for the target is absent from the result.
    """
    declared = config.get("variables") or {}
    targets = config.get("targets") or {}
    if target not in targets:
        raise RunnerError(
            f"target '{target}' is not defined in {BUNDLE_FILE}; "
            f"targets: {', '.join(targets) or '(none)'}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        has, value = _variable_default(spec)
        if has:
            values[name] = value
    for name, raw in ((targets[target] or {}).get("variables") or {}).items():
        if name not in declared:
            raise RunnerError(f"target '{target}' sets variable '{name}' that is not declared")
        has, value = _target_value(raw)
        if has:
            values[name] = value
    for name, value in (overrides or {}).items():
        if name not in declared:
            raise RunnerError(
                f"--var {name}: no such variable; declared: {', '.join(sorted(declared))}"
            )
        spec = declared[name]
        if isinstance(spec, dict) and spec.get("type") == "complex" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise RunnerError(f"--var {name}: complex variable needs a JSON value") from None
        values[name] = value
    return values


# ${a.b} but not $${a.b} (escaped literal), same shape as the bundle CLI's references.
_REF = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*)\}")


class _Resolver:
    """Resolves ``${var.*}`` / ``${bundle.*}``; leaves other namespaces as they are."""

    def __init__(self, raw_vars: Mapping[str, Any], bundle_name: str, target: str) -> None:
        self.raw = dict(raw_vars)
        self.done: dict[str, Any] = {}
        self.bundle = {"name": bundle_name, "target": target}

    def var(self, name: str, stack: tuple[str, ...] = ()) -> Any:
        if name in self.done:
            return self.done[name]
        if name in stack:
            raise RunnerError("variables refer to each other in a cycle: " + " -> ".join(stack))
        if name not in self.raw:
            raise RunnerError(f"variable '{name}' is used but has no value for this target")
        value = self._resolve(self.raw[name], (*stack, name))
        self.done[name] = value
        return value

    def _lookup(self, path: str, stack: tuple[str, ...]) -> tuple[bool, Any]:
        head, _, rest = path.partition(".")
        if head == "var" and rest:
            name, _, sub = rest.partition(".")
            value = self.var(name, stack)
            for part in [p for p in sub.split(".") if p]:
                if not isinstance(value, dict) or part not in value:
                    raise RunnerError(f"${{{path}}}: no field '{part}'")
                value = value[part]
            return True, value
        if head == "bundle" and rest in self.bundle:
            return True, self.bundle[rest]
        return False, None

    def _resolve(self, obj: Any, stack: tuple[str, ...] = ()) -> Any:
        if isinstance(obj, dict):
            return {k: self._resolve(v, stack) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._resolve(v, stack) for v in obj]
        if not isinstance(obj, str):
            return obj
        whole = _REF.fullmatch(obj)
        if whole:  # a lone reference keeps the value's type (lists, numbers)
            found, value = self._lookup(whole.group(1), stack)
            return value if found else obj

        def sub(m: re.Match[str]) -> str:
            found, value = self._lookup(m.group(1), stack)
            if not found:
                return m.group(0)
            if isinstance(value, bool):
                return str(value).lower()
            return value if isinstance(value, str) else json.dumps(value)

        return _REF.sub(sub, obj).replace("$${", "${")

    def resolve(self, obj: Any) -> Any:
        return self._resolve(obj)


def find_var_references(obj: Any) -> set[str]:
    """Names of every ``${var.NAME...}`` used in ``obj``."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for v in obj.values():
            out |= find_var_references(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= find_var_references(v)
    elif isinstance(obj, str):
        for m in _REF.finditer(obj):
            head, _, rest = m.group(1).partition(".")
            if head == "var" and rest:
                out.add(rest.split(".")[0])
    return out


@dataclasses.dataclass
class Bundle:
    """A loaded bundle for one target, with its variables resolved."""

    root: Path
    name: str
    target: str
    config: dict[str, Any]
    variables: dict[str, Any]

    def job_keys(self) -> list[str]:
        return list(self._resources().get("jobs") or {})

    def _resources(self) -> dict[str, Any]:
        resources = self.config.get("resources") or {}
        target_res = ((self.config.get("targets") or {}).get(self.target) or {}).get("resources")
        if target_res:
            resources = _merge(resources, target_res, "resources")
        return resources

    def job(self, key: str) -> dict[str, Any]:
        """The job definition with ``${var.*}`` and ``${bundle.*}`` resolved."""
        jobs = self._resources().get("jobs") or {}
        if key not in jobs:
            raise RunnerError(
                f"job '{key}' is not defined under resources/; jobs: {', '.join(jobs) or '(none)'}"
            )
        resolver = _Resolver(self.variables, self.name, self.target)
        return resolver.resolve(copy.deepcopy(jobs[key]))


def load_bundle(
    bundle_dir: str | os.PathLike[str] | None = None,
    target: str = DEFAULT_TARGET,
    variables: Mapping[str, Any] | None = None,
    state_dir: str | os.PathLike[str] | None = None,
) -> Bundle:
    """Load the bundle for ``target``; ``state_dir`` sets var ``state_dir`` (absolute)."""
    root = Path(bundle_dir).resolve() if bundle_dir else find_bundle_dir()
    config = load_bundle_config(root)
    name = str((config.get("bundle") or {}).get("name") or root.name)
    overrides = dict(variables or {})
    if state_dir is not None:
        if STATE_DIR_VAR in overrides:
            raise RunnerError("set the state directory with --state-dir, not --var state_dir")
        if STATE_DIR_VAR in (config.get("variables") or {}):
            overrides[STATE_DIR_VAR] = str(Path(state_dir).resolve())
    raw = target_variables(config, target, overrides)
    resolver = _Resolver(raw, name, target)
    resolved = {n: resolver.var(n) for n in raw}
    return Bundle(root=root, name=name, target=target, config=config, variables=resolved)


# --------------------------------------------------------------------------
# The job: tasks, order, run_if, job status
# --------------------------------------------------------------------------


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
            raise RunnerError("a task has no task_key")
        if key in seen:
            raise RunnerError(f"task_key '{key}' is used twice")
        seen.add(key)
        deps = tuple(d["task_key"] for d in raw.get("depends_on") or [])
        run_if = str(raw.get("run_if") or "ALL_SUCCESS").upper()
        if run_if not in RUN_IF_VALUES:
            raise RunnerError(f"task '{key}': run_if {run_if!r} is not one of {RUN_IF_VALUES}")
        tasks.append(TaskDef(key, deps, run_if, dict(raw)))
    for task in tasks:
        for dep in task.depends_on:
            if dep not in seen:
                raise RunnerError(f"task '{task.key}' depends on unknown task '{dep}'")
    if not tasks:
        raise RunnerError("the job has no tasks")
    return tasks


def topological_order(tasks: Sequence[TaskDef]) -> list[TaskDef]:
    """Dependency order; among ready tasks the one first in the YAML goes first."""
    remaining = list(tasks)
    done: set[str] = set()
    order: list[TaskDef] = []
    while remaining:
        ready = next((t for t in remaining if set(t.depends_on) <= done), None)
        if ready is None:
            raise RunnerError(
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
    raise RunnerError(f"unknown run_if {run_if!r}")


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


# --------------------------------------------------------------------------
# Dynamic value references {{...}}
# --------------------------------------------------------------------------

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
                    raise RunnerError(f"{{{{{ref}}}}}: the job has no parameter '{rest[1]}'")
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
                    raise RunnerError(f"{{{{{ref}}}}}: task values are not available here")
                return format_value(values(other, parts[3]))
            if parts[2:] == ["result_state"] and len(parts) == 3:
                return ctx.states.get(other, "").lower()
        raise RunnerError(f"{{{{{ref}}}}} is not a dynamic value reference the runner knows")

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
            raise RunnerError(
                f"--param {name}: the job has no such parameter; parameters: "
                + ", ".join(sorted(params))
            )
        params[name] = value
    if run_date is not None:
        if "run_date" not in params:
            raise RunnerError("--run-date: the job has no run_date parameter")
        try:
            dt.date.fromisoformat(run_date)
        except ValueError:
            raise RunnerError(f"--run-date must be YYYY-MM-DD, got {run_date!r}") from None
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
        raise RunnerError(
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


# --------------------------------------------------------------------------
# Entry points (monkeypatched in tests)
# --------------------------------------------------------------------------


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
        raise RunnerError(
            f"entry point '{name}' is not declared by package '{package_name}' "
            "(is the package installed? pip install -e .)"
        )
    return matches[0].load()


def _call_entry_point(fn: Callable[..., Any], argv: list[str]) -> None:
    """Call ``main(argv)``; a ``SystemExit`` other than 0 is a failure."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    try:
        if params:
            fn(argv)
        else:  # a plain console-script main() reads sys.argv
            import sys

            saved = sys.argv
            sys.argv = [getattr(fn, "__name__", "task"), *argv]
            try:
                fn()
            finally:
                sys.argv = saved
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"entry point exited with status {exc.code}") from None


# --------------------------------------------------------------------------
# Run records
# --------------------------------------------------------------------------


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
        raise RunnerError(f"no local run recorded under {runs_dir(state_dir)}; run `patronage run`")
    return pointer.read_text(encoding="utf-8").strip()


def load_record(
    state_dir: str | os.PathLike[str], run_id: str | int | None = None
) -> dict[str, Any]:
    """The record of ``run_id`` (or the latest run; ``"latest"`` works too)."""
    rid = latest_run_id(state_dir) if run_id in (None, "", "latest") else str(run_id)
    path = runs_dir(state_dir) / f"{rid}.json"
    if not path.is_file():
        raise RunnerError(f"no record of run {rid} under {runs_dir(state_dir)}")
    return json.loads(path.read_text(encoding="utf-8"))


def new_run_id(state_dir: str | os.PathLike[str]) -> int:
    """A unique integer like a Databricks run id (milliseconds since the epoch)."""
    rid = int(time.time() * 1000)
    d = runs_dir(state_dir)
    while (d / f"{rid}.json").exists():
        rid += 1
    return rid


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------


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


def _first_line(text: str, limit: int = 300) -> str:
    return ((text or "").strip().splitlines() or [""])[0][:limit]


def _product_schema(task: TaskDef | None, bundle: Bundle) -> tuple[str, str]:
    named = ((task.wheel_task or {}).get("named_parameters") or {}) if task else {}
    catalog = str(named.get("catalog") or bundle.variables.get("catalog") or "spark_catalog")
    schema = str(named.get("schema") or bundle.variables.get("schema") or "default")
    return catalog, schema


def _run_state(spark, catalog: str, schema: str, run_id: int | str):
    from patronage.repositories.task_values import RunState
    from patronage.tables import Tables

    return RunState(Tables(spark, catalog, schema), str(run_id))


def read_values(spark, catalog: str, schema: str, run_id: int | str) -> dict[str, dict[str, Any]]:
    """Every task's published values for the run (run-state table)."""
    return _run_state(spark, catalog, schema, run_id).get_all()


def _values_getter(
    spark, tasks: Sequence[TaskDef], task: TaskDef, catalog: str, schema: str, run_id: int | str
) -> ValuesGetter:
    ups = upstream(tasks, task.key)
    cache: dict[str, dict[str, Any]] | None = None

    def get(other: str, name: str) -> Any:
        nonlocal cache
        if other not in ups:
            raise RunnerError(
                f"task '{task.key}' references {{{{tasks.{other}.values.{name}}}}} "
                f"but '{other}' is not upstream of it"
            )
        if cache is None:
            cache = read_values(spark, catalog, schema, run_id)
        published = cache.get(other, {})
        if name not in published:
            raise RunnerError(
                f"task '{task.key}' references {{{{tasks.{other}.values.{name}}}}} but task "
                f"'{other}' published no value '{name}' in run {run_id}"
            )
        return published[name]

    return get


def land_local_fixtures(bundle: Bundle, state_dir: Path, spark) -> None:
    """Local target only: put the bundled fixtures where the local variables point."""
    fixtures = bundle.root / "fixtures"
    if not fixtures.is_dir():
        return
    try:
        from patronage.devtools.fixture_landing import land_fixtures
    except ImportError:
        log.warning("fixture landing is not available; fixtures not landed")
        return
    land_fixtures(fixtures, state_dir, spark)


def _start_spark(state_dir: Path):
    from patronage.spark import get_spark

    return get_spark(state_dir)


def _execute(
    *,
    bundle: Bundle,
    tasks: list[TaskDef],
    record: dict[str, Any],
    ctx: RunContext,
    to_run: set[str],
    state_dir: Path,
    spark,
    on_task: Callable[[str, dict[str, Any]], None] | None = None,
    ignore_run_if: bool = False,
) -> None:
    """Run ``to_run`` in dependency order; other tasks keep their recorded state."""
    order = topological_order(tasks)
    states = {k: v["status"] for k, v in record["tasks"].items()}
    for t in order:
        states.setdefault(t.key, NOT_RUN)
        record["tasks"].setdefault(t.key, {"status": NOT_RUN})
    ctx.states = states
    for task in order:
        if task.key not in to_run:
            continue
        entry = {"status": NOT_RUN, "duration_seconds": 0.0, "error": None}
        verdict = None
        if not ignore_run_if:
            verdict = run_if_verdict(task.run_if, [states[d] for d in task.depends_on])
        if verdict is not None:
            entry["status"] = verdict
            log.info("task %s not run: %s (run_if %s)", task.key, verdict, task.run_if)
        else:
            entry["start_time"] = dt.datetime.now(dt.UTC).isoformat()
            started = time.monotonic()
            tcat, tschema = _product_schema(task, bundle)
            try:
                getter = _values_getter(spark, tasks, task, tcat, tschema, ctx.run_id)
                argv = task_argv(task, ctx, getter)
                wheel = task.wheel_task or {}
                fn = load_entry_point(wheel.get("package_name"), str(wheel.get("entry_point")))
                log.info("task %s starting (entry point %s)", task.key, wheel.get("entry_point"))
                _call_entry_point(fn, argv)
                entry["status"] = SUCCESS
            except KeyboardInterrupt:
                entry["status"] = CANCELED
                entry["error"] = "KeyboardInterrupt"
                entry["duration_seconds"] = round(time.monotonic() - started, 3)
                record["tasks"][task.key] = entry
                states[task.key] = CANCELED
                raise
            except Exception as exc:
                entry["status"] = FAILED
                message = str(exc).strip()
                entry["error"] = f"{type(exc).__name__}: {_first_line(message)}"
                # Our stages' messages name files, rows and rules, never record contents.
                log.error("task %s failed: %s: %s", task.key, type(exc).__name__, message[:2000])
                log.debug("task %s traceback", task.key, exc_info=True)
            entry["duration_seconds"] = round(time.monotonic() - started, 3)
        record["tasks"][task.key] = entry
        states[task.key] = entry["status"]
        record["status"] = RUNNING
        save_record(state_dir, record)
        if on_task:
            on_task(task.key, entry)
    record["status"] = job_status(tasks, states)


def _finish(
    state_dir: Path, record: dict[str, Any], spark, bundle: Bundle, tasks: list[TaskDef]
) -> RunResult:
    record["end_time"] = dt.datetime.now(dt.UTC).isoformat()
    save_record(state_dir, record)
    catalog, schema = _product_schema(topological_order(tasks)[0], bundle)
    try:
        values = read_values(spark, catalog, schema, record["run_id"])
    except Exception as exc:  # the summary must not hide the run's own outcome
        log.warning("could not read task values: %s", type(exc).__name__)
        values = {}
    return RunResult(record["run_id"], record["status"], record, values)


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
            raise RunnerError(
                f"another run is in progress in {Path(state_dir).resolve()} (max_concurrent_runs 1)"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _exclusive(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> RunResult:
        with state_lock(kwargs.get("state_dir", DEFAULT_STATE_DIR)):
            return fn(**kwargs)

    return wrapper


@_exclusive
def run_job(
    *,
    job: str = DEFAULT_JOB,
    target: str = DEFAULT_TARGET,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    variables: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    run_date: str | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    only: Sequence[str] | None = None,
    run_id: int | str | None = None,
    on_task: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Run the job as defined in the bundle; returns the outcome (exit code via ``.exit_code``).

    ``only`` restricts the run to those tasks (used by ``patronage task``);
    ``run_id`` joins an existing run's id (its record supplies parameters).
    """
    state = Path(state_dir).resolve()
    existing: dict[str, Any] | None = None
    if run_id is not None:
        try:
            existing = load_record(state, run_id)
        except RunnerError:
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
        bundle = load_bundle(bundle_dir, target, variables, state)
    jobdef = bundle.job(job)
    tasks = job_tasks(jobdef)
    keys = {t.key for t in tasks}
    for k in only or ():
        if k not in keys:
            raise RunnerError(f"job '{job}' has no task '{k}'; tasks: {', '.join(sorted(keys))}")

    if existing is not None:
        record = existing
        start = dt.datetime.fromisoformat(record["start_time"])
        ctx = RunContext(
            record["run_id"],
            job,
            str(jobdef.get("name") or job),
            start,
            dict(record["parameters"]),
            int(record.get("repair_count", 0)),
        )
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
    save_record(state, record)
    spark = _start_spark(state)
    if bundle.target == "local":
        land_local_fixtures(bundle, state, spark)
    to_run = set(only) if only else keys
    try:
        _execute(
            bundle=bundle,
            tasks=tasks,
            record=record,
            ctx=ctx,
            to_run=to_run,
            state_dir=state,
            spark=spark,
            on_task=on_task,
            ignore_run_if=bool(only),
        )
    except KeyboardInterrupt:
        record["status"] = CANCELED
        _finish(state, record, spark, bundle, tasks)
        raise
    if only:
        # A task run alone: the job's status reflects the tasks that have run.
        ran = {k: v["status"] for k, v in record["tasks"].items() if v["status"] != NOT_RUN}
        record["status"] = (
            SUCCESS if all(s in (SUCCESS, EXCLUDED) for s in ran.values()) else FAILED
        )
    return _finish(state, record, spark, bundle, tasks)


@_exclusive
def repair(
    *,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    run_id: int | str | None = None,
    bundle_dir: str | os.PathLike[str] | None = None,
    on_task: Callable[[str, dict[str, Any]], None] | None = None,
) -> RunResult:
    """Task-level repair: re-run failed tasks and all downstream, same run id and parameters."""
    state = Path(state_dir).resolve()
    record = load_record(state, run_id)
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
    start = dt.datetime.fromisoformat(record["start_time"])
    ctx = RunContext(
        record["run_id"],
        record["job"],
        str(jobdef.get("name") or record["job"]),
        start,
        dict(record["parameters"]),
        repair_count,
    )
    spark = _start_spark(state)
    if not rerun:
        log.info("run %s has no failed task; nothing to repair", record["run_id"])
        catalog, schema = _product_schema(topological_order(tasks)[0], bundle)
        values = read_values(spark, catalog, schema, record["run_id"])
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
    try:
        _execute(
            bundle=bundle,
            tasks=tasks,
            record=record,
            ctx=ctx,
            to_run=rerun,
            state_dir=state,
            spark=spark,
            on_task=on_task,
        )
    except KeyboardInterrupt:
        record["status"] = CANCELED
        _finish(state, record, spark, bundle, tasks)
        raise
    return _finish(state, record, spark, bundle, tasks)


# --------------------------------------------------------------------------
# Settings for commands that need the product's tables
# --------------------------------------------------------------------------


def parse_assignments(items: Iterable[str] | None, what: str) -> dict[str, str]:
    """``NAME=VALUE`` strings (from --var / --param) into a dict."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RunnerError(f"{what} {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def resolve_settings(
    target: str | argparse.Namespace = DEFAULT_TARGET,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    variables: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    run_id: str = "adhoc",
    bundle_dir: str | os.PathLike[str] | None = None,
    job: str = DEFAULT_JOB,
):
    """(config.Settings, spark) as the job's first task would get them.

    Accepts the CLI's parsed arguments too: ``resolve_settings(args)`` reads
    ``target``, ``state_dir``, ``var``, ``param``, ``run_date``, ``bundle_dir``
    and ``job`` from them.
    """
    from patronage import config

    run_date = None
    if isinstance(target, argparse.Namespace):
        args = target
        target = getattr(args, "target", None) or DEFAULT_TARGET
        state_dir = getattr(args, "state_dir", None) or DEFAULT_STATE_DIR
        variables = parse_assignments(getattr(args, "var", None), "--var")
        params = parse_assignments(getattr(args, "param", None), "--param")
        run_date = getattr(args, "run_date", None)
        bundle_dir = getattr(args, "bundle_dir", None)
        job = getattr(args, "job", None) or DEFAULT_JOB
    state = Path(state_dir).resolve()
    bundle = load_bundle(bundle_dir, str(target), variables, state)
    jobdef = bundle.job(job)
    tasks = job_tasks(jobdef)
    first = topological_order(tasks)[0]
    raw_params = job_parameters(jobdef, params, run_date)
    ctx = RunContext(
        run_id, job, str(jobdef.get("name") or job), dt.datetime.now(dt.UTC), raw_params
    )
    ctx.parameters = resolve_parameter_defaults(raw_params, ctx)
    settings = config.settings_from_argv(task_argv(first, ctx, None))
    return settings, _start_spark(state)

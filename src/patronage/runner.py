"""The Patronage side of the local runner: product hooks and defaults.

:mod:`patronage.localjobs` runs any bundle's job; this module supplies what
only Patronage knows: the default job and state directory, a local Spark
session, landing the bundled fixtures on the ``local`` target, task values
read from the run-state table in the product's catalog and schema, and the
product's settings as the job's first task would get them (for commands that
query the product's tables). The names the CLI and the tests use are
re-exported here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from patronage.localjobs import references
from patronage.localjobs.bundle import (
    BUNDLE_FILE,
    DEFAULT_TARGET,
    STATE_DIR_VAR,
    Bundle,
    default_target,
    find_bundle_dir,
    find_var_references,
    load_bundle,
    load_bundle_config,
    target_variables,
)
from patronage.localjobs.dag import (
    CANCELED,
    EXCLUDED,
    FAILED,
    NOT_RUN,
    REPAIRABLE_STATES,
    RUN_IF_VALUES,
    RUNNING,
    SUCCESS,
    SUCCESS_WITH_FAILURES,
    UPSTREAM_FAILED,
    TaskDef,
    downstream,
    job_status,
    job_tasks,
    run_if_verdict,
    topological_order,
    upstream,
)
from patronage.localjobs.errors import JobsError
from patronage.localjobs.executor import load_entry_point, parse_assignments
from patronage.localjobs.executor import repair as _repair
from patronage.localjobs.executor import run_job as _run_job
from patronage.localjobs.records import (
    RunResult,
    latest_run_id,
    load_record,
    new_run_id,
    runs_dir,
    save_record,
    state_lock,
)
from patronage.localjobs.references import (
    RunContext,
    ValuesGetter,
    format_value,
    job_parameters,
    resolve_dynamic,
    resolve_parameter_defaults,
    task_argv,
)

__all__ = [
    "BUNDLE_FILE", "CANCELED", "DEFAULT_JOB", "DEFAULT_STATE_DIR", "DEFAULT_TARGET", "EXCLUDED",
    "FAILED", "NOT_RUN", "REPAIRABLE_STATES", "RUNNING", "RUN_IF_VALUES", "STATE_DIR_VAR",
    "SUCCESS", "SUCCESS_WITH_FAILURES", "UPSTREAM_FAILED", "Bundle", "PatronageHooks",
    "RunContext", "RunResult", "RunnerError", "TaskDef", "ValuesGetter", "default_target",
    "downstream", "find_bundle_dir", "find_var_references", "format_value", "job_parameters",
    "job_status", "job_tasks", "latest_run_id", "load_bundle", "load_bundle_config",
    "load_entry_point", "load_record", "new_run_id", "parse_assignments", "read_values", "repair",
    "resolve_dynamic", "resolve_parameter_defaults", "resolve_settings", "run_if_verdict",
    "run_job", "runs_dir", "save_record", "state_lock", "target_variables", "task_argv",
    "topological_order", "upstream",
]  # fmt: skip

log = logging.getLogger(__name__)

DEFAULT_JOB = "patronage_pipeline"
DEFAULT_STATE_DIR = ".patronage"
RunnerError = JobsError


def _product_schema(task: TaskDef | None, bundle: Bundle) -> tuple[str, str]:
    named = ((task.wheel_task or {}).get("named_parameters") or {}) if task else {}
    catalog = str(named.get("catalog") or bundle.variables.get("catalog") or "spark_catalog")
    schema = str(named.get("schema") or bundle.variables.get("schema") or "default")
    return catalog, schema


def read_values(spark: Any, catalog: str, schema: str, run_id: int | str) -> dict[str, Any]:
    """Every task's published values for the run (run-state table)."""
    from patronage.repositories.task_values import RunState
    from patronage.tables import Tables

    return RunState(Tables(spark, catalog, schema), str(run_id)).get_all()


def _values_getter(
    spark: Any,
    tasks: Sequence[TaskDef],
    task: TaskDef,
    catalog: str,
    schema: str,
    run_id: int | str,
) -> ValuesGetter:
    return references.values_getter(
        tasks, task, run_id, lambda: read_values(spark, catalog, schema, run_id)
    )


#: The local target's inputs. While every one keeps the target's default, a
#: run is the demo and the bundled fixtures are landed where they point.
INPUT_VARIABLES = (
    "inbound_scd_dir", "inbound_cg_dir", "cg_seed_file", "pt_seed_table", "pt_delta_table",
    "mvi_psa_dir", "mvi_person_dir", "mvi_institution_dir",
)  # fmt: skip
#: Left in a state directory whose runs read the user's own inputs.
OWN_INPUTS_MARKER = ".own_inputs"


def own_inputs(bundle: Bundle, state_dir: Path) -> list[str]:
    """The input variables whose value differs from the target's default (``--var``)."""
    defaults = load_bundle(bundle.root, bundle.target, None, state_dir).variables
    return [
        n for n in INPUT_VARIABLES
        if n in bundle.variables and str(bundle.variables[n]) != str(defaults.get(n))
    ]  # fmt: skip


def check_local_inputs(bundle: Bundle, state_dir: Path) -> bool:
    """Whether to land the bundled fixtures: yes for the demo, no for one's own inputs.

    Demo data never mixes with the user's: a run that overrides some inputs
    but not all, or whose state directory already served the other kind, is
    refused before anything is read or written.
    """
    from patronage.devtools.fixture_landing import MARKER
    from patronage.errors import ConfigError

    own = own_inputs(bundle, state_dir)
    if not own:
        if (state_dir / OWN_INPUTS_MARKER).exists():
            raise ConfigError(
                f"state directory {state_dir} holds runs on your own inputs; the demo would "
                "mix its fixtures into those tables: give --var for every input, or use "
                "another --state-dir for the demo"
            )
        return True
    demo = [n for n in INPUT_VARIABLES if n not in own]
    if demo:
        raise ConfigError(
            f"--var gives your own {', '.join(own)}, but {', '.join(demo)} still point(s) at "
            "the demo's landed fixtures: give --var for every input (the demo fixtures are "
            "only landed when none is given)"
        )
    if (state_dir / "landing" / MARKER).exists():
        raise ConfigError(
            f"state directory {state_dir} holds the demo (its tables hold the fixtures' "
            "rows): use another --state-dir for your own inputs"
        )
    return False


def land_local_fixtures(bundle: Bundle, state_dir: Path, spark: Any) -> None:
    """Local target only: put the bundled fixtures where the local variables point."""
    fixtures = bundle.root / "fixtures"
    if not fixtures.is_dir():
        return
    from patronage.devtools.fixture_landing import land_fixtures

    land_fixtures(fixtures, state_dir, spark)


def _start_spark(state_dir: Path) -> Any:
    from patronage.spark import get_spark

    return get_spark(state_dir)


class PatronageHooks:
    """The product's answers to :class:`patronage.localjobs.executor.Hooks`."""

    def __init__(self) -> None:
        self.spark: Any = None

    def prepare(self, bundle: Bundle, state_dir: Path, *, repair: bool) -> None:
        land = bundle.target == "local" and check_local_inputs(bundle, state_dir)
        self.spark = _start_spark(state_dir)
        if bundle.target != "local" or repair:
            return
        if land:
            land_local_fixtures(bundle, state_dir, self.spark)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            (state_dir / OWN_INPUTS_MARKER).write_text("own inputs: no fixtures landed\n")
            log.info("local run on your own inputs: no fixtures landed")

    def entry_point(self, package_name: str | None, name: str) -> Callable[..., Any]:
        return load_entry_point(package_name, name)

    def values_getter(
        self, bundle: Bundle, tasks: Sequence[TaskDef], task: TaskDef, run_id: int | str
    ) -> ValuesGetter:
        catalog, schema = _product_schema(task, bundle)
        return _values_getter(self.spark, tasks, task, catalog, schema, run_id)

    def read_values(
        self, bundle: Bundle, tasks: Sequence[TaskDef], run_id: int | str
    ) -> dict[str, Any]:
        catalog, schema = _product_schema(topological_order(tasks)[0], bundle)
        return read_values(self.spark, catalog, schema, run_id)


def run_job(
    *,
    job: str = DEFAULT_JOB,
    target: str = DEFAULT_TARGET,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    **kwargs: Any,
) -> RunResult:
    """Run the job as defined in the bundle (see :func:`patronage.localjobs.executor.run_job`)."""
    return _run_job(hooks=PatronageHooks(), job=job, target=target, state_dir=state_dir, **kwargs)


def repair(*, state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR, **kwargs: Any) -> RunResult:
    """Task-level repair of a local run (see :func:`patronage.localjobs.executor.repair`)."""
    return _repair(hooks=PatronageHooks(), state_dir=state_dir, **kwargs)


def resolve_settings(
    target: str | argparse.Namespace = DEFAULT_TARGET,
    state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
    variables: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    run_id: str = "adhoc",
    bundle_dir: str | os.PathLike[str] | None = None,
    job: str = DEFAULT_JOB,
) -> tuple[Any, Any]:
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
    first = topological_order(job_tasks(jobdef))[0]
    raw_params = job_parameters(jobdef, params, run_date)
    ctx = RunContext(
        run_id, job, str(jobdef.get("name") or job), dt.datetime.now(dt.UTC), raw_params
    )
    ctx.parameters = resolve_parameter_defaults(raw_params, ctx)
    settings = config.settings_from_argv(task_argv(first, ctx, None))
    return settings, _start_spark(state)

"""The bundle definition is tested like code (ARCHITECTURE.md, "Tests").

Every job YAML in resources/ loads into the ``databricks-bundles`` Job model
for every target; every task's entry point exists in the BUILT wheel; every
``${var.*}`` is defined for every target; every ``{{tasks.X.values.Y}}`` names
an upstream task whose stage module publishes ``Y``; ``local`` is never the
default target and prod runs as a service principal with permissions. Each
checker is a plain function with a negative test, so these tests can fail.
"""

from __future__ import annotations

import configparser
import copy
import importlib
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from patronage import runner

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "patronage"


# --------------------------------------------------------------------------
# Checkers: each returns a list of problems (empty = fine)
# --------------------------------------------------------------------------


def job_model_problems(job_key: str, job: Mapping[str, Any]) -> list[str]:
    """Does the (resolved) job load into databricks.bundles.jobs.Job?"""
    from databricks.bundles.jobs import Job

    try:
        Job.from_dict(copy.deepcopy(dict(job)))
    except Exception as exc:
        return [f"job {job_key}: {type(exc).__name__}: {exc}"]
    return []


def wheel_task_problems(
    job_key: str,
    job: Mapping[str, Any],
    wheel_entry_points: Mapping[str, str],
    wheel_files: set[str],
) -> list[str]:
    """Every task is a wheel task of our package whose entry point is in the wheel."""
    problems = []
    for task in runner.job_tasks(job):
        wheel = task.wheel_task
        where = f"job {job_key} task {task.key}"
        if wheel is None:
            problems.append(f"{where}: not a python_wheel_task")
            continue
        if wheel.get("package_name") != PACKAGE:
            problems.append(f"{where}: package_name {wheel.get('package_name')!r} != {PACKAGE!r}")
        name = wheel.get("entry_point")
        target = wheel_entry_points.get(str(name))
        if target is None:
            problems.append(f"{where}: entry point {name!r} is not in the wheel's console_scripts")
            continue
        module = target.split(":")[0]
        module_file = module.replace(".", "/") + ".py"
        if module_file not in wheel_files:
            problems.append(f"{where}: entry point {name} -> {module_file} is not in the wheel")
    return problems


def undefined_variable_problems(
    config: Mapping[str, Any], target: str, supplied: Mapping[str, Any] | None = None
) -> list[str]:
    """Every ${var.X} used anywhere is declared and has a value for ``target``.

    ``supplied`` are the values a deployer passes with ``--var`` (variables
    declared without a default on purpose, such as the service principal).
    """
    declared = config.get("variables") or {}
    used = runner.find_var_references({k: v for k, v in config.items() if k != "variables"})
    used |= runner.find_var_references(
        [spec.get("default") if isinstance(spec, dict) else spec for spec in declared.values()]
    )
    problems = [f"${{var.{n}}} is used but not declared" for n in sorted(used - set(declared))]
    try:
        values = runner.target_variables(config, target, supplied)
    except runner.RunnerError as exc:
        return [*problems, f"target {target}: {exc}"]
    # A lookup (a SQL warehouse by name, say) is resolved by the CLI at deploy time.
    looked_up = {n for n, spec in declared.items() if isinstance(spec, dict) and "lookup" in spec}
    for name in sorted(used & set(declared) - looked_up):
        if name not in values:
            problems.append(f"target {target}: variable '{name}' is used but has no value")
    return problems


_TASK_VALUE_REF = re.compile(r"\{\{\s*tasks\.([A-Za-z0-9_\-]+)\.values\.([A-Za-z0-9_]+)\s*\}\}")


def _strings(obj: Any):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def task_value_problems(
    job_key: str,
    job: Mapping[str, Any],
    publishes: Callable[[runner.TaskDef], tuple[str, ...] | None],
) -> list[str]:
    """Every {{tasks.X.values.Y}}: X is upstream of the referring task and publishes Y."""
    tasks = runner.job_tasks(job)
    by_key = {t.key: t for t in tasks}
    problems = []
    for task in tasks:
        ups = runner.upstream(tasks, task.key)
        for text in _strings(task.raw):
            for other, name in _TASK_VALUE_REF.findall(text):
                ref = f"job {job_key} task {task.key}: {{{{tasks.{other}.values.{name}}}}}"
                if other not in by_key:
                    problems.append(f"{ref} names no task of the job")
                    continue
                if other not in ups:
                    problems.append(f"{ref} names a task that is not upstream")
                    continue
                published = publishes(by_key[other])
                if published is None:
                    problems.append(f"{ref}: the stage of '{other}' declares no PUBLISHES")
                elif name not in published:
                    problems.append(f"{ref}: '{other}' does not publish '{name}'")
    return problems


def target_problems(config: Mapping[str, Any]) -> list[str]:
    """local is never the default; prod is production, runs as a principal, has permissions."""
    targets = config.get("targets") or {}
    problems = []
    if "local" not in targets:
        problems.append("there is no local target")
    if (targets.get("local") or {}).get("default") is True:
        problems.append("the local target is the default target")
    defaults = [n for n, t in targets.items() if isinstance(t, dict) and t.get("default") is True]
    if len(defaults) != 1:
        problems.append(f"expected exactly one default target, found {defaults}")
    prod = targets.get("prod")
    if not isinstance(prod, dict):
        return [*problems, "there is no prod target"]
    if prod.get("mode") != "production":
        problems.append("prod is not mode: production")
    run_as = prod.get("run_as") or {}
    if not (run_as.get("service_principal_name") or run_as.get("user_name")):
        problems.append("prod has no run_as")
    if not prod.get("permissions"):
        problems.append("prod has no permissions")
    return problems


# --------------------------------------------------------------------------
# The product's bundle
# --------------------------------------------------------------------------

CONFIG = runner.load_bundle_config(ROOT)
TARGETS = sorted(CONFIG.get("targets") or {})
JOB_FILES = sorted((ROOT / "resources").glob("*.yml"))


def _jobs_in(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text()) or {}
    return list((data.get("resources") or {}).get("jobs") or {})


JOBS = [(p.name, key) for p in JOB_FILES for key in _jobs_in(p)]
#: What a deployer of staging or prod must pass (no default on purpose).
DEPLOY_TIME_VARIABLES = {"service_principal": "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee"}


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> tuple[dict[str, str], set[str]]:
    """Build the wheel once from a copy of the repo: (console_scripts, files in it)."""
    work = tmp_path_factory.mktemp("wheel-build")
    src = work / "repo"
    src.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "src", src / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    out = work / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"wheel build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        files = set(zf.namelist())
        ep_name = next(n for n in files if n.endswith(".dist-info/entry_points.txt"))
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # entry point names are case-sensitive
        parser.read_string(zf.read(ep_name).decode())
    scripts = {k: v.strip() for k, v in parser["console_scripts"].items()}
    return scripts, files


def _publishes_via(
    scripts: Mapping[str, str],
) -> Callable[[runner.TaskDef], tuple[str, ...] | None]:
    def publishes(task: runner.TaskDef) -> tuple[str, ...] | None:
        target = scripts.get(str((task.wheel_task or {}).get("entry_point")))
        if target is None:
            return None
        module = importlib.import_module(target.split(":")[0])
        value = getattr(module, "PUBLISHES", None)
        return tuple(value) if value is not None else None

    return publishes


def _resolved_job(target: str, job_key: str) -> dict[str, Any]:
    return runner.load_bundle(ROOT, target).job(job_key)


def test_there_are_jobs_and_targets_to_check():
    assert JOBS, "no job YAML under resources/"
    assert {"local", "dev", "staging", "prod"} <= set(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("file", "job_key"), JOBS)
def test_job_yaml_loads_into_the_databricks_bundles_job_model(file, job_key, target):
    job = _resolved_job(target, job_key)
    assert job_model_problems(job_key, job) == []


@pytest.mark.parametrize("target", TARGETS)
def test_every_variable_used_is_defined_for_every_target(target):
    assert undefined_variable_problems(CONFIG, target, DEPLOY_TIME_VARIABLES) == []
    # And nothing is left unresolved once the target's values are in.
    for _, job_key in JOBS:
        leftovers = runner.find_var_references(_resolved_job(target, job_key))
        assert leftovers == set(), f"{target}/{job_key}: unresolved {leftovers}"


@pytest.mark.parametrize(("file", "job_key"), JOBS)
def test_every_task_entry_point_resolves_in_the_built_wheel(file, job_key, built_wheel):
    scripts, files = built_wheel
    assert wheel_task_problems(job_key, _resolved_job("local", job_key), scripts, files) == []


@pytest.mark.parametrize(("file", "job_key"), JOBS)
def test_every_task_value_reference_names_an_upstream_task_that_publishes_it(
    file, job_key, built_wheel
):
    scripts, _ = built_wheel
    job = _resolved_job("local", job_key)
    assert task_value_problems(job_key, job, _publishes_via(scripts)) == []


def test_local_is_not_the_default_target_and_prod_runs_as_a_principal_with_permissions():
    assert target_problems(CONFIG) == []


def test_the_runner_reads_the_pipeline_job_from_resources():
    assert ("patronage_pipeline.job.yml", runner.DEFAULT_JOB) in JOBS


def _cluster_spark_conf(target: str) -> dict[str, str]:
    """Every spark_conf entry of the target's job clusters (merged; they must agree)."""
    conf: dict[str, str] = {}
    for _, job_key in JOBS:
        for cluster in _resolved_job(target, job_key).get("job_clusters") or []:
            for key, value in ((cluster.get("new_cluster") or {}).get("spark_conf") or {}).items():
                assert conf.setdefault(key, str(value)) == str(value), (target, key)
    return conf


def test_the_local_session_runs_with_the_job_clusters_spark_conf(spark):
    # The bench measures the local session: it must be tuned as the cluster it stands for.
    confs = {target: _cluster_spark_conf(target) for target in TARGETS}
    assert any(confs.values()), "no target defines a job cluster with spark_conf"
    for target, conf in confs.items():
        for key, value in conf.items():
            assert spark.conf.get(key, None) == value, f"{target}: {key}"


# --------------------------------------------------------------------------
# Negative tests: each checker reports a bad definition
# --------------------------------------------------------------------------


def _pipeline() -> dict[str, Any]:
    return _resolved_job("local", runner.DEFAULT_JOB)


def test_job_model_check_reports_an_unknown_field():
    job = _pipeline()
    job["tasks"][0]["max_retrys"] = 2
    problems = job_model_problems("bad", job)
    assert problems and "max_retrys" in problems[0]


def test_entry_point_check_reports_a_missing_entry_point_and_module():
    job = _pipeline()
    job["tasks"][0]["python_wheel_task"]["entry_point"] = "patronage_nope"
    scripts = {"patronage_identity": "patronage.stages.identity:main"}
    problems = wheel_task_problems("bad", job, scripts, set())
    assert any("'patronage_nope' is not in the wheel" in p for p in problems)
    assert any("patronage/stages/identity.py is not in the wheel" in p for p in problems)


def test_entry_point_check_reports_a_non_wheel_task_and_a_foreign_package():
    job = {
        "tasks": [
            {"task_key": "nb", "notebook_task": {"notebook_path": "x"}},
            {"task_key": "w", "python_wheel_task": {"package_name": "other", "entry_point": "e"}},
        ]
    }
    problems = wheel_task_problems("bad", job, {"e": "other.m:main"}, {"other/m.py"})
    assert any("nb: not a python_wheel_task" in p for p in problems)
    assert any("package_name 'other'" in p for p in problems)


def test_variable_check_reports_an_undeclared_and_an_unset_variable():
    config = copy.deepcopy(CONFIG)
    job = config["resources"]["jobs"][runner.DEFAULT_JOB]
    job["tasks"][0]["python_wheel_task"]["named_parameters"]["x"] = "${var.ghost}"
    config["variables"]["no_default"] = {"description": "set per target"}
    job["description"] = "${var.no_default}"
    problems = undefined_variable_problems(config, "prod")
    assert "${var.ghost} is used but not declared" in problems
    assert "target prod: variable 'no_default' is used but has no value" in problems


def test_task_value_check_reports_non_upstream_unknown_and_unpublished_references():
    job = {
        "tasks": [
            {"task_key": "a", "python_wheel_task": {"entry_point": "ea"}},
            {"task_key": "side", "python_wheel_task": {"entry_point": "es"}},
            {
                "task_key": "b",
                "depends_on": [{"task_key": "a"}],
                "python_wheel_task": {
                    "entry_point": "eb",
                    "named_parameters": {
                        "ok": "{{tasks.a.values.count}}",
                        "not_published": "{{tasks.a.values.nope}}",
                        "not_upstream": "{{tasks.side.values.count}}",
                        "no_task": "{{tasks.ghost.values.count}}",
                    },
                },
            },
        ]
    }

    def publishes(task):
        return ("count",)

    problems = task_value_problems("bad", job, publishes)
    assert len(problems) == 3, problems
    assert any("'a' does not publish 'nope'" in p for p in problems)
    assert any("tasks.side.values.count" in p and "not upstream" in p for p in problems)
    assert any("tasks.ghost.values.count" in p and "names no task" in p for p in problems)


def test_task_value_check_reports_a_stage_without_publishes():
    job = {
        "tasks": [
            {"task_key": "a", "python_wheel_task": {"entry_point": "ea"}},
            {
                "task_key": "b",
                "depends_on": [{"task_key": "a"}],
                "python_wheel_task": {"named_parameters": {"x": "{{tasks.a.values.n}}"}},
            },
        ]
    }
    problems = task_value_problems("bad", job, lambda task: None)
    assert problems and "declares no PUBLISHES" in problems[0]


def test_target_check_reports_local_default_and_prod_without_run_as_or_permissions():
    config = copy.deepcopy(CONFIG)
    config["targets"]["local"]["default"] = True
    del config["targets"]["prod"]["run_as"]
    config["targets"]["prod"]["permissions"] = []
    problems = target_problems(config)
    assert "the local target is the default target" in problems
    assert "prod has no run_as" in problems
    assert "prod has no permissions" in problems
    assert any("exactly one default target" in p for p in problems)

"""The bundle as the real Databricks CLI reads it.

The pinned CLI, built from its Go module by ``tools/databricks-cli/build.sh``,
validates every deploy target with ``--strict`` and deploys dev and prod to the
CLI's own workspace stand-in (``libs/testserver``, served on 127.0.0.1). The
deployed jobs, as ``databricks jobs get`` returns them, are then compared with
what the local runner reads from the same YAML, and the runner's variable
values with the CLI's: one source of truth, two readers that must agree.

The stand-in's ``bundle run`` reports SUCCESS without running the wheel, so
nothing here runs the job: the end-to-end tests do that locally.

Select these tests alone with ``pytest -m databricks_cli``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from patronage import runner

pytestmark = pytest.mark.databricks_cli

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "tools" / "databricks-cli" / "build.sh"
#: The identity the stand-in gives a token starting with "dbapi1": a service principal.
SERVICE_PRINCIPAL = "aaaaaaaa-bbbb-4ccc-dddd-eeeeeeeeeeee"
WHEEL_NAME = "patronage-{}-py3-none-any.whl".format(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
)
#: The SQL warehouse every fake workspace of the stand-in has.
STANDIN_WAREHOUSE_ID = "8ec9edc1-db0c-40df-af8d-7580020fe61e"
DEPLOY_TARGETS = ("dev", "staging", "prod", "prod_uc")
#: The production targets are deployed and run by their service principal (README).
DEPLOYED_BY_SERVICE_PRINCIPAL = {"staging", "prod", "prod_uc"}
#: Deployed to the stand-in: development, classic production, Unity Catalog + serverless.
DEPLOYED = ("dev", "prod", "prod_uc")
DIAGNOSTIC_PREFIXES = ("Error:", "Warning:", "Recommendation:")


# --------------------------------------------------------------------------
# The CLI and the stand-in
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DatabricksCli:
    """The pinned CLI pointed at the stand-in, with one token (one fake workspace)."""

    binary: Path
    host: str
    token: str
    config_file: Path
    extra_env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABRICKS_", "BUNDLE_VAR_", "ARM_", "AZURE_"))
        }
        env.update(
            DATABRICKS_HOST=self.host,
            DATABRICKS_TOKEN=self.token,
            # No profile of the machine's user may leak into the tests.
            DATABRICKS_CONFIG_FILE=str(self.config_file),
            # Deploys through the Jobs API directly; the Terraform engine would
            # download Terraform, which cannot be reached here.
            DATABRICKS_BUNDLE_ENGINE="direct",
        )
        env.update(self.extra_env)
        return env

    def run(
        self, *args: str, cwd: Path = ROOT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"databricks {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def as_identity(self, service_principal: bool) -> DatabricksCli:
        """The same stand-in as a human user or as the service principal (a new workspace)."""
        prefix = "dbapi1" if service_principal else "dbapi0"
        return dataclasses.replace(self, token=f"{prefix}{uuid.uuid4().hex}")


@pytest.fixture(scope="session")
def cli_tools() -> Path:
    """The directory with the built ``databricks`` and ``standin`` binaries."""
    if shutil.which("go") is None and not os.environ.get("PATRONAGE_DATABRICKS_CLI_DIR"):
        message = "Go is not installed: the Databricks CLI is built from its Go module"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message + "; install Go, or run .ci/run")
    if os.environ.get("PATRONAGE_DATABRICKS_CLI_DIR"):
        return Path(os.environ["PATRONAGE_DATABRICKS_CLI_DIR"])
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{BUILD_SCRIPT} failed:\n{proc.stderr}"
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def standin(cli_tools: Path) -> Iterator[str]:
    """The workspace stand-in's base URL, for the whole session."""
    proc = subprocess.Popen(
        [str(cli_tools / "standin")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    first = proc.stdout.readline().split()
    try:
        assert first[:1] == ["URL"] and first[1].startswith("http://127.0.0.1:"), first
        yield first[1]
    finally:
        proc.stdin.close()  # the stand-in stops when its input closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def cli(cli_tools: Path, standin: str, tmp_path_factory) -> DatabricksCli:
    config = tmp_path_factory.mktemp("databrickscfg") / "none.cfg"
    return DatabricksCli(cli_tools / "databricks", standin, "unused", config)


def identity_for(target: str) -> bool:
    return target in DEPLOYED_BY_SERVICE_PRINCIPAL


def deploy_variables(target: str) -> dict[str, str]:
    """What a deployer passes with ``--var``: the service principal where required, and
    the stand-in's SQL warehouse (the bundle looks one up by a name the stand-in lacks)."""
    values = {"warehouse_id": STANDIN_WAREHOUSE_ID}
    if target in DEPLOYED_BY_SERVICE_PRINCIPAL:
        values["service_principal"] = SERVICE_PRINCIPAL
    return values


def var_args(target: str, omit: Sequence[str] = ()) -> list[str]:
    return [
        arg
        for name, value in deploy_variables(target).items()
        if name not in omit
        for arg in ("--var", f"{name}={value}")
    ]


# --------------------------------------------------------------------------
# Checkers: each returns a list of problems (empty = fine)
# --------------------------------------------------------------------------


def dag_problems(jobs: Mapping[str, Any]) -> list[str]:
    """The runner's DAG rules on a reading of the jobs (unknown task, cycle, run_if)."""
    problems = []
    for key, job in sorted(jobs.items()):
        try:
            runner.topological_order(runner.job_tasks(job))
        except runner.RunnerError as exc:
            problems.append(f"job {key}: {exc}")
    return problems


def validate_problems(
    cli: DatabricksCli, bundle_dir: Path, target: str, extra: Sequence[str] = ()
) -> list[str]:
    """What ``bundle validate --strict`` reports, plus the DAG rules on the CLI's own reading.

    The CLI does not check that a task's ``depends_on`` names a task of the
    job; the runner's rules, applied to the configuration as the CLI resolved
    it, do.
    """
    proc = cli.run(
        "bundle", "validate", "--strict", "-t", target, "-o", "json", *extra,
        cwd=bundle_dir, check=False,
    )  # fmt: skip
    problems = [
        line.strip() for line in proc.stderr.splitlines() if line.startswith(DIAGNOSTIC_PREFIXES)
    ]
    if proc.returncode != 0:
        problems.append(f"bundle validate exited {proc.returncode}")
    try:
        resolved = json.loads(proc.stdout)
    except ValueError:
        return [*problems, "bundle validate printed no configuration"]
    problems += dag_problems((resolved.get("resources") or {}).get("jobs") or {})
    return problems


def job_contract(job: Mapping[str, Any]) -> dict[str, Any]:
    """What both the Jobs service and the local runner act on, in one comparable shape."""
    tasks = {}
    for task in job.get("tasks") or []:
        wheel = task.get("python_wheel_task") or {}
        tasks[task["task_key"]] = {
            "depends_on": sorted(d["task_key"] for d in task.get("depends_on") or []),
            "run_if": task.get("run_if") or "ALL_SUCCESS",
            "package_name": wheel.get("package_name"),
            "entry_point": wheel.get("entry_point"),
            "named_parameters": wheel.get("named_parameters"),
        }
    notifications = job.get("email_notifications") or {}
    return {
        "tasks": tasks,
        "parameters": {p["name"]: p.get("default") for p in job.get("parameters") or []},
        "schedule": job.get("schedule"),
        "email_notifications": {k: v for k, v in notifications.items() if v},
    }


def bundle_copy(dest: Path) -> Path:
    """The bundle's files as git sees them, copied to ``dest``.

    Deploying from a copy keeps the CLI's local deployment state (``.databricks/``)
    and the built wheel out of the working tree.
    """
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def broken_copy(tmp_path: Path, edit_file: str, old: str, new: str) -> Path:
    """A copy of the bundle with one deliberate mistake in ``edit_file``."""
    copy_dir = bundle_copy(tmp_path / "bundle")
    path = copy_dir / edit_file
    text = path.read_text()
    assert old in text, f"{edit_file} no longer contains {old!r}; update the test"
    path.write_text(text.replace(old, new, 1))
    return copy_dir


# --------------------------------------------------------------------------
# The product's bundle, as the CLI reads it
# --------------------------------------------------------------------------


@pytest.mark.parametrize("target", DEPLOY_TARGETS)
def test_bundle_validates_strictly_with_no_warning_or_recommendation(cli, target):
    cli = cli.as_identity(service_principal=identity_for(target))
    assert validate_problems(cli, ROOT, target, var_args(target)) == []


@pytest.mark.parametrize("target", sorted(DEPLOYED_BY_SERVICE_PRINCIPAL))
def test_a_production_target_without_its_service_principal_is_refused_clearly(cli, target):
    cli = cli.as_identity(service_principal=True)
    problems = validate_problems(cli, ROOT, target, var_args(target, omit=["service_principal"]))
    assert any("no value assigned to required variable service_principal" in p for p in problems), (
        problems
    )


def test_a_production_target_deployed_by_someone_else_is_refused(cli):
    # A person deploying prod would own the dashboard while the job runs as the
    # principal, and would not be in the permissions: the CLI refuses.
    human = cli.as_identity(service_principal=False)
    problems = validate_problems(human, ROOT, "prod", var_args("prod"))
    assert any("run_as" in p or "current deployment identity" in p for p in problems), problems


@pytest.mark.parametrize(
    ("edit_file", "old", "new", "expected"),
    [
        pytest.param(
            "databricks.yml", "level: CAN_RUN", "level: CAN_MANAGE_RUN",
            "invalid permission level", id="invalid-permission-level",
        ),
        pytest.param(
            "resources/patronage_pipeline.job.yml", "      max_concurrent_runs: 1\n",
            "      max_concurrent_runs: 1\n      max_concurent_runs: 1\n",
            "unknown field: max_concurent_runs", id="unknown-key",
        ),
        pytest.param(
            "resources/patronage_pipeline.job.yml", "            - task_key: edipi_backfill\n",
            "            - task_key: edipi_backfil\n",
            "depends on unknown task 'edipi_backfil'", id="missing-upstream-task",
        ),
    ],
)  # fmt: skip
def test_a_deliberately_broken_copy_fails_validation(cli, tmp_path, edit_file, old, new, expected):
    bundle_dir = broken_copy(tmp_path, edit_file, old, new)
    cli = cli.as_identity(service_principal=True)
    problems = validate_problems(cli, bundle_dir, "prod", var_args("prod"))
    assert any(expected in p for p in problems), problems
    # The unbroken copy passes, so it is the edit that the check caught.
    clean_dir = broken_copy(tmp_path / "clean", edit_file, old, old)
    assert validate_problems(cli, clean_dir, "prod", var_args("prod")) == []


@pytest.mark.parametrize("target", ["local", *DEPLOY_TARGETS])
def test_the_runner_resolves_every_variable_as_the_cli_does(cli, target):
    cli = cli.as_identity(service_principal=identity_for(target))
    proc = cli.run("bundle", "validate", "-t", target, "-o", "json", *var_args(target))
    by_cli = {
        name: spec.get("value") for name, spec in json.loads(proc.stdout)["variables"].items()
    }
    by_runner = runner.load_bundle(ROOT, target, variables=deploy_variables(target)).variables
    assert by_runner == by_cli


# --------------------------------------------------------------------------
# Deployed: the Jobs service's reading against the runner's
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Deployment:
    target: str
    cli: DatabricksCli
    job_ids: dict[str, str]
    dashboard_ids: dict[str, str]

    def job(self, key: str) -> dict[str, Any]:
        proc = self.cli.run("jobs", "get", self.job_ids[key], "-o", "json")
        return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def deployments(cli, tmp_path_factory) -> dict[str, Deployment]:
    bundle_dir = bundle_copy(tmp_path_factory.mktemp("deploy"))
    # `make wheel` in the copy uses the project's environment; were it out of date
    # with pyproject.toml, make would reinstall it from the copy. Refuse instead.
    checksum = subprocess.run(
        ["cksum", "pyproject.toml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()[0]
    if not (ROOT / ".venv" / f".installed-{checksum}").exists():
        pytest.fail(".venv is out of date with pyproject.toml: run `make install` first")
    out = {}
    for target in DEPLOYED:
        as_target = cli.as_identity(service_principal=identity_for(target))
        # `make wheel` builds in the copy with the project's own environment.
        as_target = dataclasses.replace(as_target, extra_env={"VENV": str(ROOT / ".venv")})
        as_target.run("bundle", "deploy", "-t", target, *var_args(target), cwd=bundle_dir)
        summary = as_target.run(
            "bundle", "summary", "-t", target, "-o", "json", *var_args(target), cwd=bundle_dir
        )
        resources = json.loads(summary.stdout)["resources"]
        out[target] = Deployment(
            target,
            as_target,
            {k: str(v["id"]) for k, v in resources["jobs"].items()},
            {k: str(v["id"]) for k, v in resources["dashboards"].items()},
        )
    return out


JOB_KEYS = sorted(
    key
    for path in (ROOT / "resources").glob("*.yml")
    for key in ((yaml.safe_load(path.read_text()) or {}).get("resources") or {}).get("jobs") or {}
)


@pytest.mark.parametrize("job_key", JOB_KEYS)
@pytest.mark.parametrize("target", DEPLOYED)
def test_the_deployed_job_is_the_job_the_local_runner_runs(deployments, target, job_key):
    deployed = deployments[target].job(job_key)
    bundle = runner.load_bundle(ROOT, target, variables=deploy_variables(target))
    assert job_contract(deployed["settings"]) == job_contract(bundle.job(job_key))
    assert dag_problems({job_key: deployed["settings"]}) == []


@pytest.mark.parametrize("job_key", JOB_KEYS)
def test_prod_runs_unpaused_as_its_service_principal_and_dev_paused_as_its_deployer(
    deployments, job_key
):
    prod = deployments["prod"].job(job_key)
    assert prod["settings"]["schedule"]["pause_status"] == "UNPAUSED"
    assert prod["settings"]["run_as"] == {"service_principal_name": SERVICE_PRINCIPAL}
    assert prod["run_as_user_name"] == SERVICE_PRINCIPAL
    bundle = runner.load_bundle(ROOT, "prod", variables=deploy_variables("prod"))
    assert bundle.target_setting("run_as") == prod["settings"]["run_as"]

    dev = deployments["dev"].job(job_key)
    assert dev["settings"]["schedule"]["pause_status"] == "PAUSED"
    assert dev["run_as_user_name"] == "tester@databricks.com"
    on_failure = dev["settings"]["email_notifications"]["on_failure"]
    assert on_failure == ["patronage-oncall@example.va.gov"]


@pytest.mark.parametrize("target", DEPLOYED)
def test_the_operations_dashboard_deploys_with_every_dataset_on_the_target_schema(
    deployments, target
):
    deployment = deployments[target]
    assert set(deployment.dashboard_ids) == {"patronage_operations"}
    proc = deployment.cli.run(
        "lakeview", "get", deployment.dashboard_ids["patronage_operations"], "-o", "json"
    )
    deployed = json.loads(proc.stdout)
    assert deployed["warehouse_id"] == STANDIN_WAREHOUSE_ID
    shipped = json.loads((ROOT / "resources" / "patronage_operations.lvdash.json").read_text())
    datasets = json.loads(deployed["serialized_dashboard"])["datasets"]
    assert [d["name"] for d in datasets] == [d["name"] for d in shipped["datasets"]]


@pytest.mark.parametrize("job_key", JOB_KEYS)
def test_classic_targets_run_on_a_job_cluster_with_the_wheel_as_a_library(deployments, job_key):
    settings = deployments["prod"].job(job_key)["settings"]
    assert [c["new_cluster"]["spark_version"] for c in settings["job_clusters"]] == [
        "17.3.x-scala2.13"
    ]
    assert not settings.get("environments")
    for task in settings["tasks"]:
        assert task["job_cluster_key"] == settings["job_clusters"][0]["job_cluster_key"]
        assert [lib["whl"].rsplit("/", 1)[-1] for lib in task["libraries"]] == [WHEEL_NAME]
        assert not task.get("environment_key")


@pytest.mark.parametrize("job_key", JOB_KEYS)
def test_the_unity_catalog_target_runs_serverless_with_the_wheel_in_its_environment(
    deployments, job_key
):
    settings = deployments["prod_uc"].job(job_key)["settings"]
    assert not settings.get("job_clusters")
    (environment,) = settings["environments"]
    dependencies = environment["spec"]["dependencies"]
    assert [d.rsplit("/", 1)[-1] for d in dependencies] == [WHEEL_NAME]
    for task in settings["tasks"]:
        assert task["environment_key"] == environment["environment_key"]
        assert not task.get("job_cluster_key") and not task.get("libraries")
        assert not task.get("new_cluster") and not task.get("existing_cluster_id")


def test_the_unity_catalog_target_creates_its_schema_and_volume_for_engineers_only(deployments):
    deployment = deployments["prod_uc"]
    bundle = runner.load_bundle(ROOT, "prod_uc", variables=deploy_variables("prod_uc"))
    catalog, schema = bundle.variables["catalog"], bundle.variables["schema"]
    found = json.loads(
        deployment.cli.run("schemas", "get", f"{catalog}.{schema}", "-o", "json").stdout
    )
    assert found["full_name"] == f"{catalog}.{schema}"
    volume = json.loads(
        deployment.cli.run(
            "volumes", "read", f"{catalog}.{schema}.dmdc_exports", "-o", "json"
        ).stdout
    )
    assert volume["volume_type"] == "MANAGED"
    assert bundle.variables["export_dir"].startswith(f"/Volumes/{catalog}/{schema}/dmdc_exports/")
    grants = json.loads(
        deployment.cli.run("grants", "get", "schema", f"{catalog}.{schema}", "-o", "json").stdout
    )
    assert {g["principal"] for g in grants.get("privilege_assignments", [])} == {
        "patronage-engineers"
    }


def test_the_unity_catalog_target_gives_operators_a_schema_of_views_only(deployments):
    deployment = deployments["prod_uc"]
    bundle = runner.load_bundle(ROOT, "prod_uc", variables=deploy_variables("prod_uc"))
    catalog, schema = bundle.variables["catalog"], bundle.variables["schema"]
    ops = bundle.variables["ops_schema"]
    assert ops and ops != schema
    found = json.loads(
        deployment.cli.run("schemas", "get", f"{catalog}.{ops}", "-o", "json").stdout
    )
    assert found["full_name"] == f"{catalog}.{ops}"
    grants = json.loads(
        deployment.cli.run("grants", "get", "schema", f"{catalog}.{ops}", "-o", "json").stdout
    )
    privileges = {
        g["principal"]: sorted(g["privileges"]) for g in grants.get("privilege_assignments", [])
    }
    assert privileges == {
        "patronage-engineers": ["ALL_PRIVILEGES"],
        "patronage-operators": ["SELECT", "USE_SCHEMA"],
    }
    # finalize is told where to put the views; every other target makes none.
    for key in JOB_KEYS:
        for task in deployment.job(key)["settings"]["tasks"]:
            assert task["python_wheel_task"]["named_parameters"]["ops_schema"] == ops
    for target in ("dev", "staging", "prod", "local"):
        variables = deploy_variables(target) if target != "local" else None
        assert runner.load_bundle(ROOT, target, variables=variables).variables["ops_schema"] == ""


# --------------------------------------------------------------------------
# The workspace side: `patronage status/repair/preflight --target` on the deployed job
# --------------------------------------------------------------------------

#: A task of the pipeline fails; what a repair must re-run is it and all after it.
FAILED_INGEST_CG = {
    "ingest_cg": "FAILED", "merge": "UPSTREAM_FAILED", "edipi_backfill": "UPSTREAM_FAILED",
    "dmdc_export": "UPSTREAM_FAILED", "backup": "UPSTREAM_FAILED", "finalize": "FAILED",
}  # fmt: skip
AFTER_INGEST_CG = ["ingest_cg", "merge", "edipi_backfill", "dmdc_export", "backup", "finalize"]


def _workspace(deployment: Deployment) -> Any:
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=deployment.cli.host, token=deployment.cli.token)


def _patronage(deployment: Deployment, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`patronage <args> --target <t>` in-process, authenticated by the environment."""
    from patronage import cli as patronage_cli

    for name, value in deployment.cli.env().items():
        if name.startswith("DATABRICKS_"):
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    # The deployment's own --var first: a test's --var after them wins.
    code = patronage_cli.main([args[0], "--target", deployment.target, "--bundle-dir", str(ROOT),
                               *var_args(deployment.target), *args[1:]])  # fmt: skip
    return code, capsys.readouterr().out


def _end_run(w: Any, run_id: int, states: Mapping[str, str]) -> None:
    """Stand-in only: end the run with these task result states (the rest SUCCESS)."""
    w.api_client.do("POST", "/api/2.2/standin/runs/set-task-states",
                    body={"run_id": run_id, "states": dict(states)})  # fmt: skip


def _attempts(w: Any, run_id: int) -> dict[str, int]:
    run = w.jobs.get_run(run_id=run_id, include_history=True)
    return {t.task_key: t.attempt_number or 0 for t in run.tasks}


def test_repair_reruns_the_failed_task_and_everything_after_it_on_the_latest_repair(
    deployments, monkeypatch, capsys
):
    deployment = deployments["dev"]
    w = _workspace(deployment)
    run_id = w.jobs.run_now(job_id=int(deployment.job_ids["patronage_pipeline"])).run_id
    _end_run(w, run_id, FAILED_INGEST_CG)

    code, out = _patronage(deployment, monkeypatch, capsys, "repair", "--run-id", str(run_id))
    assert code == 0, out
    assert f"run {run_id}: re-ran {', '.join(AFTER_INGEST_CG)} (repair " in out
    assert out.splitlines()[-1] == f"run {run_id} SUCCESS"
    attempts = _attempts(w, run_id)
    assert {k for k, n in attempts.items() if n == 1} == set(AFTER_INGEST_CG)
    assert {k for k, n in attempts.items() if n == 0} == {"discover", "identity", "ingest_scd"}

    # A second failure of the repaired run: a timed-out backup. The repair must name
    # the first repair as the latest (the API refuses it otherwise) and re-run
    # backup and finalize only; the default run is the job's latest.
    _end_run(w, run_id, {"backup": "TIMEDOUT", "finalize": "FAILED"})
    code, out = _patronage(deployment, monkeypatch, capsys, "repair")
    assert code == 0, out
    attempts = _attempts(w, run_id)
    assert {k for k, n in attempts.items() if n == 2} == {"backup", "finalize"}
    assert {k for k, n in attempts.items() if n == 1} == set(AFTER_INGEST_CG) - {
        "backup", "finalize"}
    history = w.jobs.get_run(run_id=run_id, include_history=True).repair_history
    assert [h.type.value for h in history] == ["ORIGINAL", "REPAIR", "REPAIR"]

    code, out = _patronage(deployment, monkeypatch, capsys, "status", "--format", "json",
                           "--runs", "3")  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    assert report["tables"] is None and "workspace" in report["tables_skipped"]
    ws = report["workspace"]
    assert ws["job_name"] == "[dev tester] patronage_pipeline"
    assert ws["schedule_pause_status"] == "PAUSED"
    (latest,) = [r for r in ws["runs"] if r["run_id"] == run_id]
    assert latest["state"] == "SUCCESS" and latest["repairs"] == 2
    assert latest["tasks"]["backup"] == {"state": "SUCCESS", "attempt": 2}
    code, out = _patronage(deployment, monkeypatch, capsys, "status")
    assert "Workspace job '[dev tester] patronage_pipeline'" in out and "SUCCESS #2" in out


def test_repair_of_a_run_without_failures_changes_nothing(deployments, monkeypatch, capsys):
    deployment = deployments["prod"]
    w = _workspace(deployment)
    run_id = w.jobs.run_now(job_id=int(deployment.job_ids["patronage_pipeline"])).run_id
    _end_run(w, run_id, {})
    code, out = _patronage(deployment, monkeypatch, capsys, "repair", "--run-id", str(run_id))
    assert code == 0 and "nothing to repair" in out
    assert set(_attempts(w, run_id).values()) == {0}


def test_preflight_checks_the_deployed_job_and_skips_what_it_cannot_see(
    deployments, monkeypatch, capsys
):
    code, out = _patronage(deployments["dev"], monkeypatch, capsys, "preflight")
    lines = out.splitlines()
    assert code == 0, out
    assert "PASS  job: deployed as '[dev tester] patronage_pipeline'" in out
    assert "PASS  schedule: pause status PAUSED, the target's is PAUSED" in lines
    assert ("PASS  run as: runs as tester@databricks.com; the target runs as its deployer "
            "(tester@databricks.com)") in lines  # fmt: skip
    # The stand-in has no DBFS API: SKIP with the reason, never a PASS.
    assert [line for line in lines if "dbfs:/" in line and not line.startswith("SKIP")] == []
    assert "SKIP  export_dir dbfs:/mnt/ci-patronage/dev/dmdc_extracts/combined_export: " \
           "cannot be checked here: the workspace does not serve the DBFS API" in lines

    code, out = _patronage(deployments["dev"], monkeypatch, capsys, "preflight",
                           "--var", "schedule_pause_status=UNPAUSED")  # fmt: skip
    assert code == 1 and "FAIL  schedule: pause status PAUSED, the target's is UNPAUSED" in out

    other = "bbbbbbbb-cccc-4ddd-eeee-ffffffffffff"
    code, out = _patronage(deployments["prod"], monkeypatch, capsys, "preflight",
                           "--var", f"service_principal={other}")  # fmt: skip
    assert code == 1
    assert f"FAIL  run as: runs as {SERVICE_PRINCIPAL}; the target's run_as is {other}" in out


def test_preflight_finds_the_unity_catalog_volumes(deployments, monkeypatch, capsys):
    deployment = deployments["prod_uc"]
    bundle = runner.load_bundle(ROOT, "prod_uc", variables=deploy_variables("prod_uc"))
    code, out = _patronage(deployment, monkeypatch, capsys, "preflight")
    assert code == 1
    assert f"FAIL  inbound_scd_dir {bundle.variables['inbound_scd_dir']}: does not exist" in out
    # The export directory's volume is a bundle resource: it exists, the directory comes later.
    assert (f"PASS  export_dir {bundle.variables['export_dir']}: absent; volume "
            "patronage.patronage.dmdc_exports exists") in out  # fmt: skip
    assert f"SKIP  backup_dir {bundle.variables['backup_dir']}: not a workspace path" in out

    w = _workspace(deployment)
    for setting in deployment_inputs():
        w.files.create_directory(bundle.variables[setting])
    seed = bundle.variables["cg_seed_file"]
    import io

    w.files.upload(seed, io.BytesIO(b"header\n"), overwrite=True)
    code, out = _patronage(deployment, monkeypatch, capsys, "preflight")
    assert code == 0, out
    assert f"PASS  cg_seed_file {seed}: exists (Files API)" in out


def deployment_inputs() -> tuple[str, ...]:
    from patronage import deployment

    return deployment.INPUT_DIRS

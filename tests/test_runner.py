"""The local runner runs the bundle's job the way Databricks Jobs would.

ARCHITECTURE.md "Local runtime": the DAG is read from resources/, tasks run in
dependency order with run_if semantics, ``${var.*}`` and ``{{...}}`` references
are resolved, a task-level repair keeps the run id and the succeeded tasks'
values, and the exit status is non-zero whenever a task failed.

The Spark tests use a tiny bundle (tests/bundle_fixtures/tiny) whose entry
points are test stages built with the product's own ``task.entry_point``, so
they publish real task values to the real run-state table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import types
import uuid
from pathlib import Path

import pytest

from patronage import cli, runner
from patronage.runner import (
    EXCLUDED,
    FAILED,
    SUCCESS,
    SUCCESS_WITH_FAILURES,
    UPSTREAM_FAILED,
    RunContext,
    RunnerError,
    TaskDef,
)

TINY = Path(__file__).parent / "bundle_fixtures" / "tiny"
PRODUCT = Path(__file__).resolve().parents[1]


def _task(key: str, *deps: str, run_if: str = "ALL_SUCCESS") -> TaskDef:
    return TaskDef(key, tuple(deps), run_if, {"task_key": key})


# --------------------------------------------------------------------------
# Order and run_if (no Spark)
# --------------------------------------------------------------------------


def test_tasks_run_in_dependency_order_ties_by_yaml_order():
    tasks = [
        _task("merge", "ingest_scd", "ingest_cg"),
        _task("ingest_cg", "discover", "identity"),
        _task("identity"),
        _task("ingest_scd", "discover", "identity"),
        _task("discover"),
    ]
    order = [t.key for t in runner.topological_order(tasks)]
    assert order == ["identity", "discover", "ingest_cg", "ingest_scd", "merge"]


def test_a_dependency_cycle_is_an_error():
    with pytest.raises(RunnerError, match="cycle"):
        runner.topological_order([_task("a", "b"), _task("b", "a")])


def test_unknown_dependency_is_an_error():
    job = {"tasks": [{"task_key": "a", "depends_on": [{"task_key": "ghost"}]}]}
    with pytest.raises(RunnerError, match="unknown task 'ghost'"):
        runner.job_tasks(job)


@pytest.mark.parametrize(
    ("run_if", "deps", "expected"),
    [
        ("ALL_SUCCESS", [SUCCESS, SUCCESS], None),
        ("ALL_SUCCESS", [SUCCESS, FAILED], UPSTREAM_FAILED),
        ("ALL_SUCCESS", [UPSTREAM_FAILED], UPSTREAM_FAILED),
        ("ALL_SUCCESS", [SUCCESS, EXCLUDED], None),  # excluded counts as succeeded
        ("ALL_DONE", [FAILED], None),
        ("ALL_DONE", [UPSTREAM_FAILED, SUCCESS], None),
        ("NONE_FAILED", [SUCCESS, EXCLUDED], None),
        ("NONE_FAILED", [SUCCESS, FAILED], UPSTREAM_FAILED),
        ("AT_LEAST_ONE_SUCCESS", [FAILED, SUCCESS], None),
        ("AT_LEAST_ONE_SUCCESS", [FAILED, UPSTREAM_FAILED], UPSTREAM_FAILED),
        ("ALL_FAILED", [FAILED, UPSTREAM_FAILED], None),
        ("ALL_FAILED", [FAILED, SUCCESS], EXCLUDED),
        ("AT_LEAST_ONE_FAILED", [FAILED, SUCCESS], None),
        ("AT_LEAST_ONE_FAILED", [SUCCESS], EXCLUDED),
        ("ALL_DONE", [EXCLUDED, EXCLUDED], EXCLUDED),  # all deps excluded: excluded
    ],
)
def test_run_if_follows_databricks_rules(run_if, deps, expected):
    assert runner.run_if_verdict(run_if, deps) == expected


def test_job_status_is_failed_only_when_a_leaf_failed():
    tasks = [_task("a"), _task("b", "a"), _task("fin", "b", run_if="ALL_DONE")]
    assert runner.job_status(tasks, {"a": SUCCESS, "b": SUCCESS, "fin": SUCCESS}) == SUCCESS
    partial = {"a": FAILED, "b": UPSTREAM_FAILED, "fin": SUCCESS}
    assert runner.job_status(tasks, partial) == SUCCESS_WITH_FAILURES
    assert runner.job_status(tasks, {"a": SUCCESS, "b": SUCCESS, "fin": FAILED}) == FAILED


def test_downstream_of_a_failed_task_is_everything_after_it():
    tasks = [_task("a"), _task("x"), _task("b", "a"), _task("c", "b", "x"), _task("y", "x")]
    assert runner.downstream(tasks, {"b"}) == {"b", "c"}


# --------------------------------------------------------------------------
# Variables and {{...}} references (no Spark)
# --------------------------------------------------------------------------


def test_local_variables_resolve_through_state_dir(tmp_path):
    bundle = runner.load_bundle(TINY, "local", {"schema": "s1"}, tmp_path / "st")
    state = (tmp_path / "st").resolve()
    assert bundle.variables["state_dir"] == str(state)
    # inbound_scd_dir -> ${var.landing_root}/scd -> ${var.state_dir}/landing/scd
    assert bundle.variables["inbound_scd_dir"] == f"{state}/landing/scd"
    assert bundle.variables["export_dir"] == f"{state}/export/tiny-local"
    assert bundle.variables["schema"] == "s1"  # --var beats default


def test_target_overrides_defaults_and_var_overrides_target(tmp_path):
    dev = runner.load_bundle(TINY, "dev", {}, tmp_path)
    assert dev.variables["export_dir"] == "/nowhere/export"
    local = runner.load_bundle(TINY, "local", {"export_dir": "/x"}, tmp_path)
    assert local.variables["export_dir"] == "/x"


def test_unknown_var_target_and_state_dir_var_are_errors(tmp_path):
    with pytest.raises(RunnerError, match="no such variable"):
        runner.load_bundle(TINY, "local", {"nope": "1"}, tmp_path)
    with pytest.raises(RunnerError, match="target 'qa' is not defined"):
        runner.load_bundle(TINY, "qa", {}, tmp_path)
    with pytest.raises(RunnerError, match="--state-dir"):
        runner.load_bundle(TINY, "local", {"state_dir": "/x"}, tmp_path)


def test_variable_cycle_is_an_error(tmp_path):
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: c}\nvariables:\n  a: {default: '${var.b}'}\n  b: {default: '${var.a}'}\n"
        "targets: {local: {}}\n"
    )
    with pytest.raises(RunnerError, match="cycle"):
        runner.load_bundle(tmp_path, "local")


def test_product_job_yaml_anchors_give_every_task_the_same_parameters(tmp_path):
    bundle = runner.load_bundle(PRODUCT, "local", {}, tmp_path)
    tasks = runner.job_tasks(bundle.job(runner.DEFAULT_JOB))
    named = [t.wheel_task["named_parameters"] for t in tasks]
    assert len(tasks) >= 2
    assert all(n["catalog"] == "spark_catalog" for n in named)
    assert named[0]["inbound_scd_dir"] == f"{tmp_path.resolve()}/landing/scd"


def _ctx(**params: str) -> RunContext:
    start = dt.datetime(2024, 3, 5, 6, 7, 8, 900000, tzinfo=dt.UTC)
    return RunContext(1234567890123, "tiny_job", "tiny job", start, dict(params))


def test_dynamic_references_resolve_like_databricks():
    ctx = _ctx(run_date="2024-03-01")
    text = (
        "{{job.run_id}}|{{ job.parameters.run_date }}|{{job.start_time.iso_date}}|"
        "{{job.start_time.iso_datetime}}|{{job.start_time.year}}-{{job.start_time.month}}-"
        "{{job.start_time.day}}|{{job.start_time.timestamp_ms}}|{{other.thing}}"
    )
    out = runner.resolve_dynamic(text, ctx, "a")
    assert out == (
        "1234567890123|2024-03-01|2024-03-05|2024-03-05T06:07:08|2024-03-05|"
        f"{int(ctx.start_time.timestamp() * 1000)}|{{{{other.thing}}}}"
    )


def test_unknown_reference_in_a_known_namespace_is_an_error():
    with pytest.raises(RunnerError, match="no parameter 'nope'"):
        runner.resolve_dynamic("{{job.parameters.nope}}", _ctx(), "a")
    with pytest.raises(RunnerError, match="job.start_time.century"):
        runner.resolve_dynamic("{{job.start_time.century}}", _ctx(), "a")


def test_job_parameters_defaults_param_and_run_date():
    job = {"parameters": [{"name": "run_date", "default": ""}, {"name": "mode", "default": "u"}]}
    assert runner.job_parameters(job) == {"run_date": "", "mode": "u"}
    assert runner.job_parameters(job, {"mode": "r"}, "2024-01-31") == {
        "run_date": "2024-01-31",
        "mode": "r",
    }
    with pytest.raises(RunnerError, match="no such parameter"):
        runner.job_parameters(job, {"bogus": "1"})
    with pytest.raises(RunnerError, match="YYYY-MM-DD"):
        runner.job_parameters(job, {}, "31/01/2024")


def test_task_values_reference_reads_upstream_values_and_fails_when_missing(monkeypatch):
    tasks = [_task("a"), _task("b", "a"), _task("z")]
    published = {"a": {"token": "t-1", "count": 3, "due": True}}
    monkeypatch.setattr(runner, "read_values", lambda *a: published)
    get = runner._values_getter(None, tasks, tasks[1], "spark_catalog", "s", 7)
    out = runner.resolve_dynamic(
        "{{tasks.a.values.token}}/{{tasks.a.values.count}}/{{tasks.a.values.due}}", _ctx(), "b", get
    )
    assert out == "t-1/3/true"
    with pytest.raises(RunnerError, match="published no value 'missing'"):
        get("a", "missing")
    with pytest.raises(RunnerError, match="not upstream"):
        get("z", "token")


def test_task_argv_is_the_wheel_named_parameters(tmp_path):
    bundle = runner.load_bundle(TINY, "local", {"schema": "s1"}, tmp_path)
    tasks = {t.key: t for t in runner.job_tasks(bundle.job("tiny_job"))}
    argv = runner.task_argv(tasks["a"], _ctx(run_date="2024-03-01", processing_mode="update"))
    assert "--run_id=1234567890123" in argv
    assert "--run_date=2024-03-01" in argv
    assert "--job_start_date=2024-03-05" in argv
    assert "--schema=s1" in argv
    assert all(a.startswith("--") and "=" in a for a in argv)


def test_entry_point_resolves_from_installed_metadata():
    assert runner.load_entry_point("patronage", "patronage") is cli.main
    with pytest.raises(RunnerError, match="not declared"):
        runner.load_entry_point("patronage", "patronage_no_such_task")


# --------------------------------------------------------------------------
# Real runs of the tiny bundle (Spark + Delta)
# --------------------------------------------------------------------------

#: Which test stages should fail; the repair test clears it.
FAIL: set[str] = set()
CALLS: list[tuple[str, str]] = []
SEEN: dict[str, object] = {}


def _stage(key: str):
    def run(ctx) -> dict:
        CALLS.append((key, ctx.settings.run_id))
        if key in FAIL:
            raise ValueError(f"stage {key} failed on purpose\nsecond line")
        if key == "a":
            return {"token": f"token-{ctx.settings.run_id}", "count": 3}
        if key == "b":
            SEEN["b.confirm_rebuild"] = ctx.settings.confirm_rebuild
            SEEN["b.run_date"] = ctx.settings.run_date
            SEEN["b.job_start_date"] = ctx.settings.job_start_date
            SEEN["b.inbound_scd_dir"] = ctx.settings.inbound_scd_dir
            return {"seen": ctx.settings.confirm_rebuild}
        return {"done": True}

    return run


def _resolver(package_name, name):
    from patronage.task import entry_point

    key = name.removeprefix("tiny_")
    return entry_point(key, _stage(key))


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def tiny(spark, tmp_path_factory):
    """One failing run of the tiny job, then its repair, through the CLI."""
    base = tmp_path_factory.mktemp("tiny-run")
    state = base / "state"
    schema = "t_" + uuid.uuid4().hex[:12]
    common = ["--bundle-dir", str(TINY), "--state-dir", str(state), "--job", "tiny_job"]
    common += ["--var", f"schema={schema}"]
    res = types.SimpleNamespace(state=state, schema=schema, common=common)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "load_entry_point", _resolver)
        CALLS.clear()
        FAIL.clear()
        FAIL.add("b")
        res.run_code, res.run_out = _cli(
            "run", *common, "--run-date", "2024-05-06", "--summary-json", str(base / "run.json")
        )
        res.run_calls = list(CALLS)
        res.run_summary = json.loads((base / "run.json").read_text())
        res.run_record = runner.load_record(state)
        FAIL.clear()
        CALLS.clear()
        res.repair_code, res.repair_out = _cli(
            "repair",
            "--state-dir",
            str(state),
            "--summary-json",
            str(base / "repair.json"),
        )
        res.repair_calls = list(CALLS)
        res.repair_summary = json.loads((base / "repair.json").read_text())
        res.repair_record = runner.load_record(state)
        res.seen = dict(SEEN)
        CALLS.clear()
        res.task_code, res.task_out = _cli("task", "c", *common, "--run-id", "latest")
        res.task_calls = list(CALLS)
        res.task_record = runner.load_record(state)
    return res


def test_failed_task_skips_its_downstream_and_all_done_still_runs(tiny):
    statuses = {k: v["status"] for k, v in tiny.run_record["tasks"].items()}
    assert statuses == {"a": SUCCESS, "b": FAILED, "c": UPSTREAM_FAILED, "d": SUCCESS}
    assert [k for k, _ in tiny.run_calls] == ["a", "b", "d"]
    assert tiny.run_record["tasks"]["b"]["error"] == "ValueError: stage b failed on purpose"
    assert tiny.run_record["status"] == SUCCESS_WITH_FAILURES


def test_run_exits_nonzero_when_any_task_failed(tiny):
    assert tiny.run_code == 1
    lines = tiny.run_out.strip().splitlines()
    assert [ln.split()[0] for ln in lines[:4]] == ["a", "b", "c", "d"]
    assert lines[-1] == f"run {tiny.run_record['run_id']} {SUCCESS_WITH_FAILURES}"


def test_summary_json_has_status_and_published_values(tiny):
    s = tiny.run_summary
    assert s["run_id"] == tiny.run_record["run_id"]
    assert s["status"] == SUCCESS_WITH_FAILURES
    assert s["tasks"]["a"]["status"] == SUCCESS
    assert s["tasks"]["a"]["values"]["token"] == f"token-{s['run_id']}"
    assert s["tasks"]["a"]["values"]["count"] == 3
    assert s["tasks"]["b"]["values"]["task_status"] == "FAILED"
    assert s["tasks"]["c"] == {"status": UPSTREAM_FAILED, "values": {}}


def test_every_task_gets_the_run_id_and_resolved_parameters(tiny):
    run_id = str(tiny.run_record["run_id"])
    assert {rid for _, rid in tiny.run_calls} == {run_id}
    assert tiny.run_record["parameters"] == {"run_date": "2024-05-06", "processing_mode": "update"}
    assert tiny.seen["b.run_date"] == dt.date(2024, 5, 6)
    start = dt.datetime.fromisoformat(tiny.run_record["start_time"])
    assert tiny.seen["b.job_start_date"] == start.astimezone(dt.UTC).date()
    assert tiny.seen["b.inbound_scd_dir"] == f"{tiny.state.resolve()}/landing/scd"


def test_run_record_is_written_and_latest_points_at_it(tiny):
    rid = tiny.run_record["run_id"]
    assert (tiny.state / "runs" / f"{rid}.json").is_file()
    assert runner.latest_run_id(tiny.state) == str(rid)
    rec = tiny.run_record
    assert rec["job"] == "tiny_job" and rec["target"] == "local"
    assert set(rec["tasks"]["a"]) >= {"status", "duration_seconds", "error"}


def test_repair_reruns_only_the_failed_task_and_its_downstream(tiny):
    assert [k for k, _ in tiny.repair_calls] == ["b", "c", "d"]
    assert tiny.repair_code == 0
    statuses = {k: v["status"] for k, v in tiny.repair_record["tasks"].items()}
    assert statuses == {"a": SUCCESS, "b": SUCCESS, "c": SUCCESS, "d": SUCCESS}
    assert tiny.repair_summary["status"] == SUCCESS
    assert tiny.repair_out.strip().splitlines()[-1].endswith(SUCCESS)


def test_repair_keeps_run_id_parameters_start_time_and_upstream_values(tiny):
    run, rep = tiny.run_record, tiny.repair_record
    assert rep["run_id"] == run["run_id"]
    assert {rid for _, rid in tiny.repair_calls} == {str(run["run_id"])}
    assert rep["parameters"] == run["parameters"]
    assert rep["start_time"] == run["start_time"]
    assert rep["repair_count"] == 1 and rep["repairs"][0]["tasks"] == ["b", "c", "d"]
    # b read a's token through {{tasks.a.values.token}}: a was not re-run.
    assert tiny.seen["b.confirm_rebuild"] == f"token-{run['run_id']}"
    assert tiny.repair_summary["tasks"]["a"]["values"]["token"] == f"token-{run['run_id']}"
    assert tiny.repair_summary["tasks"]["b"]["values"]["seen"] == f"token-{run['run_id']}"


def test_task_command_runs_one_task_in_an_existing_run(tiny):
    assert tiny.task_code == 0
    assert tiny.task_calls == [("c", str(tiny.run_record["run_id"]))]
    assert tiny.task_record["run_id"] == tiny.run_record["run_id"]
    assert tiny.task_out.strip().splitlines()[-1].endswith("task c SUCCESS")


def test_sql_json_prints_an_array_of_row_objects_from_the_product_schema(tiny):
    code, out = _cli(
        "sql",
        "SELECT task_key, count(*) AS n FROM patronage_task_values "
        "WHERE name = 'task_status' GROUP BY task_key ORDER BY task_key",
        *tiny.common,
        "--format",
        "json",
    )
    assert code == 0
    rows = json.loads(out)
    # b published FAILED then SUCCESS; c ran in the repair and again alone.
    assert rows == [
        {"task_key": "a", "n": 1},
        {"task_key": "b", "n": 2},
        {"task_key": "c", "n": 2},
        {"task_key": "d", "n": 2},
    ]


def test_sql_csv_and_table_formats():
    rows = [{"k": "a", "n": 1, "d": dt.date(2024, 1, 2)}, {"k": None, "n": 20, "d": None}]
    assert cli.format_rows(["k", "n", "d"], rows, "csv") == "k,n,d\na,1,2024-01-02\n,20,"
    table = cli.format_rows(["k", "n", "d"], rows, "table").splitlines()
    assert table[0].split("|")[0].strip() == "k" and table[-1] == "(2 rows)"
    assert "NULL" in table[3]


def test_repair_of_a_run_without_failures_changes_nothing(tiny, monkeypatch):
    monkeypatch.setattr(runner, "load_entry_point", _resolver)
    CALLS.clear()
    result = runner.repair(state_dir=tiny.state)
    assert CALLS == []
    assert result.status == SUCCESS and result.exit_code == 0


def test_one_run_at_a_time_per_state_dir(tmp_path):
    with runner.state_lock(tmp_path):
        with pytest.raises(RunnerError, match="another run is in progress"):
            runner.repair(state_dir=tmp_path)


def test_a_task_left_running_by_a_dead_process_is_failed_and_repaired(spark, tmp_path):
    """As Databricks fails the task of a lost driver: repair re-runs it and what follows."""
    state = tmp_path / "state"
    common = ["--bundle-dir", str(TINY), "--state-dir", str(state), "--job", "tiny_job"]
    common += ["--var", f"schema=t_{uuid.uuid4().hex[:12]}"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "load_entry_point", _resolver)
        FAIL.clear()
        CALLS.clear()
        assert _cli("run", *common, "--run-date", "2024-05-06")[0] == 0
        # What a process killed inside task b leaves on disk.
        path = state / "runs" / f"{runner.latest_run_id(state)}.json"
        record = json.loads(path.read_text())
        record["status"] = "RUNNING"
        record["tasks"]["b"] = {"status": "RUNNING", "start_time": record["start_time"]}
        record["tasks"]["c"] = {"status": "NOT_RUN"}
        record["tasks"]["d"] = {"status": "NOT_RUN"}
        path.write_text(json.dumps(record))
        CALLS.clear()
        code, _ = _cli("repair", "--state-dir", str(state))
        repaired = runner.load_record(state)
    assert code == 0
    assert [k for k, _ in CALLS] == ["b", "c", "d"]
    assert repaired["repairs"][0]["tasks"] == ["b", "c", "d"]
    assert {k: v["status"] for k, v in repaired["tasks"].items()} == dict.fromkeys("abcd", SUCCESS)


def test_settling_fails_only_running_entries_and_the_running_run():
    from patronage.localjobs.records import ABANDONED_ERROR, settle_abandoned

    record = {
        "status": "RUNNING",
        "tasks": {"a": {"status": SUCCESS}, "b": {"status": "RUNNING"}, "c": {"status": "NOT_RUN"}},
    }
    assert settle_abandoned(record) == ["b"]
    assert record["status"] == FAILED
    assert record["tasks"]["b"] == {"status": FAILED, "error": ABANDONED_ERROR}
    assert record["tasks"]["a"]["status"] == SUCCESS and record["tasks"]["c"]["status"] == "NOT_RUN"
    finished = {"status": SUCCESS, "tasks": {"a": {"status": SUCCESS}}}
    assert settle_abandoned(finished) == [] and finished["status"] == SUCCESS

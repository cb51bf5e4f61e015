"""SPEC §10: one patronage_pipeline_log row per run, failed runs included."""

from __future__ import annotations

import json

import pytest

from conftest import task_argv
from patronage import tables as t
from patronage.repositories.task_values import RunState
from patronage.stages import finalize
from patronage.task import run_stage

OK = {"task_status": "SUCCESS", "task_duration_seconds": 1.0}

DISCOVER = {
    **OK,
    "task_duration_seconds": 120.0,
    "run_date": "2026-12-02",
    "processing_mode": "update",
    "scd_window_start": "2026-12-01 05:00:00",
    "scd_window_end": "2026-12-02 00:00:00",
    "cg_window_start": "2026-11-30 05:00:00",
    "cg_window_end": "2026-12-02 00:00:00",
    "scd_files": 2,
    "cg_files": 1,
    "late_files": 0,
    "dmdc_export_due": True,
    "edipi_backfill_due": False,
    "backup_due": False,
}
MERGE = {**OK, "new_scd": 3, "updated_scd": 1, "expired_scd": 1, "active_scd": 7,
         "new_cg": 2, "updated_cg": 0, "expired_cg": 0, "active_cg": 2, "staged_rows": 6,
         "target_version": 4}
VALUES = {
    "discover": DISCOVER,
    "identity": {**OK, "lookup_rows": 40, "quarantined_rows": 2},
    "ingest_scd": {**OK, "raw_rows": 10, "valid_rows": 9, "rejected_rows": 1, "staged_rows": 4},
    "ingest_cg": {**OK, "raw_rows": 3, "valid_rows": 3, "rejected_rows": 0, "staged_rows": 2},
    "merge": MERGE,
    "edipi_backfill": {**OK, "triggered": False},
    "dmdc_export": {**OK, "triggered": True, "record_count": 5,
                    "filename": "PATRONAGE_20261202.txt"},
    "backup": {**OK, "triggered": False},
}


# --- rules without Spark ------------------------------------------------------


def test_a_run_is_failed_when_a_task_failed_or_published_nothing():
    values = {k: v for k, v in VALUES.items() if k not in ("backup",)}
    values["merge"] = {"task_status": "FAILED", "task_error": "ValueError: bad staging"}

    status, error = finalize.run_status(finalize.task_outcomes(values))

    assert status == "FAILED"
    assert "merge FAILED (ValueError: bad staging)" in error
    assert "not run (published nothing): backup" in error


def test_a_run_where_every_task_succeeded_is_success():
    assert finalize.run_status(finalize.task_outcomes(VALUES)) == ("SUCCESS", None)


def test_detail_columns_carry_published_values_and_null_for_missing():
    values = {k: v for k, v in VALUES.items() if k != "ingest_cg"}
    outcomes = finalize.task_outcomes(values)
    cols = finalize.detail_columns(values, outcomes, {"rows": 20, "active": 9})

    table = json.loads(cols["patronage_table_detail"])
    assert table == {"rows_before": 14, "rows_after": 20, "rows_added": 6, "active_rows": 9,
                     "target_version": 4}
    assert json.loads(cols["identity_correlation_detail"])["quarantined_rows"] == 2
    discovery = json.loads(cols["file_discovery_detail"])
    assert discovery["scd_files"] == 2 and discovery["cg_window_end"] == "2026-12-02 00:00:00"
    records = json.loads(cols["records_processed_detail"])
    assert records["SCD"]["rejected_rows"] == 1 and records["CG"] is None
    by_batch = json.loads(cols["output_row_counts_by_batch"])
    assert by_batch["SCD"] == {"active": 7, "new": 3, "updated": 1, "expired": 1,
                               "unchanged": None}
    scheduled = json.loads(cols["scheduled_tasks_detail"])
    assert scheduled["dmdc_export"] == {"due": True, "triggered": True, "status": "SUCCESS"}
    assert json.loads(cols["dmdc_export_stats"])["record_count"] == 5
    assert json.loads(cols["input_watermarks"])["SCD"]["window_start"] == "2026-12-01 05:00:00"


# --- the stage on Delta ----------------------------------------------------------


def publish(tables, run_id: str, values: dict) -> None:
    state = RunState(tables, run_id)
    for task, v in values.items():
        state.publish(task, v)


def log_rows(tables) -> list:
    return tables.read(t.PIPELINE_LOG).collect()


@pytest.mark.spark
def test_successful_run_writes_one_success_row_and_a_rerun_replaces_it(
    spark, tables, tmp_path, monkeypatch
):
    # The task-list rules are tested above; two tasks keep this Delta test short.
    monkeypatch.setattr(finalize, "PIPELINE_TASKS", ("discover", "backup"))
    publish(tables, "2001", {k: VALUES[k] for k in finalize.PIPELINE_TASKS})
    argv = task_argv(tables.schema, tmp_path, run_id="2001", run_date="2026-12-02")

    first = run_stage("finalize", finalize.run, argv, spark=spark)
    second = run_stage("finalize", finalize.run, argv, spark=spark)

    assert first["status"] == second["status"] == "SUCCESS"
    rows = log_rows(tables)
    assert len(rows) == 1
    row = rows[0]
    assert row["run_id"] == "2001" and row["status"] == "SUCCESS"
    assert row["error_message"] is None and row["processing_mode"] == "update"
    # The run started with its first task: discover's 120 s count in the duration.
    assert row["duration_seconds"] >= 120
    assert json.loads(row["file_discovery_detail"])["run_date"] == "2026-12-02"
    assert json.loads(row["backup_stats"])["triggered"] is False


@pytest.mark.spark
def test_failed_run_is_logged_as_failed_naming_the_task_then_finalize_fails(
    spark, tables, tmp_path
):
    publish(tables, "2002", {
        "discover": DISCOVER,
        "merge": {"task_status": "FAILED", "task_error": "RuntimeError: MERGE conflict",
                  "task_duration_seconds": 3.0},
    })
    argv = task_argv(tables.schema, tmp_path, run_id="2002", run_date="2026-12-02")

    with pytest.raises(finalize.RunFailed, match="merge FAILED"):
        run_stage("finalize", finalize.run, argv, spark=spark)

    rows = log_rows(tables)
    assert len(rows) == 1
    assert rows[0]["status"] == "FAILED"
    assert "merge FAILED (RuntimeError: MERGE conflict)" in rows[0]["error_message"]
    assert "identity" in rows[0]["error_message"]  # published nothing
    published = RunState(tables, "2002").get("finalize")
    assert published["status"] == "FAILED" and published["task_status"] == "FAILED"

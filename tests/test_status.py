"""``patronage status``'s pure parts: the schedule and the text layout (no Spark)."""

from __future__ import annotations

import datetime as dt
import json

from patronage import status_report


def test_the_schedule_uses_discovers_gates():
    # 2025-12-26 is the last Friday of December; the 1st of January is the backup day.
    sched = status_report.schedule(dt.date(2025, 12, 24))
    assert sched["dmdc_export"] == {"rule": "Wednesdays and Fridays", "due_today": True,
                                    "next": "2025-12-26"}
    assert sched["edipi_backfill"]["next"] == "2025-12-26"
    assert sched["backup"] == {"rule": "first day of the month", "due_today": False,
                               "next": "2026-01-01"}
    assert status_report.schedule(dt.date(2026, 1, 1))["backup"]["due_today"] is True


def _row(**extra):
    row = {
        "run_id": "42", "status": "FAILED", "processing_mode": "update",
        "run_timestamp_utc": dt.datetime(2025, 3, 5, 6, 0, 1), "duration_seconds": 61.5,
        "error_message": "dmdc_export FAILED (FileSystemError: not a directory)",
        "file_discovery_detail": json.dumps({"run_date": "2025-03-05", "late_files": 1}),
        "output_row_counts_by_batch": json.dumps(
            {"SCD": {"new": 3, "updated": 2, "expired": 2}, "CG": {"new": 1}}),
    }  # fmt: skip
    return {**row, **extra}


def test_a_failed_run_shows_its_tasks_files_rows_rejects_and_error():
    values = {
        "discover": {"task_status": "SUCCESS", "task_duration_seconds": 1.25},
        "dmdc_export": {"task_status": "FAILED", "task_duration_seconds": 0.5},
        "finalize": {"task_duration_seconds": 2},
    }
    run = status_report.run_summary(
        _row(), values, {"SCD": {"discovered": 2, "merged": 1, "rejected": 1}},
        {"missing_key": 1, "bad_date": 2},
    )
    assert run["files"]["SCD"] == {"discovered": 2, "merged": 1, "refused": 1}
    assert run["tasks"]["identity"] == {"status": "NOT_RUN", "duration_seconds": None}
    assert run["rejects_by_reason"] == {"bad_date": 2, "missing_key": 1}
    report = {
        "target": "local", "as_of": "2025-03-05", "schedule": status_report.schedule(
            dt.date(2025, 3, 5)),
        "tables": {"schema": "spark_catalog.p", "runs": [run], "dmdc": status_report.dmdc_summary(
            {"filename": "/x/PATRONAGE_20250305.txt", "record_count": 7,
             "checkpoint_timestamp": dt.datetime(2025, 3, 5), "created_at": None, "run_id": "42"})},
    }  # fmt: skip
    text = status_report.format_text(report)
    lines = text.splitlines()
    (summary,) = [line for line in lines if line.startswith("42 ") and "update" in line]
    assert summary.split()[:3] == ["42", "FAILED", "update"]
    assert "SCD 1/1 CG 0/0 late 1" in summary and "SCD 3/2/2 CG 1/0/0" in summary
    assert summary.endswith("bad_date 2, missing_key 1")
    (tasks,) = [line for line in lines if line.startswith("42 ") and "update" not in line]
    assert tasks.split() == ["42", "1.2s", "-", "-", "-", "-", "-", "FAILED", "0.5s", "-", "2.0s"]
    assert "run 42 FAILED: dmdc_export FAILED (FileSystemError: not a directory)" in lines
    assert "Last DMDC export: PATRONAGE_20250305.txt with 7 records" in text


def test_an_empty_log_says_so():
    assert status_report.runs_lines([]) == ["no run in patronage_pipeline_log yet"]

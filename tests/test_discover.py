"""SPEC §5 discovery through the real stage: files on disk, real mtimes, Delta ledger."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from conftest import task_argv
from patronage import tables as t
from patronage.config import ConfigError
from patronage.fs import FileSystem, FileSystemError
from patronage.stages import discover
from patronage.task import run_stage

pytestmark = pytest.mark.spark


def land(path, when: dt.datetime, text: str = "x\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    FileSystem().set_mtime(str(path), when)


@pytest.fixture
def inbound(tmp_path):
    scd = tmp_path / "landing" / "scd"
    cg = tmp_path / "landing" / "cg"
    land(scd / "CPIDODIEX_20250110.csv", dt.datetime(2025, 1, 10, 6))
    land(scd / "cpidodiex_20250108.CSV", dt.datetime(2025, 1, 8, 6))
    land(scd / "CPIDODIEX_20240601.csv", dt.datetime(2024, 6, 1, 6))  # before beginning
    land(scd / "CPIDODIEX_today.csv", dt.datetime(2025, 3, 1, 1))  # waits for tomorrow
    land(scd / "readme.txt", dt.datetime(2025, 1, 9))
    land(cg / "caregiver_20250109.csv", dt.datetime(2025, 1, 9, 6))
    (cg / "subdir.csv").mkdir()
    return tmp_path


def scd_target_row(spark, created: dt.datetime):
    """One SCD target row loaded from a file of modification time ``created``."""
    row = spark.createDataFrame(
        [("SCD", created)], "Batch_CD string, SDP_Event_Created_Timestamp timestamp"
    )
    return row.select(
        *[F.col(c) if c in row.columns else F.lit(None).cast(tp.dataType).alias(c)
          for c, tp in zip(t.TARGET_COLUMNS, t.TARGET_SCHEMA.fields, strict=True)]
    )  # fmt: skip


def ledger(tables, run_id):
    return {
        (r["file_name"], r["status"]): r
        for r in tables.read(t.FILE_LEDGER).where(F.col("run_id") == run_id).collect()
    }


def test_discover_chooses_in_window_files_in_mtime_order_and_publishes_the_run_facts(
    spark, tables, inbound
):
    values = run_stage("discover", discover.run, task_argv(tables.schema, inbound), spark=spark)
    assert values["run_date"] == "2025-03-01"
    assert values["scd_window_start"] == "2024-06-30 00:00:00"
    assert values["scd_window_end"] == "2025-03-01 00:00:00"
    assert values["cg_window_start"] == "2024-12-18 20:00:00"
    assert (values["scd_files"], values["cg_files"], values["late_files"]) == (2, 1, 0)
    # 2025-03-01 is a Saturday and the first of the month.
    assert values["backup_due"] is True
    assert values["dmdc_export_due"] is False
    assert values["edipi_backfill_due"] is False

    events = ledger(tables, "1001")
    assert events[("cpidodiex_20250108.CSV", "discovered")]["file_order"] == 1
    assert events[("CPIDODIEX_20250110.csv", "discovered")]["file_order"] == 2
    assert events[("caregiver_20250109.csv", "discovered")]["source"] == "CG"
    assert len(events) == 3


def test_rerunning_discover_for_the_same_run_replaces_its_events(spark, tables, inbound):
    argv = task_argv(tables.schema, inbound)
    run_stage("discover", discover.run, argv, spark=spark)
    run_stage("discover", discover.run, argv, spark=spark)
    assert tables.read(t.FILE_LEDGER).count() == 3
    assert tables.read(t.TASK_VALUES).where("name = 'scd_files'").count() == 2  # append-only


def test_merged_files_are_not_rediscovered_and_a_late_file_is_reported(spark, tables, inbound):
    run_stage("discover", discover.run, task_argv(tables.schema, inbound), spark=spark)
    # What merge would do: mark the run's files merged and load a target row.
    merged = (
        tables.read(t.FILE_LEDGER)
        .withColumn("status", F.lit("merged"))
        .withColumn("recorded_at", F.current_timestamp())
    )
    tables.append(t.FILE_LEDGER, merged)
    tables.append(t.PATRONAGE_UNIFIED, scd_target_row(spark, dt.datetime(2025, 1, 10, 6)))
    # A file that arrives later with an older modification time.
    land(inbound / "landing" / "scd" / "CPIDODIEX_20250109.csv", dt.datetime(2025, 1, 9, 6))

    values = run_stage(
        "discover",
        discover.run,
        task_argv(tables.schema, inbound, run_id="1002", run_date="2025-03-02"),
        spark=spark,
    )
    assert values["scd_window_start"] == "2025-01-10 06:00:00"
    assert (values["scd_files"], values["cg_files"], values["late_files"]) == (1, 0, 1)
    events = ledger(tables, "1002")
    assert ("CPIDODIEX_today.csv", "discovered") in events
    assert ("CPIDODIEX_20250109.csv", "late") in events
    assert "window start" in events[("CPIDODIEX_20250109.csv", "late")]["reason"]


def test_a_killed_run_whose_merge_committed_has_its_files_marked_merged_by_the_next_run(
    spark, tables, inbound
):
    """Run 1001 died between its MERGE commit and its ledger events; 1002 is a new run."""
    run_stage("discover", discover.run, task_argv(tables.schema, inbound), spark=spark)
    ingested = (
        tables.read(t.FILE_LEDGER)
        .withColumn("status", F.lit("ingested"))
        .withColumn("recorded_at", F.current_timestamp())
    )
    tables.append(t.FILE_LEDGER, ingested)
    spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", "patronage-merge:1001")
    try:
        tables.append(t.PATRONAGE_UNIFIED, scd_target_row(spark, dt.datetime(2025, 1, 10, 6)))
    finally:
        spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")

    values = run_stage(
        "discover", discover.run,
        task_argv(tables.schema, inbound, run_id="1002", run_date="2025-03-02"), spark=spark,
    )  # fmt: skip
    events = sorted(tables.read(t.FILE_LEDGER).collect(), key=lambda r: r["recorded_at"])
    latest = {r["file_name"]: (r["status"], r["run_id"]) for r in events}
    assert latest["CPIDODIEX_20250110.csv"] == ("merged", "1001")
    assert latest["caregiver_20250109.csv"] == ("merged", "1001")
    # Merged, not late, although at the window start; only today's file is new.
    assert (values["scd_files"], values["cg_files"], values["late_files"]) == (1, 0, 0)


def test_rebuild_without_confirmation_fails_before_anything_is_touched(spark, tables, inbound):
    argv = task_argv(tables.schema, inbound, processing_mode="rebuild")
    with pytest.raises(ConfigError, match="confirm_rebuild=patronage_unified"):
        run_stage("discover", discover.run, argv, spark=spark)
    assert not tables.exists(t.FILE_LEDGER)
    assert not tables.exists(t.PATRONAGE_UNIFIED)


def test_rebuild_window_stops_at_the_end_of_the_previous_month(spark, tables, inbound):
    argv = task_argv(
        tables.schema, inbound, processing_mode="rebuild", confirm_rebuild="patronage_unified",
        run_date="2025-01-09",
    )
    values = run_stage("discover", discover.run, argv, spark=spark)
    assert values["scd_window_end"] == "2024-12-31 23:59:59"
    assert (values["scd_files"], values["cg_files"]) == (0, 0)


def test_a_missing_inbound_directory_fails_naming_the_setting_and_path(spark, tables, tmp_path):
    with pytest.raises(FileSystemError, match="inbound_scd_dir.*does not exist.*landing/scd"):
        run_stage("discover", discover.run, task_argv(tables.schema, tmp_path), spark=spark)


def test_force_parameters_make_scheduled_tasks_due(spark, tables, inbound):
    argv = task_argv(
        tables.schema, inbound, run_date="2025-03-04", force_dmdc_export="true",
        force_edipi_backfill="true", force_backup="false",
    )
    values = run_stage("discover", discover.run, argv, spark=spark)
    assert (values["dmdc_export_due"], values["edipi_backfill_due"], values["backup_due"]) == (
        True, True, False,
    )

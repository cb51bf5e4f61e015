"""SPEC §12: the freshness monitor fails, listing every gap, and writes nothing."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import task_argv
from patronage import dmdc_format as fmt
from patronage import tables as t
from patronage.repositories.task_values import RunState
from patronage.stages import freshness_monitor as monitor
from patronage.task import run_stage

FRIDAY = dt.date(2026, 12, 4)
MIDNIGHT = dt.datetime(2026, 12, 4)


# --- rules without Spark ------------------------------------------------------


def test_a_source_is_stale_when_its_newest_processed_file_is_older_than_its_cadence():
    fresh = monitor.source_check("SCD", MIDNIGHT - dt.timedelta(days=3), FRIDAY)
    stale = monitor.source_check("SCD", MIDNIGHT - dt.timedelta(days=3, seconds=1), FRIDAY)
    never = monitor.source_check("CG", None, FRIDAY)
    assert fresh.status == "PASS"
    assert stale.status == "FAIL" and "no SCD file processed since" in stale.gaps[0]
    assert never.status == "FAIL" and "no CG file has ever been processed" in never.gaps[0]


def test_pt_delta_is_stale_after_its_cadence_or_when_missing():
    limit = MIDNIGHT - monitor.PT_CADENCE
    assert monitor.pt_check("pt", True, limit, FRIDAY).status == "PASS"
    stale = monitor.pt_check("pt", True, limit - dt.timedelta(seconds=1), FRIDAY)
    assert stale.status == "FAIL" and "has not changed since" in stale.gaps[0]
    assert "does not exist" in monitor.pt_check("pt", False, None, FRIDAY).gaps[0]


def test_transfer_days_are_past_wednesdays_and_fridays_in_the_lookback():
    assert monitor.transfer_days(FRIDAY) == [
        dt.date(2026, 11, 20), dt.date(2026, 11, 25), dt.date(2026, 11, 27), dt.date(2026, 12, 2)
    ]


def test_dmdc_gap_for_each_transfer_day_without_its_file_since_the_history_starts():
    nov25, nov27, dec2 = dt.date(2026, 11, 25), dt.date(2026, 11, 27), dt.date(2026, 12, 2)
    checkpoints = [(nov25, fmt.export_filename(nov25)), (nov27, fmt.export_filename(nov27))]
    files = {fmt.export_filename(nov25)}

    missing = monitor.dmdc_check(FRIDAY, checkpoints, files, {})
    # Nov 20 is before the first checkpoint: not expected. Nov 27 lost its file;
    # Dec 2 has nothing at all.
    assert missing.figures["transfer_days_checked"] == 3
    assert len(missing.gaps) == 2
    assert "PATRONAGE_20261127.txt" in missing.gaps[0] and "missing" in missing.gaps[0]
    assert "no DMDC export for transfer day 2026-12-02" in missing.gaps[1]

    # A logged run that found no eligible rows legitimately has no file.
    files.add(fmt.export_filename(nov27))
    assert monitor.dmdc_check(FRIDAY, checkpoints, files, {dec2: True}).status == "PASS"

    # A file that was never checkpointed is a gap too.
    files.add(fmt.export_filename(dec2))
    orphan = monitor.dmdc_check(FRIDAY, checkpoints, files, {})
    assert len(orphan.gaps) == 1 and "without a checkpoint" in orphan.gaps[0]


def test_a_logged_export_that_found_no_rows_is_recognised():
    assert monitor.found_no_rows(json.dumps({"triggered": True, "record_count": 0,
                                             "filename": None}))
    assert not monitor.found_no_rows(json.dumps({"triggered": False, "record_count": 0}))
    assert not monitor.found_no_rows(None)


# --- the stage on Delta ----------------------------------------------------------


def run_monitor(spark, tables, base, run_date: dt.date) -> dict:
    argv = task_argv(tables.schema, base, run_id="m1", run_date=run_date.isoformat())
    return run_stage("freshness_monitor", monitor.run, argv, spark=spark)


@pytest.mark.spark
def test_monitor_passes_when_sources_pt_and_exports_are_fresh(spark, tables, tmp_path):
    today = dt.datetime.now(dt.UTC).date()  # the PT table below changes "now"
    yesterday = dt.datetime(today.year, today.month, today.day) - dt.timedelta(hours=20)
    ledger = [
        (f"/in/{src}.csv", f"{src}.csv", src, 10, yesterday, "r", "update", "merged", None, 1,
         None, None, None, None, yesterday)
        for src in ("SCD", "CG")
    ]
    tables.append(t.FILE_LEDGER, spark.createDataFrame(ledger, t.LEDGER_SCHEMA))
    spark.createDataFrame([("1", "Y")], "PTCPNT_VET_ID string, PT_35_FLAG string").write.format(
        "delta").saveAsTable(f"spark_catalog.{tables.schema}.pt_delta")
    days = monitor.transfer_days(today)
    export = tmp_path / "export"
    export.mkdir()
    checkpoints = []
    for day in days[:-1]:
        stamp = dt.datetime(day.year, day.month, day.day)
        checkpoints.append((stamp, fmt.export_filename(day), 1, "q", "h", "r", stamp))
        (export / fmt.export_filename(day)).write_text("x")
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(checkpoints, t.CHECKPOINT_SCHEMA))
    # The last transfer day's run found no eligible rows: no file, no checkpoint.
    log_row = ("r9", yesterday, "update", "SUCCESS", None, 1.0, "{}", "{}",
               json.dumps({"run_date": days[-1].isoformat()}), "{}", "{}", "{}", "{}",
               json.dumps({"triggered": True, "record_count": 0, "filename": None}), "{}", "{}")
    tables.append(t.PIPELINE_LOG, spark.createDataFrame([log_row], t.PIPELINE_LOG_SCHEMA))

    values = run_monitor(spark, tables, tmp_path, today)

    checks = values["checks"]
    assert {k: v["status"] for k, v in checks.items()} == {
        "scd_files": "PASS", "cg_files": "PASS", "pt_delta": "PASS", "dmdc_exports": "PASS"}
    assert checks["dmdc_exports"]["transfer_days_checked"] == len(days)


@pytest.mark.spark
def test_pt_delta_given_as_a_delta_path_is_checked_by_its_history(spark, tmp_path):
    from delta.tables import DeltaTable

    path = f"{tmp_path}/pt_delta"
    assert monitor.pt_last_change(spark, path) == (False, None)
    rows = spark.createDataFrame([("1", "Y")], "PTCPNT_VET_ID string, PT_35_FLAG string")
    rows.write.format("delta").save(path)
    rows.write.format("delta").mode("append").save(path)
    table = DeltaTable.forPath(spark, path)
    table.optimize().executeCompaction()  # maintenance: not a change

    exists, last_change = monitor.pt_last_change(spark, path)

    history = {r["version"]: r for r in table.history().collect()}
    assert history[2]["operation"] == "OPTIMIZE"
    assert exists and last_change == history[1]["timestamp"]


@pytest.mark.spark
def test_monitor_fails_listing_every_gap_and_creates_no_table(spark, tables, tmp_path):
    run_date = FRIDAY
    (tmp_path / "export").mkdir()
    stamp = dt.datetime(2026, 11, 27)
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(
        [(stamp, "PATRONAGE_20261127.txt", 3, "q", "h", "r", stamp)], t.CHECKPOINT_SCHEMA))

    with pytest.raises(monitor.FreshnessGap) as err:
        run_monitor(spark, tables, tmp_path, run_date)

    message = str(err.value)
    assert message.startswith("5 freshness gap(s) on 2026-12-04")
    assert "no SCD file has ever been processed" in message
    assert "no CG file has ever been processed" in message
    assert f"PT delta table spark_catalog.{tables.schema}.pt_delta does not exist" in message
    assert "PATRONAGE_20261127.txt of transfer day 2026-11-27" in message
    assert "no DMDC export for transfer day 2026-12-02" in message
    checks = RunState(tables, "m1").get("freshness_monitor")["checks"]
    assert {k: v["status"] for k, v in checks.items()} == {
        "scd_files": "FAIL", "cg_files": "FAIL", "pt_delta": "FAIL", "dmdc_exports": "FAIL"}
    for name in (t.PATRONAGE_UNIFIED, t.FILE_LEDGER, t.PIPELINE_LOG):
        assert not tables.exists(name)

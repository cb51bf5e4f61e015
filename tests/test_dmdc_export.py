"""SPEC §9.1 DMDC export through the real stage: Delta tables in, file bytes and checkpoint out."""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import pytest

from conftest import task_argv
from patronage import dmdc_format as fmt
from patronage import tables as t
from patronage.fs import FileSystem
from patronage.repositories.task_values import RunState
from patronage.stages import dmdc_export
from patronage.task import run_stage

pytestmark = pytest.mark.spark

RUN_DATE = "2026-12-02"  # a Wednesday
RUN = dt.date(2026, 12, 2)
DAY_BEFORE = dt.datetime(2026, 12, 1)
MIDNIGHT = dt.datetime(2026, 12, 2)
IN_WINDOW = dt.datetime(2026, 12, 1, 6)
US = dt.timedelta(microseconds=1)


def unified(edipi, batch, created, *, active=True, applicant=None, status=None, percent=None,
            begin=None, pt=None, iu=None, last=None, term=None) -> dict:
    return {
        "edipi": edipi, "ICN": None, "Veteran_ICN": None, "participant_id": None,
        "Batch_CD": batch, "Applicant_Type": applicant, "Caregiver_Status": status,
        "SC_Combined_Disability_Percentage": percent, "PT_Indicator": pt,
        "Individual_Unemployability": iu, "Status_Begin_Date": begin,
        "Status_Last_Update": last, "Status_Termination_Date": term,
        "SDP_Event_Created_Timestamp": created, "filename": "f.csv",
        "RecordLastUpdated": created.date(), "RecordStatus": active, "sentToDoD": not active,
        "change_log": None, "RecordChangeStatus": "New Record" if active else "Expired Record",
    }


def cg(edipi, created=IN_WINDOW, *, applicant="Primary Caregiver", status="Revoked", term=None,
       active=True) -> dict:
    return unified(edipi, "CG", created, active=active, applicant=applicant, status=status,
                   begin="20250101", last="20261130", term=term)


def scd(edipi, created=IN_WINDOW, *, active=True, percent="70") -> dict:
    return unified(edipi, "SCD", created, active=active, percent=percent, begin="20200101",
                   pt="Y", last="20261130")


def load(spark, tables, rows: list[dict]) -> None:
    tuples = [tuple(r[c] for c in t.TARGET_COLUMNS) for r in rows]
    tables.append(t.PATRONAGE_UNIFIED, spark.createDataFrame(tuples, t.TARGET_SCHEMA))


def add_checkpoints(spark, tables, *stamps: dt.datetime) -> None:
    rows = [(s, "old.txt", 1, "q", "h", "0", s) for s in stamps]
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(rows, t.CHECKPOINT_SCHEMA))


def export(spark, tables, base, run_id="1001", due=True) -> dict:
    RunState(tables, run_id).publish(
        "discover", {"run_date": RUN_DATE, "dmdc_export_due": due}
    )
    argv = task_argv(tables.schema, base, run_id=run_id, run_date=RUN_DATE)
    return run_stage("dmdc_export", dmdc_export.run, argv, spark=spark)


def export_file(base):
    return base / "export" / "PATRONAGE_20261202.txt"


def checkpoints(tables) -> list:
    return tables.read(t.DMDC_CHECKPOINT).collect()


def test_export_file_holds_eligible_active_rows_with_edipi_sorted_by_batch_then_edipi(
    spark, tables, tmp_path
):
    load(spark, tables, [
        scd("1000000003", DAY_BEFORE),  # first export: window starts the day before, inclusive
        unified("1000000001", "SCD", IN_WINDOW, percent="100", begin="20190101", pt="N",
                iu="Y", last="20261130"),
        cg("2000000006", term="20261202", status="Revoked"),  # termination == run date
        cg("2000000002", term=None, status="Revoked"),  # no termination
        cg("2000000005", term="20261201", status="Approved"),
        cg("2000000004", term="20261201", status="Pending Revocation/Discharge"),
        cg("2000000001", term="20261201", status="Revoked"),  # dropped: terminated
        cg("2000000003", applicant="Secondary Caregiver", status="Approved"),  # dropped
        scd("1000000009", active=False),  # dropped: expired version
        scd(None),  # dropped: no edipi
        scd("1000000007", MIDNIGHT),  # dropped: window end is exclusive
        scd("1000000008", DAY_BEFORE - US),  # dropped: before the window
    ])

    values = export(spark, tables, tmp_path)

    expected = (
        b"2000000002CG    20250101  20261130        \n"
        b"2000000004CG    20250101  2026113020261201\n"
        b"2000000005CG    20250101  2026113020261201\n"
        b"2000000006CG    20250101  2026113020261202\n"
        b"1000000001SCD10020190101NY20261130        \n"
        b"1000000003SCD70 20200101Y 20261130        "
    )
    content = export_file(tmp_path).read_bytes()
    assert content == expected
    assert sorted(os.listdir(tmp_path / "export")) == ["PATRONAGE_20261202.txt"]
    sha = hashlib.sha256(expected).hexdigest()
    assert values["triggered"] is True
    assert values["record_count"] == 6
    assert values["record_count_by_batch"] == {"SCD": 2, "CG": 4}
    assert values["filename"] == "PATRONAGE_20261202.txt"
    assert (values["window_start"], values["window_end"]) == (
        "2026-12-01 00:00:00", "2026-12-02 00:00:00")
    assert values["file_sha256"] == sha

    [row] = checkpoints(tables)
    assert row["checkpoint_timestamp"] == MIDNIGHT
    assert (row["filename"], row["record_count"], row["file_sha256"], row["run_id"]) == (
        "PATRONAGE_20261202.txt", 6, sha, "1001")
    assert row["generate_query"] == fmt.generate_query(RUN)


def test_window_starts_at_newest_checkpoint_inclusive_and_ends_at_run_date_exclusive(
    spark, tables, tmp_path
):
    newest = dt.datetime(2026, 11, 27)
    add_checkpoints(spark, tables, dt.datetime(2026, 11, 25), newest)
    load(spark, tables, [
        scd("1000000001", newest),  # == window start: in
        scd("1000000002", MIDNIGHT - US),  # last instant before the end: in
        scd("1000000003", newest - US),  # after the older checkpoint only: out
        scd("1000000004", MIDNIGHT),  # == window end: out
    ])

    values = export(spark, tables, tmp_path)

    lines = export_file(tmp_path).read_text().split("\n")
    assert [line[:10] for line in lines] == ["1000000001", "1000000002"]
    assert values["window_start"] == "2026-11-27 00:00:00"
    assert len(checkpoints(tables)) == 3


def test_empty_window_writes_no_file_and_no_checkpoint(spark, tables, tmp_path):
    load(spark, tables, [scd("1000000001", MIDNIGHT), scd("1000000002", DAY_BEFORE - US)])

    values = export(spark, tables, tmp_path)

    assert (values["triggered"], values["record_count"], values["filename"]) == (True, 0, None)
    assert not (tmp_path / "export").exists() or not os.listdir(tmp_path / "export")
    assert checkpoints(tables) == []


def test_rerun_and_repair_of_an_exported_run_date_write_nothing_and_insert_nothing(
    spark, tables, tmp_path
):
    load(spark, tables, [scd("1000000001")])
    first = export(spark, tables, tmp_path)
    path = export_file(tmp_path)
    content = path.read_bytes()
    FileSystem().set_mtime(str(path), dt.datetime(2026, 12, 2, 1))
    mtime = path.stat().st_mtime_ns
    load(spark, tables, [scd("1000000002")])  # would change the file if it were rewritten

    repair = export(spark, tables, tmp_path, run_id="1001")
    rerun = export(spark, tables, tmp_path, run_id="1002")

    # The repair publishes what its run exported; another run says it was done.
    timing = ("task_duration_seconds",)
    assert {k: v for k, v in repair.items() if k not in timing} == {
        k: v for k, v in first.items() if k not in timing
    }
    assert (rerun["triggered"], rerun["reason"]) == (False, "already exported")
    assert (rerun["filename"], rerun["record_count"]) == ("PATRONAGE_20261202.txt", 1)
    assert rerun["file_sha256"] == first["file_sha256"]
    assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime)
    assert len(checkpoints(tables)) == 1


def test_failed_checkpoint_insert_fails_the_task_and_repair_completes_the_export(
    spark, tables, tmp_path, monkeypatch
):
    load(spark, tables, [scd("1000000001")])
    real_append = t.Tables.append

    def failing_append(self, name, df):
        if name == t.DMDC_CHECKPOINT:
            raise PermissionError("checkpoint table is not writable")
        return real_append(self, name, df)

    monkeypatch.setattr(t.Tables, "append", failing_append)
    with pytest.raises(PermissionError):
        export(spark, tables, tmp_path)
    monkeypatch.undo()

    content = export_file(tmp_path).read_bytes()  # written before the checkpoint
    assert RunState(tables, "1001").get("dmdc_export")["task_status"] == "FAILED"
    assert checkpoints(tables) == []

    values = export(spark, tables, tmp_path)  # repair: same bytes, now checkpointed

    assert values["reason"] == "exported"
    assert export_file(tmp_path).read_bytes() == content
    [row] = checkpoints(tables)
    assert row["file_sha256"] == hashlib.sha256(content).hexdigest()


def test_not_due_finishes_with_triggered_false_and_writes_nothing(spark, tables, tmp_path):
    load(spark, tables, [scd("1000000001")])

    values = export(spark, tables, tmp_path, due=False)

    assert (values["triggered"], values["reason"], values["task_status"]) == (
        False, "not due", "SUCCESS")
    assert not (tmp_path / "export").exists()
    assert not tables.exists(t.DMDC_CHECKPOINT)

"""SPEC §9.2 monthly EDIPI backfill through the real stage: lagged file and in-place update."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import task_argv
from patronage import tables as t
from patronage.fs import FileSystem
from patronage.repositories.task_values import RunState
from patronage.stages import edipi_backfill
from patronage.task import run_stage

pytestmark = pytest.mark.spark

RUN_DATE = "2026-12-25"  # the last Friday of December 2026
CREATED = dt.datetime(2026, 10, 5, 6)


def unified(icn, batch, *, edipi=None, active=True, applicant=None, term=None) -> tuple:
    row = {
        "edipi": edipi, "ICN": icn, "Veteran_ICN": None, "participant_id": None,
        "Batch_CD": batch, "Applicant_Type": applicant,
        "Caregiver_Status": "Revoked" if batch == "CG" else None,
        "SC_Combined_Disability_Percentage": "50" if batch == "SCD" else None,
        "PT_Indicator": "N" if batch == "SCD" else None, "Individual_Unemployability": None,
        "Status_Begin_Date": "20240101", "Status_Last_Update": "20261005",
        "Status_Termination_Date": term, "SDP_Event_Created_Timestamp": CREATED,
        "filename": "f.csv", "RecordLastUpdated": CREATED.date(), "RecordStatus": active,
        "sentToDoD": not active, "change_log": None,
        "RecordChangeStatus": "New Record" if active else "Expired Record",
    }
    return tuple(row[c] for c in t.TARGET_COLUMNS)


@pytest.fixture
def state(spark, tables):
    tables.append(t.PATRONAGE_UNIFIED, spark.createDataFrame([
        unified("I1", "SCD"),  # candidate, eligible
        unified("I2", "CG", applicant="Primary Caregiver"),  # candidate, eligible
        unified("I3", "CG", applicant="Secondary Caregiver"),  # candidate, not eligible
        unified("I1", "SCD", active=False),  # expired version: untouched
        unified("I4", "SCD"),  # lookup has no edipi for I4
        unified("I5", "SCD"),  # not in the lookup
        unified("I6", "SCD", edipi="1000000006"),  # already has an edipi
    ], t.TARGET_SCHEMA))
    lookup = [
        ("I1", None, "3000000002", None, None, None),
        ("I2", None, "3000000001", None, None, None),
        ("I3", None, "3000000003", None, None, None),
        ("I4", None, None, None, None, None),
        ("I6", None, "9999999999", None, None, None),
    ]
    tables.append(t.CORRELATION_LOOKUP, spark.createDataFrame(lookup, t.LOOKUP_SCHEMA))
    return tables


def backfill(spark, tables, base, run_id="2001", due=True) -> dict:
    RunState(tables, run_id).publish(
        "discover", {"run_date": RUN_DATE, "edipi_backfill_due": due}
    )
    argv = task_argv(tables.schema, base, run_id=run_id, run_date=RUN_DATE)
    return run_stage("edipi_backfill", edipi_backfill.run, argv, spark=spark)


def lagged_file(base):
    return base / "export" / "LAGGED_EDIPI_PATRONAGE_20261225.txt"


def test_backfill_writes_eligible_candidates_and_sets_edipi_in_place_without_new_versions(
    spark, state, tmp_path
):
    values = backfill(spark, state, tmp_path)

    assert lagged_file(tmp_path).read_bytes() == (
        b"3000000001CG    20240101  20261005        \n"
        b"3000000002SCD50 20240101N 20261005        "
    )
    assert values["triggered"] is True
    assert (values["candidates"], values["eligible_written"], values["rows_updated"]) == (3, 2, 3)
    assert values["filename"] == "LAGGED_EDIPI_PATRONAGE_20261225.txt"

    rows = state.read(t.PATRONAGE_UNIFIED).collect()
    assert len(rows) == 7  # updated in place: no row added
    by_key = {(r["ICN"], r["RecordStatus"]): r for r in rows}
    assert {icn: by_key[(icn, True)]["edipi"] for icn in ("I1", "I2", "I3", "I4", "I5", "I6")} == {
        "I1": "3000000002", "I2": "3000000001", "I3": "3000000003",
        "I4": None, "I5": None, "I6": "1000000006",
    }
    assert by_key[("I1", False)]["edipi"] is None
    assert {(r["RecordLastUpdated"], r["RecordChangeStatus"], r["sentToDoD"]) for r in rows} == {
        (CREATED.date(), "New Record", False), (CREATED.date(), "Expired Record", True)}


def test_backfill_rerun_finds_no_candidates_and_leaves_the_file_and_table_untouched(
    spark, state, tmp_path
):
    backfill(spark, state, tmp_path)
    path = lagged_file(tmp_path)
    content = path.read_bytes()
    FileSystem().set_mtime(str(path), dt.datetime(2026, 12, 25, 1))
    mtime = path.stat().st_mtime_ns
    version = state.version(t.PATRONAGE_UNIFIED)

    values = backfill(spark, state, tmp_path, run_id="2002")

    assert (values["candidates"], values["eligible_written"], values["rows_updated"]) == (0, 0, 0)
    assert values["filename"] == "LAGGED_EDIPI_PATRONAGE_20261225.txt"
    assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime)
    assert state.version(t.PATRONAGE_UNIFIED) == version


def test_backfill_not_due_finishes_with_triggered_false_and_writes_nothing(
    spark, tables, tmp_path
):
    values = backfill(spark, tables, tmp_path, due=False)

    assert (values["triggered"], values["candidates"], values["task_status"]) == (
        False, 0, "SUCCESS")
    assert not (tmp_path / "export").exists()
    assert not tables.exists(t.PATRONAGE_UNIFIED)

"""SPEC §7 (CG transform) through the ingest_cg stage.

Two runs share the setup: a rebuild (CG seed staged as file_order 0, then two
files) and an update of the first file against active target rows.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conftest import flat_argv, record_discovered
from patronage import tables as t
from patronage.stages import ingest_cg
from patronage.task import run_stage

HEADER = ",".join(ingest_cg.COLUMNS)
SEED_HEADER = ",".join(ingest_cg.SEED_COLUMNS)
OLD_TS = dt.datetime(2025, 1, 1, 5, 0, 0)
PRIMARY = "Primary Caregiver"


argv = flat_argv


def write_file(directory: Path, name: str, lines: list[str]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def discovered(tables, run_id: str, files: list[tuple[str, str]], status="discovered") -> None:
    record_discovered(tables, run_id, "CG", files, status)


def cg_line(*, icn="", vet="", applicant=PRIMARY, status="Approved", disp="", end="",
            created="2024-12-20 10:00:00") -> str:
    fields = dict.fromkeys(ingest_cg.COLUMNS, "")
    fields.update(
        Caregiver_ICN__c=icn, Veteran_ICN__c=vet, Applicant_Type__c=applicant,
        Caregiver_Status__c=status, Dispositioned_Date__c=disp, Benefits_End_Date__c=end,
        CreatedDate=created, CARMA_Case_ID__c="case", CreatedById="someone",
    )
    return ",".join(fields[c] for c in ingest_cg.COLUMNS)


def target_row(icn, vet, applicant, status, begin, end) -> dict:
    row = dict.fromkeys(t.TARGET_COLUMNS)
    row.update(
        ICN=icn, Veteran_ICN=vet, Applicant_Type=applicant, Caregiver_Status=status,
        Status_Begin_Date=begin, Status_Termination_Date=end, Batch_CD="CG",
        SDP_Event_Created_Timestamp=OLD_TS, filename="/old.csv", RecordLastUpdated=OLD_TS.date(),
        RecordStatus=True, sentToDoD=False, change_log="", RecordChangeStatus="New Record",
    )
    return row


SEED = [
    SEED_HEADER,
    f"C000000001,V000000001,{PRIMARY},Approved,2024-01-01,",
    f"C000000002,V000000002,{PRIMARY},Approved,2024-02-01,2025-01-31",
    f"C000000003,,{PRIMARY},Approved,2024-01-01,",                    # row 3: missing_key
    "C000000004,V000000004,Secondary Caregiver (One),Approved,2024-13-01,",  # row 4: bad_date
    f"C000000005V123,V000000005,{PRIMARY},Approved,2024-03-01,",      # key cut to 10
    f"C000000005,V000000005,{PRIMARY},Revoked,2024-03-01,",           # same key, later row
]
FILE1 = [
    HEADER,
    cg_line(icn="C000000001", vet="V000000001", status="Pending Revocation/Discharge",
            disp="2024-01-01", end="2025-06-30"),
    cg_line(icn="C000000002", vet="V000000002", disp="2024-02-01", end="2025-01-31"),
    cg_line(icn="C000000006", vet="", disp="2024-05-01"),
    cg_line(icn="C000000007", vet="V000000007", created="2024-12-20 10:00:00"),
    cg_line(icn="C000000007", vet="V000000007", status="Denied",
            created="2024-12-21T09:00:00.000+0000"),
    cg_line(icn="C000000007", vet="V000000007", status="Pending", created="2024-12-19T23:59:59Z"),
    cg_line(icn="C000000009", vet="V000000009", created="20/12/2024"),    # row 7: bad_date
    cg_line(icn="C000000009", vet="V000000009", disp="2024-02-30"),       # row 8: bad_date
    cg_line(icn="C000000009", vet="V000000009", end="tomorrow"),          # row 9: bad_date
    cg_line(icn="", vet="V000000009"),                                    # row 10: missing_key
    cg_line(icn="C000000008V999", vet="V000000008V1", disp="2024-06-01"),
]
FILE2 = [
    HEADER,
    cg_line(icn="C000000001", vet="V000000001", status="Pending Revocation/Discharge",
            disp="2024-01-01", end="2025-06-30"),
    cg_line(icn="C000000006", vet="", status="Inactive", disp="2024-05-01"),
    cg_line(icn="C000000005", vet="V000000005", disp="2024-03-01"),
]
LOOKUP = [("C000000001", "PID1", "E1"), ("C000000008", "PID8", "E8")]


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    from patronage.tables import Tables

    tmp = tmp_path_factory.mktemp("cg")
    schema = "t_" + uuid.uuid4().hex[:12]
    tables = Tables(spark, "spark_catalog", schema)
    tables.ensure_schema()
    seed = write_file(tmp / "seed", "caregivers_seed.csv", SEED)
    f1 = write_file(tmp / "cg", "caregiver_1.csv", FILE1)
    f2 = write_file(tmp / "cg", "caregiver_2.csv", FILE2)
    lookup = [(icn, pid, edipi, None, "P", OLD_TS) for icn, pid, edipi in LOOKUP]
    tables.append(t.CORRELATION_LOOKUP, spark.createDataFrame(lookup, t.LOOKUP_SCHEMA))
    target = [
        target_row("C000000001", "V000000001", PRIMARY, "Approved", "20240101", None),
        target_row("C000000002", "V000000002", PRIMARY, "Approved", "20240201", "20250131"),
        target_row("C000000006", None, PRIMARY, "Approved", "20240501", None),
    ]
    tables.append(t.PATRONAGE_UNIFIED, spark.createDataFrame(target, t.TARGET_SCHEMA))

    discovered(tables, "rb", [(f1, "2024-12-21 12:00:00"), (f2, "2024-12-22 12:00:00")])
    rb = run_stage("ingest_cg", ingest_cg.run, argv(tmp, schema, "rb", "rebuild"), spark=spark)
    discovered(tables, "up", [(f1, "2024-12-21 12:00:00")])
    up = run_stage("ingest_cg", ingest_cg.run, argv(tmp, schema, "up", "update"), spark=spark)
    up_first = {(r["ICN"], r["RecordChangeStatus"]) for r in tables.read(t.STAGING_CG)
                .where(F.col("run_id") == "up").collect()}

    # merge committed run "up"; the target moved on; ingest_cg is run again for "up".
    discovered(tables, "up", [(f1, "2024-12-21 12:00:00")], status="merged")
    tables.delta(t.PATRONAGE_UNIFIED).delete(F.col("ICN") == "C000000001")
    up_again = run_stage("ingest_cg", ingest_cg.run, argv(tmp, schema, "up", "update"),
                         spark=spark)
    staging = tables.read(t.STAGING_CG).collect()
    rejects = tables.read(t.REJECTS).collect()

    def keyed(run_id):
        return {(r["ICN"], r["Veteran_ICN"], r["file_order"]): r.asDict()
                for r in staging if r["run_id"] == run_id}

    return {
        "seed": seed, "f1": f1, "f2": f2, "rb": rb, "up": up, "up_again": up_again,
        "up_first": up_first,
        "rb_staged": keyed("rb"), "up_staged": keyed("up"),
        "rejects": [r.asDict() for r in rejects if r["run_id"] == "rb"],
    }


def entry(col: str, old: str, new: str) -> str:
    return f"{col} old value: {old} changed to new value: {new}"


@pytest.mark.spark
def test_cg_seed_staged_first_on_rebuild(runs):
    st = runs["rb_staged"]
    seed = {k: v for k, v in st.items() if k[2] == 0}
    assert sorted(k[0] for k in seed) == ["C000000001", "C000000002", "C000000005"]
    v = st[("C000000001", "V000000001", 0)]
    assert v["SDP_Event_Created_Timestamp"] == dt.datetime(2024, 12, 18, 20, 0, 0)
    assert v["filename"] == runs["seed"]
    assert v["RecordChangeStatus"] == "New Record"  # rebuild ignores the target's active rows
    assert (v["Status_Begin_Date"], v["edipi"], v["participant_id"]) == ("20240101", "E1", "PID1")
    assert v["change_log"] == "; ".join([
        entry("Status_Begin_Date", "Null", "20240101"),
        entry("Applicant_Type", "Null", PRIMARY),
        entry("Caregiver_Status", "Null", "Approved"),
    ])
    # duplicate seed key (after cutting ICN to 10): the later row
    assert st[("C000000005", "V000000005", 0)]["Caregiver_Status"] == "Revoked"
    assert runs["rb"]["seed_staged_rows"] == 3


@pytest.mark.spark
def test_cg_changed_row_is_updated_against_previous_state(runs):
    v = runs["rb_staged"][("C000000001", "V000000001", 1)]
    assert v["RecordChangeStatus"] == "Updated Record"
    assert v["change_log"] == "; ".join([
        entry("Status_Termination_Date", "Null", "20250630"),
        entry("Caregiver_Status", "Approved", "Pending Revocation/Discharge"),
    ])
    assert v["filename"] == runs["f1"]
    assert v["SDP_Event_Created_Timestamp"] == dt.datetime(2024, 12, 21, 12, 0, 0)
    assert v["RecordLastUpdated"] == dt.date(2024, 12, 21)
    assert (v["Batch_CD"], v["RecordStatus"], v["sentToDoD"]) == ("CG", True, False)
    assert v["Status_Last_Update"] is None and v["PT_Indicator"] is None
    five = runs["rb_staged"][("C000000005", "V000000005", 2)]
    assert five["change_log"] == entry("Caregiver_Status", "Revoked", "Approved")


@pytest.mark.spark
def test_cg_unchanged_row_produces_nothing(runs):
    st = runs["rb_staged"]
    assert ("C000000002", "V000000002", 1) not in st  # same as the seed
    assert ("C000000001", "V000000001", 2) not in st  # same as file 1
    assert sorted(k for k in st if k[2] == 2) == [
        ("C000000005", "V000000005", 2), ("C000000006", None, 2)]
    assert runs["rb"]["staged_rows"] == len(st) == 9


@pytest.mark.spark
def test_cg_null_veteran_icn_is_part_of_the_key(runs):
    st = runs["rb_staged"]
    new = st[("C000000006", None, 1)]
    assert (new["RecordChangeStatus"], new["Status_Begin_Date"]) == ("New Record", "20240501")
    again = st[("C000000006", None, 2)]
    assert again["RecordChangeStatus"] == "Updated Record"
    assert again["change_log"] == entry("Caregiver_Status", "Approved", "Inactive")
    # update mode: the same row matches the active row whose Veteran_ICN is null
    assert ("C000000006", None, 1) not in runs["up_staged"]


@pytest.mark.spark
def test_cg_duplicates_keep_newest_created_date(runs):
    assert runs["rb_staged"][("C000000007", "V000000007", 1)]["Caregiver_Status"] == "Denied"


@pytest.mark.spark
def test_cg_icns_cut_to_ten_and_identity_from_lookup(runs):
    v = runs["rb_staged"][("C000000008", "V000000008", 1)]
    assert (v["edipi"], v["participant_id"]) == ("E8", "PID8")
    assert runs["rb_staged"][("C000000006", None, 1)]["edipi"] is None


@pytest.mark.spark
def test_cg_bad_dates_and_null_caregiver_icn_rejected_with_reason(runs):
    got = sorted((Path(r["file"]).name, r["row_number"], r["reason_code"])
                 for r in runs["rejects"])
    assert got == [
        ("caregiver_1.csv", 7, "bad_date"), ("caregiver_1.csv", 8, "bad_date"),
        ("caregiver_1.csv", 9, "bad_date"), ("caregiver_1.csv", 10, "missing_key"),
        ("caregivers_seed.csv", 3, "missing_key"), ("caregivers_seed.csv", 4, "bad_date"),
    ]
    msgs = {r["row_number"]: r["message"] for r in runs["rejects"] if r["file"] == runs["f1"]}
    assert "CreatedDate" in msgs[7] and "Dispositioned_Date__c" in msgs[8]
    assert "Benefits_End_Date__c" in msgs[9] and "Caregiver_ICN__c" in msgs[10]
    assert all(runs["f1"] in m and f"row {n}:" in m for n, m in msgs.items())
    raw = next(r["raw_row"] for r in runs["rejects"] if r["row_number"] == 7 and
               r["file"] == runs["f1"])
    assert json.loads(raw)["CreatedDate"] == "20/12/2024"
    assert runs["rb"]["rejected_by_reason"] == {"bad_date": 4, "missing_key": 2}
    assert (runs["rb"]["files_read"], runs["rb"]["raw_rows"], runs["rb"]["valid_rows"]) == (
        2, 6 + 11 + 3, 4 + 7 + 3)


@pytest.mark.spark
def test_cg_update_compares_with_active_rows_and_stages_no_seed(runs):
    up = runs["up_staged"]
    assert not [k for k in up if k[2] == 0]
    v = up[("C000000001", "V000000001", 1)]
    assert v["RecordChangeStatus"] == "Updated Record"
    assert v["change_log"].startswith(entry("Status_Termination_Date", "Null", "20250630"))
    assert ("C000000002", "V000000002", 1) not in up  # equal to its active row
    assert up[("C000000007", "V000000007", 1)]["RecordChangeStatus"] == "New Record"
    assert sorted(k[0] for k in up) == ["C000000001", "C000000007", "C000000008"]
    assert runs["up"]["seed_staged_rows"] == 0


def test_cg_created_date_formats():
    """SPEC §2.2: space or T, optional fraction, optional zone (UTC when none)."""
    import re

    ok = ["2024-12-19 15:04:05", "2024-12-19T15:04:05", "2024-12-19T15:04:05.123Z",
          "2024-12-19T15:04:05.000+0000", "2024-12-19T15:04:05+05:00"]
    bad = ["2024-12-19", "20/12/2024", "2024-12-19 15:04", "tomorrow"]
    assert all(re.match(ingest_cg._TIMESTAMP, s) for s in ok)
    assert not any(re.match(ingest_cg._TIMESTAMP, s) for s in bad)


@pytest.mark.spark
def test_cg_ingest_rerun_after_merge_changes_nothing(runs):
    now = {(k[0], v["RecordChangeStatus"]) for k, v in runs["up_staged"].items()}
    assert now == runs["up_first"]  # not recomputed against the moved target
    assert ("C000000001", "Updated Record") in now
    for name in ("files_read", "raw_rows", "valid_rows", "rejected_rows", "staged_rows"):
        assert runs["up_again"][name] == runs["up"][name]

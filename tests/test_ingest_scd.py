"""SPEC §6 (SCD transform) through the ingest_scd stage, plus the shared reading rules.

The big scenario runs once (module fixture) with four files: two readable, one
with a bad header and one that is not UTF-8; each test asserts one SPEC rule on
its staged rows, rejects or ledger events.
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
from patronage.ingest import csv_files
from patronage.stages import ingest_scd
from patronage.task import run_stage

HEADER = "PTCPNT_ID,CMBNED_DEGREE_DSBLTY,DSBL_DTR_DT"
OLD_TS = dt.datetime(2025, 1, 1, 5, 0, 0)
TS = {1: "2025-02-03 06:00:00", 2: "2025-02-04 06:00:00", 3: "2025-02-05 06:00:00",
      4: "2025-02-06 06:00:00"}

# ---------------------------------------------------------------- test helpers


argv = flat_argv


def write_file(directory: Path, name: str, content: str | bytes) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def discovered(tables, run_id: str, source: str, files: list[tuple[str, str]]) -> None:
    record_discovered(tables, run_id, source, files)


def scd_row(pid, pct, pt, *, icn, edipi=None, begin="20200101", last="20240101") -> dict:
    row = dict.fromkeys(t.TARGET_COLUMNS)
    row.update(
        participant_id=pid, ICN=icn, edipi=edipi, Batch_CD="SCD",
        SC_Combined_Disability_Percentage=pct, PT_Indicator=pt, Status_Begin_Date=begin,
        Status_Last_Update=last, SDP_Event_Created_Timestamp=OLD_TS, filename="/old.csv",
        RecordLastUpdated=OLD_TS.date(), RecordStatus=True, sentToDoD=False, change_log="",
        RecordChangeStatus="New Record",
    )
    return row


def put_target(tables, rows: list[dict]) -> None:
    tables.spark.createDataFrame(rows, t.TARGET_SCHEMA).write.format("delta").mode(
        "overwrite"
    ).saveAsTable(tables.fqn(t.PATRONAGE_UNIFIED))


def put_lookup(tables, rows: list[tuple[str, str, str | None]]) -> None:
    """(participant_id, ICN, edipi) rows of correlation_lookup."""
    data = [(icn, pid, edipi, None, "P", OLD_TS) for pid, icn, edipi in rows]
    tables.append(t.CORRELATION_LOOKUP, tables.spark.createDataFrame(data, t.LOOKUP_SCHEMA))


def put_pt(tables, name: str, rows: list[tuple[str, str | None]]) -> None:
    tables.spark.createDataFrame(rows, "PTCPNT_VET_ID string, PT_35_FLAG string").write.format(
        "delta"
    ).saveAsTable(f"spark_catalog.{tables.schema}.{name}")


def staged(tables, run_id: str) -> dict[tuple[str, int], dict]:
    rows = tables.read(t.STAGING_SCD).where(F.col("run_id") == run_id).collect()
    return {(r["participant_id"], r["file_order"]): r.asDict() for r in rows}


def rejects(tables, run_id: str) -> list[dict]:
    rows = tables.read(t.REJECTS).where(F.col("run_id") == run_id).collect()
    return [r.asDict() for r in rows]


def apply_run(tables, run_id: str) -> None:
    """A tiny SCD Type 2 apply (SPEC §8) of one run's staging, for 'one run per file'."""
    target = [r.asDict() for r in tables.read(t.PATRONAGE_UNIFIED).collect()]
    versions: dict[str, list[dict]] = {}
    for r in tables.read(t.STAGING_SCD).where(F.col("run_id") == run_id).collect():
        versions.setdefault(r["participant_id"], []).append(r.asDict())
    for pid, vs in versions.items():
        vs.sort(key=lambda v: v["file_order"])
        for row in target:
            if row["participant_id"] == pid and row["RecordStatus"]:
                row.update(RecordStatus=False, RecordChangeStatus="Expired Record")
        for i, v in enumerate(vs):
            row = {c: v[c] for c in t.TARGET_COLUMNS}
            if i < len(vs) - 1:
                row.update(RecordStatus=False, RecordChangeStatus="Expired Record")
            target.append(row)
    put_target(tables, target)


def version_set(rows) -> set[tuple]:
    return {tuple(r[c] for c in t.TARGET_COLUMNS) for r in rows}


# ---------------------------------------------------------------- the scenario

ACTIVE = [
    scd_row("P01", "050", "N", icn="I01", edipi="E01"),  # percent and PT change
    scd_row("P02", "050", "N", icn="I02", edipi="E02"),  # percent only
    scd_row("P03", "050", "N", icn="I03", edipi="E03"),  # PT only
    scd_row("P04", "040", "N", icn="I04", edipi="E04", last="20230505"),  # PT-driven, absent
    scd_row("P05", "040", "Y", icn="I05", edipi="E05"),  # PT Y already, absent
    scd_row("P06", "030", "N", icn="I06", edipi="E06"),  # unchanged
    scd_row("P07", "080", "Y", icn="I07", edipi="E07"),  # sticky Y
    scd_row("P08", "010", "N", icn="I08", edipi="E08"),  # not in lookup: fallback
    scd_row("P12", "070", "N", icn="I12", edipi="E12"),  # empty percent keeps 070
]
LOOKUP = [(p, f"I{p[1:]}", f"E{p[1:]}") for p in
          ("P01", "P02", "P03", "P04", "P05", "P06", "P07", "P12")]
LOOKUP += [("P09", "I09", "E09"), ("P10", "I10", None), ("P13", "I13", "E13"),
           ("P14", "I14", "E14")]
PT_DELTA = [("P01", "Y"), ("P03", "Y"), ("P04", "Y"), ("P04", None), ("P05", "Y"),
            ("P07", "N"), ("P10", "N"), ("P10", "Y"), ("P12", "Y")]
PT_SEED = [("P06", "Y")]  # update runs must not read the seed

FILE1 = "\n".join([
    HEADER,
    "P01,70,02032025",
    "P02,60,02032025",
    "P03,50,02032025",
    "P06,30,02032025",
    "P07,80,02032025",
    "P08,20,02032025",
    "P09,10,02032025",
    "P10,100,02032025",
    "P11,40,02032025",
    "P12,,02032025",
    "P13,,02032025",
    "P14,50,01012025",
    "P14,40,01152025",
    "P14,60,01152025",
    "P14,,01152025",
    ",50,01012025",          # row 16: missing_key
    "P15,50,13012025",       # row 17: bad_date
    "P16,50,",               # row 18: bad_date (empty)
    "P17,101,01012025",      # row 19: bad_percent
    "P18,7.5,01012025",      # row 20: bad_percent
    "P19,50,01012025,x",     # row 21: malformed_row
]) + "\n"
FILE2_BAD_HEADER = "PTCPNT_ID,PERCENT,DSBL_DTR_DT,EXTRA\nP02,10,02042025\n"
# Column order and case do not matter; CRLF line ends; quoted fields.
FILE3 = "\r\n".join([
    "dsbl_dtr_dt,PTCPNT_ID,CMBNED_DEGREE_DSBLTY",
    "02052025,P02,60",
    '02052025,"P09",20',
    "02052025,P07,90",
    "02052025,P11,40",
    "02052025,P01,",
    "02052025,P13,030",
    "02052025,P04,45",
])
FILE4_NOT_UTF8 = HEADER.encode() + b"\nP02,\xff\xfe,02062025\n"


@pytest.fixture(scope="module")
def scenario(spark, tmp_path_factory):
    """One update run over four files; then the same files one run per file."""
    from patronage.tables import Tables

    tmp = tmp_path_factory.mktemp("scd")
    schema = "t_" + uuid.uuid4().hex[:12]
    tables = Tables(spark, "spark_catalog", schema)
    tables.ensure_schema()
    put_target(tables, ACTIVE)
    put_lookup(tables, LOOKUP)
    put_pt(tables, "pt_delta", PT_DELTA)
    put_pt(tables, "pt_seed", PT_SEED)
    d = tmp / "scd"
    paths = [
        write_file(d, "CPIDODIEX_1.csv", FILE1),
        write_file(d, "CPIDODIEX_2.csv", FILE2_BAD_HEADER),
        write_file(d, "CPIDODIEX_3.csv", FILE3),
        write_file(d, "CPIDODIEX_4.csv", FILE4_NOT_UTF8),
    ]
    discovered(tables, "multi", "SCD", [(p, TS[i]) for i, p in enumerate(paths, start=1)])
    values = run_stage("ingest_scd", ingest_scd.run, argv(tmp, schema, "multi"), spark=spark)
    first = {"staged": staged(tables, "multi"), "rejects": rejects(tables, "multi")}
    # A rerun of the task for the same run replaces its staging and rejects.
    rerun = run_stage("ingest_scd", ingest_scd.run, argv(tmp, schema, "multi"), spark=spark)
    ledger = [r.asDict() for r in tables.read(t.FILE_LEDGER).where(F.col("run_id") == "multi")
              .collect()]
    multi = staged(tables, "multi")
    multi_rejects = rejects(tables, "multi")

    # The readable files again, one run per file, applying each run before the next.
    for i in (1, 3):
        run_id = f"single{i}"
        discovered(tables, run_id, "SCD", [(paths[i - 1], TS[i])])
        run_stage("ingest_scd", ingest_scd.run, argv(tmp, schema, run_id), spark=spark)
        apply_run(tables, run_id)
    singles = [
        r.asDict() for r in tables.read(t.STAGING_SCD).where(F.col("run_id") != "multi").collect()
    ]
    return {
        "paths": paths, "values": values, "rerun": rerun, "first": first, "staged": multi,
        "rejects": multi_rejects, "ledger": ledger, "singles": singles,
    }


def one(scenario, pid: str, file_order: int = 1) -> dict:
    return scenario["staged"][(pid, file_order)]


def pct_log(old: str, new: str) -> str:
    return f"SC_Combined_Disability_Percentage old value: {old} changed to new value: {new}"


PT_LOG = "PT_Indicator old value: N changed to new value: Y"


# ---------------------------------------------------------------- SPEC §6 scenarios

@pytest.mark.spark
def test_scd_new_participant_without_pt(scenario):
    v = one(scenario, "P09")
    assert (v["ICN"], v["edipi"], v["SC_Combined_Disability_Percentage"], v["PT_Indicator"]) == (
        "I09", "E09", "010", "N")
    assert (v["Status_Begin_Date"], v["Status_Last_Update"]) == ("20250203", "20250203")
    assert v["RecordChangeStatus"] == "New Record"
    assert v["change_log"] == pct_log("Null", "010")
    assert (v["RecordStatus"], v["sentToDoD"], v["Batch_CD"]) == (True, False, "SCD")
    assert v["SDP_Event_Created_Timestamp"] == dt.datetime(2025, 2, 3, 6, 0, 0)
    assert v["RecordLastUpdated"] == dt.date(2025, 2, 3)
    assert v["filename"] == scenario["paths"][0]


@pytest.mark.spark
def test_scd_new_participant_with_pt(scenario):
    v = one(scenario, "P10")  # PT delta has N and Y rows: Y wins (SPEC 2.3)
    assert (v["SC_Combined_Disability_Percentage"], v["PT_Indicator"], v["edipi"]) == (
        "100", "Y", None)
    assert v["change_log"] == f"{pct_log('Null', '100')}; {PT_LOG}"


@pytest.mark.spark
def test_scd_percent_and_pt_change(scenario):
    v = one(scenario, "P01")
    assert (v["SC_Combined_Disability_Percentage"], v["PT_Indicator"]) == ("070", "Y")
    assert v["RecordChangeStatus"] == "Updated Record"
    assert v["change_log"] == f"{pct_log('050', '070')}; {PT_LOG}"
    assert (v["Status_Begin_Date"], v["Status_Last_Update"]) == ("20200101", "20250203")


@pytest.mark.spark
def test_scd_percent_only_change(scenario):
    v = one(scenario, "P02")
    assert (v["SC_Combined_Disability_Percentage"], v["PT_Indicator"]) == ("060", "N")
    assert v["change_log"] == pct_log("050", "060")


@pytest.mark.spark
def test_scd_pt_only_change(scenario):
    v = one(scenario, "P03")
    assert (v["SC_Combined_Disability_Percentage"], v["PT_Indicator"]) == ("050", "Y")
    assert v["change_log"] == PT_LOG


@pytest.mark.spark
def test_scd_pt_driven_change_for_participant_absent_from_file(scenario):
    v = one(scenario, "P04")  # carries the run's first file name and timestamp
    assert (v["SC_Combined_Disability_Percentage"], v["PT_Indicator"]) == ("040", "Y")
    assert (v["Status_Begin_Date"], v["Status_Last_Update"]) == ("20200101", "20230505")
    assert v["filename"] == scenario["paths"][0]
    assert v["SDP_Event_Created_Timestamp"] == dt.datetime(2025, 2, 3, 6, 0, 0)
    assert v["change_log"] == PT_LOG
    assert sorted(k for k in scenario["staged"] if k[0] in ("P04", "P05")) == [
        ("P04", 1), ("P04", 3)]
    later = one(scenario, "P04", 3)  # compared with the PT-driven version, not the active row
    assert (later["change_log"], later["PT_Indicator"]) == (pct_log("040", "045"), "Y")


@pytest.mark.spark
def test_scd_pt_sticky_y_never_goes_back_to_n(scenario):
    assert ("P07", 1) not in scenario["staged"]  # PT source N, same percent: unchanged
    v = one(scenario, "P07", 3)
    assert (v["SC_Combined_Disability_Percentage"], v["PT_Indicator"]) == ("090", "Y")
    assert v["change_log"] == pct_log("080", "090")


@pytest.mark.spark
def test_scd_identity_fallback_to_active_row(scenario):
    v = one(scenario, "P08")  # P08 is not in correlation_lookup
    assert (v["ICN"], v["edipi"], v["SC_Combined_Disability_Percentage"]) == ("I08", "E08", "020")


@pytest.mark.spark
def test_scd_identity_unresolved_is_rejected_not_staged(scenario):
    assert not [k for k in scenario["staged"] if k[0] == "P11"]
    unresolved = [r for r in scenario["rejects"] if r["reason_code"] == "identity_unresolved"]
    assert sorted((r["file"], r["row_number"]) for r in unresolved) == [
        (scenario["paths"][0], 9), (scenario["paths"][2], 4)]
    assert json.loads(unresolved[0]["raw_row"])["PTCPNT_ID"] == "P11"


@pytest.mark.spark
def test_scd_duplicate_participant_in_file_tie_breaks(scenario):
    # latest decision date, then the highest percent (an empty percent is lowest)
    v = one(scenario, "P14")
    assert (v["SC_Combined_Disability_Percentage"], v["Status_Last_Update"]) == ("060", "20250115")


@pytest.mark.spark
def test_scd_empty_percent_uses_active_value_else_000(scenario):
    assert one(scenario, "P12")["SC_Combined_Disability_Percentage"] == "070"
    assert one(scenario, "P12")["PT_Indicator"] == "Y"
    assert one(scenario, "P13")["SC_Combined_Disability_Percentage"] == "000"


@pytest.mark.spark
def test_scd_unchanged_row_produces_nothing(scenario):
    # P06 unchanged (and the PT seed table is not read in update mode); P05 already Y.
    assert not [k for k in scenario["staged"] if k[0] in ("P05", "P06")]


@pytest.mark.spark
def test_scd_later_file_compares_with_state_left_by_previous_file(scenario):
    st = scenario["staged"]
    assert ("P02", 3) not in st  # 060 again: unchanged vs file 1, although active says 050
    assert ("P01", 3) not in st  # empty percent keeps file 1's 070
    v = st[("P09", 3)]
    assert v["RecordChangeStatus"] == "Updated Record"
    assert v["change_log"] == pct_log("010", "020")
    assert (v["Status_Begin_Date"], v["Status_Last_Update"]) == ("20250203", "20250205")
    assert st[("P13", 3)]["change_log"] == pct_log("000", "030")
    assert sorted(k for k in st if k[1] == 3) == [("P04", 3), ("P07", 3), ("P09", 3), ("P13", 3)]
    assert len(st) == 14


@pytest.mark.spark
def test_scd_bad_rows_each_rejected_with_reason(scenario):
    f1 = scenario["paths"][0]
    got = sorted((r["row_number"], r["reason_code"]) for r in scenario["rejects"]
                 if r["file"] == f1 and r["reason_code"] != "identity_unresolved")
    assert got == [(16, "missing_key"), (17, "bad_date"), (18, "bad_date"), (19, "bad_percent"),
                   (20, "bad_percent"), (21, "malformed_row")]
    for r in scenario["rejects"]:  # the message names file, row and rule
        assert r["message"].startswith(f"file {r['file']}, row {r['row_number']}: ")
    messages = {r["row_number"]: r["message"] for r in scenario["rejects"] if r["file"] == f1}
    assert "PTCPNT_ID" in messages[16] and "DSBL_DTR_DT" in messages[17]
    assert "CMBNED_DEGREE_DSBLTY" in messages[19] and "more fields" in messages[21]
    bad_pct = next(r for r in scenario["rejects"] if r["row_number"] == 20)
    assert json.loads(bad_pct["raw_row"]) == {
        "PTCPNT_ID": "P18", "CMBNED_DEGREE_DSBLTY": "7.5", "DSBL_DTR_DT": "01012025"}
    assert scenario["values"]["rejected_by_reason"] == {
        "bad_date": 2, "bad_percent": 2, "identity_unresolved": 2, "malformed_row": 1,
        "missing_key": 1}


@pytest.mark.spark
def test_scd_bad_header_or_undecodable_file_rejected_as_a_whole_others_go_on(scenario):
    by_path = {}
    for e in scenario["ledger"]:
        by_path.setdefault(e["path"], []).append(e)
    p1, p2, p3, p4 = scenario["paths"]
    assert {e["status"] for e in by_path[p2]} == {"discovered", "rejected"}
    reason2 = next(e["reason"] for e in by_path[p2] if e["status"] == "rejected")
    assert p2 in reason2 and "CMBNED_DEGREE_DSBLTY" in reason2 and "'PERCENT'" in reason2
    assert "'EXTRA'" in reason2
    reason4 = next(e["reason"] for e in by_path[p4] if e["status"] == "rejected")
    assert "UTF-8" in reason4
    ingested3 = next(e for e in by_path[p3] if e["status"] == "ingested")
    assert (ingested3["raw_rows"], ingested3["valid_rows"], ingested3["rejected_rows"],
            ingested3["staged_rows"]) == (7, 7, 1, 4)
    ingested1 = next(e for e in by_path[p1] if e["status"] == "ingested")
    assert (ingested1["raw_rows"], ingested1["valid_rows"], ingested1["rejected_rows"],
            ingested1["staged_rows"]) == (21, 15, 7, 10)
    v = scenario["values"]
    assert (v["files_read"], v["files_rejected"], v["raw_rows"], v["valid_rows"],
            v["rejected_rows"], v["staged_rows"]) == (2, 2, 28, 22, 8, 14)


@pytest.mark.spark
def test_scd_several_files_in_one_run_equal_one_run_per_file(scenario):
    assert version_set(scenario["singles"]) == version_set(scenario["staged"].values())
    assert len(scenario["singles"]) == len(scenario["staged"])


@pytest.mark.spark
def test_scd_rerun_replaces_staging_and_rejects(scenario):
    assert scenario["rerun"]["staged_rows"] == scenario["values"]["staged_rows"] == 14
    assert len(scenario["staged"]) == len(scenario["first"]["staged"]) == 14
    assert len(scenario["rejects"]) == len(scenario["first"]["rejects"]) == 8


@pytest.mark.spark
def test_scd_rebuild_ignores_target_and_reads_pt_seed_with_delta(spark, tables, tmp_path):
    put_target(tables, [scd_row("R1", "050", "Y", icn="J1")])
    put_lookup(tables, [("R1", "J1", None), ("R2", "J2", None), ("R3", "J3", None)])
    put_pt(tables, "pt_seed", [("R2", "Y"), ("R3", None)])
    put_pt(tables, "pt_delta", [("R2", "N"), ("R3", "N")])
    path = write_file(tmp_path / "scd", "CPIDODIEX_r.csv",
                      f"{HEADER}\nR1,50,07012024\nR2,60,07012024\nR3,70,07012024\n")
    discovered(tables, "rb", "SCD", [(path, "2024-07-02 00:00:00")])
    run_stage("ingest_scd", ingest_scd.run, argv(tmp_path, tables.schema, "rb", "rebuild"),
              spark=spark)
    st = staged(tables, "rb")
    assert {k[0]: (v["PT_Indicator"], v["RecordChangeStatus"]) for k, v in st.items()} == {
        "R1": ("N", "New Record"), "R2": ("Y", "New Record"), "R3": ("N", "New Record")}


# ---------------------------------------------------------------- reading rules, no Spark

def test_header_order_and_case_do_not_matter_but_names_must_match():
    expected = ingest_scd.COLUMNS
    header, problem = csv_files.check_header(
        ["\ufeffdsbl_dtr_dt", " PTCPNT_ID", "CMBNED_DEGREE_DSBLTY"], expected
    )
    assert problem is None and header == ("DSBL_DTR_DT", "PTCPNT_ID", "CMBNED_DEGREE_DSBLTY")
    _, problem = csv_files.check_header(["PTCPNT_ID", "PTCPNT_ID", "X"], expected)
    assert problem is not None
    assert "missing column(s) CMBNED_DEGREE_DSBLTY, DSBL_DTR_DT" in problem
    assert "unexpected column(s) 'X'" in problem and "repeated column(s) PTCPNT_ID" in problem


def test_undecodable_or_empty_file_is_refused():
    _, problem = csv_files.inspect_file(b"PTCPNT_ID,\xff\n", ingest_scd.COLUMNS)
    assert problem is not None and "UTF-8" in problem
    _, problem = csv_files.inspect_file(b"", ingest_scd.COLUMNS)
    assert problem == "has no header line"
    data = ("\ufeff" + HEADER + "\r\n1,2,3").encode()
    header, problem = csv_files.inspect_file(data, ingest_scd.COLUMNS)
    assert problem is None and header == ingest_scd.COLUMNS


def test_publishes_declares_the_values():
    assert set(ingest_scd.PUBLISHES) == {
        "files_read", "files_rejected", "raw_rows", "valid_rows", "rejected_rows",
        "rejected_by_reason", "staged_rows", "file_rejects", "refused_files"}


# ---------------------------------------------------------------- reading at scale


@pytest.fixture
def small_splits(spark):
    """Spark cuts every file into splits of a few KB, as it cuts a large file into 128 MB ones."""
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    before = {k: spark.conf.get(k) for k in keys}
    for k in keys:
        spark.conf.set(k, "2048")
    yield
    for k, v in before.items():
        spark.conf.set(k, v)


def test_a_file_is_read_in_splits_never_whole_on_the_driver(spark, tmp_path, small_splits,
                                                           monkeypatch):
    from patronage.fs import FileSystem
    from patronage.repositories.ledger import RunFile

    def whole_read(self, path):
        raise AssertionError(f"{path} read whole on the driver")

    monkeypatch.setattr(FileSystem, "read_bytes", whole_read)
    lines = [f"P{i:05d},{i % 101},01022025" for i in range(1, 3001)]
    lines[999] = ""  # a blank line keeps its number
    good = write_file(tmp_path, "good.csv", "\r\n".join([HEADER, *lines]) + "\r\n")
    bad_lines = [line.encode() for line in lines]
    bad_lines[2499] = b"P02500,\xff,01022025"
    bad = write_file(tmp_path, "bad.csv", b"\n".join([HEADER.encode(), *bad_lines]))
    files = [RunFile(good, "good.csv", None, TS[1], 1), RunFile(bad, "bad.csv", None, TS[2], 2)]

    reading = csv_files.read_files(spark, FileSystem(), files, ingest_scd.COLUMNS)
    assert reading.rows.rdd.getNumPartitions() > 20
    assert [a.file.file_name for a in reading.accepted] == ["good.csv"]
    assert [reason for _, reason in reading.refused] == [
        f"file {bad} rejected: cannot be decoded as UTF-8 (invalid byte on line 2501)"]
    rows = {r["row_number"]: r["PTCPNT_ID"] for r in reading.rows.collect()}
    assert len(rows) == 2999 and 1000 not in rows
    assert all(rows[n] == f"P{n:05d}" for n in rows)
    # The accepted file's lines (header and blank line too) bound its rows from above.
    assert reading.line_count == 3001


@pytest.mark.spark
def test_run_keys_trust_a_bound_within_the_limit_and_count_the_keys_otherwise(spark, monkeypatch):
    from patronage.ingest import row_rules as rr

    monkeypatch.setattr(rr, "NARROW_MAX_KEYS", 2)
    keys = spark.createDataFrame([("a",), ("b",), ("b",), (None,), ("c",)], "k STRING")

    def decide(most, group):
        spark.sparkContext.setJobGroup(group, "run_keys")
        try:
            distinct, few = rr.run_keys(keys, "k", lambda df: df, most)
        finally:
            spark.sparkContext.setJobGroup("", "")
        return few, len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))

    group = uuid.uuid4().hex
    # Lines within the limit: the keys can be no more, so no job counts them.
    assert decide(2, group + "-bound") == (True, 0)
    # Lines past the limit, or none known: the distinct keys are counted (3 > 2).
    few, jobs = decide(5, group + "-over")
    assert few is False and jobs >= 1
    assert decide(None, group + "-none")[0] is False


@pytest.mark.spark
def test_narrowing_keeps_every_row_of_the_days_keys_and_no_row_without_a_key(spark):
    from patronage.ingest import row_rules as rr

    table = spark.createDataFrame(
        [("a", 1), ("a", 2), ("b", 3), ("c", 4), (None, 5), ("", 6)], "k STRING, v INT"
    )
    keys = spark.createDataFrame([("a",), ("c",), ("z",)], "k STRING")
    narrowed = rr.narrow_to(table, keys, "k")
    assert sorted(tuple(r) for r in narrowed.collect()) == [("a", 1), ("a", 2), ("c", 4)]


@pytest.mark.spark
def test_scd_unresolved_rejects_keep_the_line_or_the_pt_row_that_caused_them(spark):
    # SPEC 6.8: only the rows whose change stayed without ICN; a file row keeps
    # its own line as raw_row, a PT-driven change the PT source row (a Y).
    versions = spark.createDataFrame(
        [("P1", 1, 4, "/in/a.csv", False, False), ("P2", 1, None, "/in/a.csv", False, True),
         ("P3", 1, 5, "/in/a.csv", True, False)],
        "participant_id STRING, file_order INT, row_number LONG, _path STRING, "
        "_resolved BOOLEAN, _is_ptd BOOLEAN",
    )
    checked = spark.createDataFrame(
        [(1, 4, '{"PTCPNT_ID":"P1"}'), (1, 5, '{"PTCPNT_ID":"P3"}'), (2, 4, '{"other":1}')],
        "file_order INT, row_number LONG, raw_row STRING",
    )
    got = sorted(
        (r["row_number"] or 0, r["raw_row"], r["message"].split(": ", 1)[1][:18])
        for r in ingest_scd.unresolved_rejects(versions, checked, "r1").collect()
    )
    assert got == [
        (0, '{"PTCPNT_ID":"P2","PT_35_FLAG":"Y"}', "PT-driven change ("),
        (4, '{"PTCPNT_ID":"P1"}', "change for a parti"),
    ]


@pytest.mark.spark
def test_an_ingest_leaves_nothing_cached_also_when_its_run_is_already_merged(
    spark, tables, tmp_path
):
    """The PT sources are read and cached beside the ledger; every frame is released."""
    from patronage.repositories.ledger import FileLedger

    def cached() -> list[str]:
        """Frames this product persisted (Delta keeps each snapshot's state cached too)."""
        infos = spark.sparkContext._jsc.sc().getRDDStorageInfo()
        names = [str(info.name()) for info in infos]
        return sorted(n for n in names if not n.startswith("Delta Table"))

    put_target(tables, [scd_row("C1", "050", "N", icn="K1")])
    put_lookup(tables, [("C1", "K1", None)])
    put_pt(tables, "pt_delta", [("C1", "Y")])
    path = write_file(tmp_path / "scd", "CPIDODIEX_c.csv", f"{HEADER}\nC1,60,07012024\n")
    discovered(tables, "c", "SCD", [(path, "2024-07-02 00:00:00")])
    before = cached()

    first = run_stage("ingest_scd", ingest_scd.run, argv(tmp_path, tables.schema, "c"), spark=spark)
    assert first["staged_rows"] == 1 and cached() == before
    FileLedger(tables).mark_merged("c", "update")
    again = run_stage("ingest_scd", ingest_scd.run, argv(tmp_path, tables.schema, "c"), spark=spark)
    assert again["staged_rows"] == 1 and cached() == before

"""ingest_scd and ingest_cg at the same time, as the job runs them on Databricks.

Both depend only on discover and identity, so Databricks starts them together
on the job's cluster. Their Delta commits must never conflict: each ingest
writes its own staging table and its own partition of patronage_rejects, and
only appends to the ledger and the run state. Here both run at once in one
Spark session, twice (a first attempt, then a repair of both), and must leave
exactly what the same ingests leave one after the other.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from conftest import flat_argv, record_discovered
from patronage import tables as t
from patronage.repositories.task_values import RunState
from patronage.stages import ingest_cg, ingest_scd
from patronage.tables import Tables
from patronage.task import DURATION_VALUE, STATUS_VALUE, run_stage

RUN = "par"
OLD_TS = dt.datetime(2025, 1, 1, 5, 0, 0)
SCD_LINES = [
    "PTCPNT_ID,CMBNED_DEGREE_DSBLTY,DSBL_DTR_DT",
    "P1,70,02032025",
    "P2,30,02032025",
    "P3,50,13452025",  # bad_date
    ",40,02032025",  # missing_key
    "P4,101,02032025",  # bad_percent
]
CG_ROWS = [
    {"Caregiver_ICN__c": "C000000001", "Veteran_ICN__c": "V000000001",
     "Applicant_Type__c": "Primary Caregiver", "Caregiver_Status__c": "Approved",
     "Dispositioned_Date__c": "2024-01-01", "CreatedDate": "2024-12-20 10:00:00"},
    {"Caregiver_ICN__c": "C000000002", "Veteran_ICN__c": "V000000002",
     "Applicant_Type__c": "Primary Caregiver", "Caregiver_Status__c": "Approved",
     "Dispositioned_Date__c": "2024-02-30", "CreatedDate": "2024-12-20 10:00:00"},  # bad_date
    {"Caregiver_ICN__c": "", "Veteran_ICN__c": "V000000003",
     "Applicant_Type__c": "Primary Caregiver", "Caregiver_Status__c": "Approved",
     "CreatedDate": "2024-12-20 10:00:00"},  # missing_key
]  # fmt: skip
CG_LINES = [
    ",".join(ingest_cg.COLUMNS),
    *(",".join(row.get(c, "") for c in ingest_cg.COLUMNS) for row in CG_ROWS),
]
TASKS = {"ingest_scd": ingest_scd.run, "ingest_cg": ingest_cg.run}


def setup(spark, tmp: Path) -> tuple[Tables, list[str]]:
    """A schema with the run's two files discovered, a lookup and both PT tables."""
    schema = "t_" + uuid.uuid4().hex[:12]
    tables = Tables(spark, "spark_catalog", schema)
    tables.ensure_schema()
    for source, name, lines in (("scd", "CPIDODIEX_20250303.csv", SCD_LINES),
                                ("cg", "caregiver_20250303.csv", CG_LINES)):  # fmt: skip
        (tmp / source).mkdir(parents=True, exist_ok=True)
        path = tmp / source / name
        path.write_text("\n".join(lines) + "\n")
        record_discovered(tables, RUN, source.upper(), [(str(path), "2025-03-03 06:00:00")])
    lookup = [(f"10{i}", f"P{i}", f"E{i}", None, "P", OLD_TS) for i in (1, 2)]
    tables.append(t.CORRELATION_LOOKUP, spark.createDataFrame(lookup, t.LOOKUP_SCHEMA))
    for name, rows in (("pt_seed", [("P1", "Y")]), ("pt_delta", [("P2", "Y")])):
        spark.createDataFrame(rows, "PTCPNT_VET_ID string, PT_35_FLAG string").write.format(
            "delta"
        ).saveAsTable(f"spark_catalog.{schema}.{name}")
    return tables, flat_argv(tmp, schema, RUN)


def outcome(tables: Tables) -> dict[str, object]:
    """What the ingests left for the run: staged versions, rejects, ledger and values."""
    staged = {
        source: sorted(
            (r["participant_id"], r["ICN"], r["RecordChangeStatus"], r["file_order"])
            for r in tables.read(table).where(F.col("run_id") == RUN).collect()
        )
        for source, table in (("SCD", t.STAGING_SCD), ("CG", t.STAGING_CG))
    }  # fmt: skip
    rejects = sorted(
        (r["source"], r["reason_code"], r["row_number"])
        for r in tables.read(t.REJECTS).where(F.col("run_id") == RUN).collect()
    )
    ledger = sorted(
        (r["source"], r["status"], r["staged_rows"], r["rejected_rows"])
        for r in tables.read(t.FILE_LEDGER).where(F.col("run_id") == RUN).collect()
    )
    values = RunState(tables, RUN).get_all()
    published = {
        k: {n: v for n, v in values[k].items() if n != DURATION_VALUE} for k in TASKS
    }
    return {"staged": staged, "rejects": rejects, "ledger": ledger, "values": published}


def run_both_at_once(spark, argv: list[str]) -> None:
    start = threading.Barrier(len(TASKS))

    def task(key: str) -> dict:
        start.wait()
        return run_stage(key, TASKS[key], argv, spark=spark)

    with ThreadPoolExecutor(max_workers=len(TASKS)) as pool:
        for done in [pool.submit(task, key) for key in TASKS]:
            assert done.result()[STATUS_VALUE] == "SUCCESS"


@pytest.mark.spark
def test_both_ingests_at_once_and_a_repair_of_both_leave_what_one_after_the_other_leaves(
    spark, tmp_path
):
    sequential, seq_argv = setup(spark, tmp_path / "one_after_the_other")
    for key, stage in TASKS.items():
        run_stage(key, stage, seq_argv, spark=spark)
    expected = outcome(sequential)
    assert expected["staged"]["SCD"] and expected["staged"]["CG"]
    assert {s for s, _, _ in expected["rejects"]} == {"SCD", "CG"}

    parallel, par_argv = setup(spark, tmp_path / "at_once")
    run_both_at_once(spark, par_argv)
    first = outcome(parallel)
    # A repair of both (each replaces what its first attempt staged and rejected).
    run_both_at_once(spark, par_argv)
    repaired = outcome(parallel)

    assert first["staged"] == expected["staged"] == repaired["staged"]
    assert first["rejects"] == expected["rejects"] == repaired["rejects"]
    assert first["values"] == expected["values"] == repaired["values"]
    assert first["ledger"] == expected["ledger"]
    # The repair appended one more ingest event per file, nothing else.
    assert sorted(set(repaired["ledger"])) == sorted(set(expected["ledger"]))
    assert len(repaired["ledger"]) == len(expected["ledger"]) + 2

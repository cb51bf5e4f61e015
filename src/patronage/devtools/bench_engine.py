"""The engine's own cost of an ingest, for ``patronage bench`` to measure the pipeline against."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from patronage import tables as t
from patronage.phases import Phases

if TYPE_CHECKING:
    from patronage.devtools.benchmark import Bench, Files


def bare_ingest(
    bench: Bench, files: Files, *, by_run: bool = False
) -> tuple[float, dict[str, Any]]:
    """What any SCD ingest must do with Delta, and nothing else.

    Read the run's ledger rows, read the files, read the active rows and the
    lookup of the files' participants, and write the result in the commits the
    job's contract asks of an ingest: the staged versions, the rejects, the
    ledger's events and the task values (one commit each). No rules: every
    row is "staged" as read, joined to its state.

    ``by_run``: stage and reject as a rerun must, replacing the run's rows in
    one commit (``INSERT ... REPLACE WHERE run_id``) instead of appending; the
    difference is Delta's own price of "a rerun never duplicates".
    """
    from pyspark.sql import functions as F

    spark, pid = bench.spark, "participant_id"
    # As in the job, the ledger was just committed by discover: its read pays
    # for the new snapshot, not a cached one.
    bench.new_run(files, [])
    started = time.perf_counter()
    phases = Phases("bare_ingest")
    lap = phases.lap

    bench.tables.read(t.FILE_LEDGER).where(F.col("source") == "SCD").select(
        "path", "status", "run_id").collect()  # fmt: skip
    lap("ledger read")
    rows = (
        spark.read.option("header", True).csv([p.as_posix() for p, _, _ in files])
        .select(F.col("PTCPNT_ID").alias(pid), "CMBNED_DEGREE_DSBLTY", "DSBL_DTR_DT",
                F.input_file_name().alias("filename"))
    )  # fmt: skip
    keys = F.broadcast(rows.select(pid).distinct())
    target = bench.tables.read(t.PATRONAGE_UNIFIED)
    active = target.where(F.col("RecordStatus") & (F.col("Batch_CD") == "SCD")).select(
        pid, "ICN", "edipi", "SC_Combined_Disability_Percentage", "PT_Indicator",
        "Status_Begin_Date", "Status_Last_Update").join(keys, pid, "left_semi")  # fmt: skip
    lookup = bench.tables.read(t.CORRELATION_LOOKUP).select(
        pid, F.col("MVIPersonICN"), F.col("edipi").alias("lookup_edipi")
    ).join(keys, pid, "left_semi")
    run_id = uuid.uuid4().hex
    staged = rows.join(F.broadcast(active), pid, "left").join(
        F.broadcast(lookup), pid, "left").withColumn("run_id", F.lit(run_id))  # fmt: skip
    out = f"spark_catalog.`{bench.schema}`.`bench_bare{'_by_run' if by_run else ''}_%s`"

    def commit(df: Any, name: str) -> None:
        table = out % name
        if by_run and name in ("staging", "rejects"):
            if not spark.catalog.tableExists(table):
                df.limit(0).write.format("delta").saveAsTable(table)
            spark.sql(f"INSERT INTO {table} REPLACE WHERE run_id = :run_id SELECT * FROM {{rows}}",
                      args={"run_id": run_id}, rows=df)  # fmt: skip
        else:
            df.write.format("delta").mode("append").saveAsTable(table)

    commit(staged, "staging")
    lap("files + state + staging write")
    for name in ("rejects", "ledger", "task_values"):
        one = spark.createDataFrame([(name, 1, run_id)], "what STRING, n INT, run_id STRING")
        commit(one, name)
        lap(f"{name} commit")
    seconds = time.perf_counter() - started
    return seconds, {"bare_ingest": {"seconds": seconds, "phases": phases.seconds}}


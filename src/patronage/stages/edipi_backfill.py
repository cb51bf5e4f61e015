"""Task ``edipi_backfill``: the monthly lagged-EDIPI file and in-place update (SPEC §9.2).

Candidates are active rows with no edipi whose ICN now has one in the lookup.
The DMDC-eligible ones go to ``LAGGED_EDIPI_PATRONAGE_<date>.txt`` (written
atomically, first), then one MERGE sets ``edipi`` on every candidate row in
place. Only ``edipi`` changes: not ``RecordLastUpdated``, ``sentToDoD``,
``change_log`` or the status, because this is not a new version of the
person's eligibility (SPEC: no new version) and ``RecordLastUpdated`` stays
the date of the version's source timestamp. The Delta commit (userMetadata
``patronage-edipi-backfill:<run_id>``) and the lagged file are the audit trail.

Idempotent: after success there are no candidates, so a rerun writes and
updates nothing and leaves the file alone. A crash between file and MERGE is
repaired by rewriting the same records. Should a rerun of the same run date
find new candidates while the day's file exists, the file becomes the union of
its records and the new ones, so nothing already written is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patronage import config, delta_log
from patronage import dmdc_format as fmt
from patronage import tables as t
from patronage.faults import CrashPoint, crash_point
from patronage.spark import USER_METADATA_CONF, session_conf
from patronage.stages.dmdc_export import due_flag
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

PUBLISHES: tuple[str, ...] = (
    "triggered",
    "reason",
    "candidates",
    "eligible_written",
    "rows_updated",
    "filename",
)

LOOKUP_EDIPI = "_lookup_edipi"
ELIGIBLE = "_eligible"


def resolvable_edipis(lookup: DataFrame) -> DataFrame:
    """(MVIPersonICN, _lookup_edipi): ICNs with exactly one non-null edipi.

    The lookup holds one row per ICN; should it ever hold two different edipis
    for one ICN, that ICN is left alone rather than guessed (and the MERGE
    would refuse two source rows for one target row anyway).
    """
    return (
        lookup.where(F.col("MVIPersonICN").isNotNull() & F.col("edipi").isNotNull())
        .groupBy("MVIPersonICN")
        .agg(F.min("edipi").alias(LOOKUP_EDIPI), F.countDistinct("edipi").alias("_n"))
        .where(F.col("_n") == 1)
        .drop("_n")
    )


def backfill_candidates(target: DataFrame, lookup: DataFrame, run_date: dt.date) -> DataFrame:
    """Candidate rows as records (lookup edipi first) plus their DMDC eligibility."""
    active_without_edipi = target.where(
        (F.col("RecordStatus") == F.lit(True)) & F.col("edipi").isNull() & F.col("ICN").isNotNull()
    )
    joined = active_without_edipi.join(
        resolvable_edipis(lookup), F.col("ICN") == F.col("MVIPersonICN"), "inner"
    )
    return joined.select(
        F.col(LOOKUP_EDIPI).alias("edipi"),
        *fmt.RECORD_COLUMNS[1:],
        fmt.eligible(run_date).alias(ELIGIBLE),
    )


def backfill_marker(run_id: str) -> str:
    return f"patronage-edipi-backfill:{run_id}"


def earlier_backfill(ctx: TaskContext) -> int | None:
    """Rows updated by this run's backfill MERGE when the target's history holds it."""
    marker = backfill_marker(ctx.settings.run_id)
    commit = delta_log.marked_commit(ctx.tables, t.PATRONAGE_UNIFIED, marker)
    return None if commit is None else int(commit.get("numTargetRowsUpdated") or 0)


def set_edipi_in_place(ctx: TaskContext, lookup: DataFrame) -> int:
    """One MERGE: edipi from the lookup onto active rows without one; rows updated."""
    target = ctx.tables.delta(t.PATRONAGE_UNIFIED)
    with session_conf(ctx.spark, {USER_METADATA_CONF: backfill_marker(ctx.settings.run_id)}):
        metrics = (
            target.alias("t")
            .merge(
                resolvable_edipis(lookup).alias("s"),
                "t.ICN = s.MVIPersonICN AND t.RecordStatus = true AND t.edipi IS NULL",
            )
            .whenMatchedUpdate(set={"edipi": f"s.{LOOKUP_EDIPI}"})
            .execute()
            .collect()
        )
    return int(metrics[0]["num_updated_rows"])


def run(ctx: TaskContext) -> dict[str, Any]:
    facts = ctx.upstream("discover")
    run_date = config.parse_date("run_date", str(facts["run_date"]))
    filename = fmt.lagged_filename(run_date)
    path = ctx.settings.export_dir.rstrip("/") + "/" + filename
    values: dict[str, Any] = {
        "triggered": False,
        "reason": "not due",
        "candidates": 0,
        "eligible_written": 0,
        "rows_updated": 0,
        "filename": None,
    }
    if not due_flag(facts.get("edipi_backfill_due")):
        log.info("EDIPI backfill not due for %s", run_date)
        return values
    values["triggered"] = True

    done = earlier_backfill(ctx)
    if done is not None:
        # A repair of a run whose earlier attempt backfilled and died: its values.
        kept = ctx.fs.exists(path)
        written = len(fmt.parse_records(ctx.fs.read_bytes(path), filename)) if kept else 0
        log.info("EDIPI backfill already applied by this run: %d rows updated", done)
        values.update(candidates=done, rows_updated=done, eligible_written=written,
                      filename=filename if kept else None, reason="backfilled")  # fmt: skip
        return values

    lookup = ctx.tables.read(t.CORRELATION_LOOKUP)
    rows = backfill_candidates(ctx.tables.read(t.PATRONAGE_UNIFIED), lookup, run_date).collect()
    values["candidates"] = len(rows)
    if not rows:
        kept = ctx.fs.exists(path)
        log.info("EDIPI backfill: no candidates%s", f"; {filename} left as it is" if kept else "")
        values.update(reason="no candidates", filename=filename if kept else None)
        return values

    eligible = [tuple(r)[: len(fmt.RECORD_COLUMNS)] for r in rows if r[ELIGIBLE]]
    if eligible:
        records = fmt.format_records(eligible)
        if ctx.fs.exists(path):
            # A repair after a crash before the MERGE finds the same records;
            # anything else is kept too, so nothing already written is lost.
            before = fmt.parse_records(ctx.fs.read_bytes(path), filename)
            union = fmt.union_records(before, records)
            if union != records:
                log.warning("EDIPI backfill: %s exists with other records; writing the union "
                            "(%d records before, %d after)", filename, len(before), len(union))
            records = union
        ctx.fs.write_atomic(path, fmt.file_content(records))
        values["filename"] = filename
        log.info("wrote %s with %d records", filename, len(records))
        crash_point(CrashPoint.EDIPI_BACKFILL_AFTER_FILE)
    elif ctx.fs.exists(path):
        values["filename"] = filename  # from an earlier attempt: left as it is
    values["eligible_written"] = len(eligible)

    values["rows_updated"] = set_edipi_in_place(ctx, lookup)
    crash_point(CrashPoint.EDIPI_BACKFILL_AFTER_UPDATE)
    values["reason"] = "backfilled"
    log.info("EDIPI backfill: %d candidates, %d eligible written, %d rows updated",
             len(rows), len(eligible), values["rows_updated"])
    return values


main = entry_point("edipi_backfill", run)

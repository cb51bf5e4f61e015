"""Stage ``ingest_scd``: the run's SCD files -> staged versions (SPEC §6).

Several files in one run must give exactly what applying them one run at a
time gives. Instead of a Spark job per file, every file of the run is handled
at once, per participant over file_order, using what sequential application
implies (derivation in :func:`scd_versions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patronage import change_log as changelog
from patronage.ingest import csv_files as csv
from patronage.ingest import row_rules as rr
from patronage.ingest.template import COMMON_PUBLISHES, IngestInputs, IngestSpec, run_ingest
from patronage.pt_sources import read as read_pt
from patronage.pt_sources import source as pt_source
from patronage.repositories.rejects import RejectReason
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

SOURCE = "SCD"
COLUMNS = ("PTCPNT_ID", "CMBNED_DEGREE_DSBLTY", "DSBL_DTR_DT")
PUBLISHES: tuple[str, ...] = COMMON_PUBLISHES

PID = "participant_id"
PCT, PCT_NUM, DATE = "_pct", "_pct_num", "_date"
IS_PTD, RESOLVED = "_is_ptd", rr.RESOLVED
DEFAULT_PERCENT = "000"
PERCENT_COLUMN = "SC_Combined_Disability_Percentage"


# --------------------------------------------------------------------------- rules


def validate(rows: DataFrame) -> DataFrame:
    """SPEC §6.1-6.2 row rules: ``_reason``/``_rule`` of the first failing rule (null = valid)."""
    pid, pct, d = F.col("PTCPNT_ID"), F.col("CMBNED_DEGREE_DSBLTY"), F.col("DSBL_DTR_DT")
    date = rr.strict_date(d, r"^[0-9]{8}$", "MMddyyyy")
    pct_num = pct.try_cast("int")
    pct_ok = pct.rlike(r"^[0-9]{1,3}$") & (pct_num <= 100)
    code, rule = rr.first_failure(
        [
            rr.malformed_row(),
            (pid.isNull(), RejectReason.MISSING_KEY, "PTCPNT_ID is empty (SPEC 6.1)"),
            (date.isNull(), RejectReason.BAD_DATE, "DSBL_DTR_DT is not a date MMddyyyy (SPEC 6.1)"),
            (
                pct.isNotNull() & ~F.coalesce(pct_ok, F.lit(False)),
                RejectReason.BAD_PERCENT,
                "CMBNED_DEGREE_DSBLTY is not an integer from 0 to 100 (SPEC 6.2)",
            ),
        ]
    )
    return rows.select(
        "*",
        code.alias(rr.REASON),
        rule.alias(rr.RULE),
        pid.alias(PID),
        F.lpad(pct_num.cast("string"), 3, "0").alias(PCT),
        pct_num.alias(PCT_NUM),
        rr.yyyymmdd(date).alias(DATE),
    )


def pt_flags(sources: list[DataFrame]) -> DataFrame:
    """SPEC §2.3: one flag per participant, Y when any non-null row says Y, else N."""
    rows = None
    for src in sources:
        part = src.select(
            F.trim(F.col("PTCPNT_VET_ID").cast("string")).alias(PID),
            F.upper(F.trim(F.col("PT_35_FLAG").cast("string"))).alias("_flag"),
        )
        rows = part if rows is None else rows.unionByName(part)
    assert rows is not None
    return (
        rows.where(F.col(PID).isNotNull() & F.col("_flag").isNotNull())
        .groupBy(PID)
        .agg(F.max((F.col("_flag") == "Y").cast("int")).alias("_any_y"))
        .select(PID, F.when(F.col("_any_y") == 1, "Y").otherwise("N").alias("_pt_src"))
    )


def active_state(active: DataFrame) -> DataFrame:
    """The active SCD row per participant.

    At most one per key is the target's invariant (merge keeps it, ``patronage
    check`` verifies it); not deduplicated again here, as that costs a sort of
    the whole active target on every run.
    """
    return active.where(F.col(PID).isNotNull()).select(
        PID,
        F.lit(True).alias("_a_exists"),
        F.col("SC_Combined_Disability_Percentage").alias("_a_pct"),
        F.col("PT_Indicator").alias("_a_pt"),
        F.col("Status_Begin_Date").alias("_a_begin"),
        F.col("Status_Last_Update").alias("_a_last"),
        F.col("ICN").alias("_a_icn"),
        F.col("edipi").alias("_a_edipi"),
    )


def identity_by_participant(lookup: DataFrame) -> DataFrame:
    """ICN and EDIPI by participant_id (unique: SPEC §3.4 quarantines ambiguity)."""
    return lookup.where(F.col(PID).isNotNull()).select(
        PID, F.col("MVIPersonICN").alias("_l_icn"), F.col("edipi").alias("_l_edipi")
    )


def participant_state(
    keys: DataFrame, active: DataFrame, lookup: DataFrame, pt_y: DataFrame
) -> DataFrame:
    """One row per participant of the run: its active row, its identity and a PT source Y.

    ``keys``: distinct participant_id; ``active``: :func:`active_state` rows;
    ``lookup``: :func:`identity_by_participant` rows; ``pt_y``: the :func:`pt_flags`
    rows that say Y (only a PT source Y changes anything: SPEC 6.7 and sticky Y).
    Every rule reads the state from this one frame: the large tables are joined
    once, not once per rule.
    """
    return keys.join(active, PID, "left").join(lookup, PID, "left").join(pt_y, PID, "left")


def latest_per_file(valid: DataFrame) -> DataFrame:
    """SPEC §6.2: one row per participant and file: latest date, highest percent, later row."""
    return rr.latest_per_file(
        valid, [PID], [F.col(DATE), F.col(PCT_NUM).asc_nulls_first(), F.col(csv.ROW_NUMBER)]
    )


def scd_versions(valid: DataFrame, state: DataFrame, files: DataFrame) -> DataFrame:
    """Every change of the run: staged versions (``_resolved``) and unresolved identities.

    ``valid``: validated rows (participant_id, _pct, _pct_num, _date, file_order,
    row_number); ``state``: :func:`participant_state` of every participant
    with a row in the run or a PT source Y; ``files``: the run's readable files
    (file_order, _path, _file_ts).

    Applying the files one at a time, per participant, implies (SPEC §6):

    - the identity (lookup, else the active row) and PT (sticky Y: active Y or PT
      source Y) are the same for every file of the run;
    - a file's effective percent is the last non-null source percent up to that
      file, else the active percent, else ``000`` (an unchanged row leaves the
      state equal to its effective values, so the state after any file is the
      previous row's effective values);
    - a PT-driven change (§6.7) can only happen in the run's first file: after it
      (or after any row) PT is already Y;
    - a participant without ICN never changes state: each of its changes is
      compared with the active row and rejected, file after file.
    """
    key_cols = [PID]
    a_exists = F.coalesce(F.col("_a_exists"), F.lit(False))

    # §6.7 candidates: PT source Y, active row whose PT is not Y. They enter the
    # row stream as pseudo-rows (no percent, no date) in the files where they
    # have no row, BEFORE the per-file window, so one shuffle serves all windows.
    cand = state.where(
        (F.col("_pt_src") == "Y") & a_exists & ~F.col("_a_pt").eqNullSafe(F.lit("Y"))
    )
    cand_resolved = F.coalesce(F.col("_l_icn"), F.col("_a_icn")).isNotNull()
    first_file = files.agg(F.min(csv.FILE_ORDER).alias(csv.FILE_ORDER))
    ptd_first = cand.where(cand_resolved).crossJoin(F.broadcast(first_file))
    ptd_every = cand.where(~cand_resolved).crossJoin(F.broadcast(files.select(csv.FILE_ORDER)))
    # A pseudo-row has no date, so it sorts before any real row of its file and
    # the per-file window keeps the real row: no anti-join against the rows.
    # Only keys and values go through the windows; ``raw_row`` is joined back
    # for the few rejects that need it (:func:`unresolved_rejects`).
    ptd = ptd_first.unionByName(ptd_every)
    stream_cols = [PID, csv.FILE_ORDER, PCT, PCT_NUM, DATE, csv.ROW_NUMBER]
    ptd_rows = ptd.select(
        PID,
        F.col(csv.FILE_ORDER).cast("int").alias(csv.FILE_ORDER),
        F.lit(None).cast("string").alias(PCT),
        F.lit(None).cast("int").alias(PCT_NUM),
        F.lit(None).cast("string").alias(DATE),
        F.lit(None).cast("long").alias(csv.ROW_NUMBER),
        F.lit(True).alias(IS_PTD),
    )
    stream = valid.select(*stream_cols, F.lit(False).alias(IS_PTD)).unionByName(ptd_rows)
    d = latest_per_file(stream).drop(PCT_NUM)
    e = d.join(state, key_cols, "left")

    resolved = F.coalesce(F.col("_l_icn"), F.col("_a_icn")).isNotNull()
    pt_run = F.when((F.col("_a_pt") == "Y") | (F.col("_pt_src") == "Y"), "Y").otherwise("N")
    w = Window.partitionBy(PID).orderBy(csv.FILE_ORDER)
    upto = w.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    before = w.rowsBetween(Window.unboundedPreceding, -1)

    def effective(pct_so_far: Column, is_ptd: Column) -> tuple[Column, Column]:
        """Effective (percent, PT) given the last source percent so far (unresolved: own row)."""
        pct = (
            F.when(is_ptd, F.col("_a_pct"))
            .when(resolved, F.coalesce(pct_so_far, F.col("_a_pct"), F.lit(DEFAULT_PERCENT)))
            .otherwise(F.coalesce(F.col(PCT), F.col("_a_pct"), F.lit(DEFAULT_PERCENT)))
        )
        return pct, F.when(is_ptd, F.lit("Y")).otherwise(pt_run)

    # One window pass: the previous row's effective values are derived from the
    # percents before this row, not read back from a second pass over the rows.
    new_pct, new_pt = effective(F.last(F.col(PCT), ignorenulls=True).over(upto), F.col(IS_PTD))
    prev_pct, prev_pt = effective(
        F.last(F.col(PCT), ignorenulls=True).over(before), F.lag(IS_PTD).over(w)
    )
    first = F.lag(csv.FILE_ORDER).over(w).isNull()
    from_active = ~resolved | first
    e = e.select(
        "*",
        resolved.alias(RESOLVED),
        new_pct.alias("_new_pct"),
        new_pt.alias("_new_pt"),
        F.when(from_active, F.col("_a_pct")).otherwise(prev_pct).alias("_old_pct"),
        F.when(from_active, F.col("_a_pt")).otherwise(prev_pt).alias("_old_pt"),
        F.when(~resolved, a_exists).otherwise(a_exists | ~first).alias("_old_exists"),
    )
    changes = e.where(
        F.col(IS_PTD)
        | ~F.col("_old_exists")
        | ~F.col("_old_pct").eqNullSafe(F.col("_new_pct"))
        | ~F.col("_old_pt").eqNullSafe(F.col("_new_pt"))
    )

    # §6.5 begin date: the active row's, else the decision date of the first row version.
    wv = (
        Window.partitionBy(PID)
        .orderBy(csv.FILE_ORDER)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    first_date = F.first(F.when(~F.col(IS_PTD), F.col(DATE)), ignorenulls=True).over(wv)
    begin = F.when(F.col(IS_PTD), F.col("_a_begin")).otherwise(
        F.coalesce(F.col("_a_begin"), first_date)
    )
    last_update = F.when(F.col(IS_PTD), F.col("_a_last")).otherwise(F.col(DATE))
    log_text = changelog.change_log(
        [
            changelog.entry(PERCENT_COLUMN, F.col("_old_pct"), F.col("_new_pct")),
            changelog.pt_entry("PT_Indicator", F.col("_old_pt"), F.col("_new_pt")),
        ]
    )
    out = changes.join(F.broadcast(files), csv.FILE_ORDER)
    null = F.lit(None).cast("string")
    return out.select(
        F.coalesce(F.col("_l_edipi"), F.col("_a_edipi")).alias("edipi"),
        F.coalesce(F.col("_l_icn"), F.col("_a_icn")).alias("ICN"),
        null.alias("Veteran_ICN"),
        F.col(PID).alias("participant_id"),
        F.lit(SOURCE).alias("Batch_CD"),
        null.alias("Applicant_Type"),
        null.alias("Caregiver_Status"),
        F.col("_new_pct").alias("SC_Combined_Disability_Percentage"),
        F.col("_new_pt").alias("PT_Indicator"),
        null.alias("Individual_Unemployability"),
        begin.alias("Status_Begin_Date"),
        last_update.alias("Status_Last_Update"),
        null.alias("Status_Termination_Date"),
        *rr.new_version_columns(log_text, F.col("_old_exists")),
        F.col(csv.FILE_ORDER),
        F.col(RESOLVED),
        F.col(IS_PTD),
        F.col(csv.PATH),
        F.col(csv.ROW_NUMBER),
    )


def unresolved_rejects(versions: DataFrame, checked: DataFrame, run_id: str) -> DataFrame:
    """SPEC §6.8: changes still without ICN, kept as ``identity_unresolved``.

    A row's ``raw_row`` comes from its checked line; a PT-driven change's is
    the PT source row that caused it (its participant and a Y).
    """
    unresolved = versions.where(~F.col(RESOLVED))
    lines = checked.select(csv.FILE_ORDER, csv.ROW_NUMBER, csv.RAW_ROW)
    ptd_raw = F.to_json(F.struct(F.col(PID).alias("PTCPNT_ID"), F.lit("Y").alias("PT_35_FLAG")))
    rows = (
        unresolved.where(~F.col(IS_PTD))
        .join(lines, [csv.FILE_ORDER, csv.ROW_NUMBER])
        .unionByName(unresolved.where(F.col(IS_PTD)).withColumn(csv.RAW_ROW, ptd_raw))
    )
    rule = F.when(
        F.col(IS_PTD),
        F.lit(
            "PT-driven change (SPEC 6.7) for a participant absent from this file has no ICN "
            "in correlation_lookup nor on its active row (SPEC 6.8)"
        ),
    ).otherwise(
        F.lit(
            "change for a participant with no ICN in correlation_lookup nor on an active row "
            "(SPEC 6.8)"
        )
    )
    return rr.reject_rows(
        rows,
        run_id,
        SOURCE,
        F.lit(str(RejectReason.IDENTITY_UNRESOLVED)),
        rule,
    )


# --------------------------------------------------------------------------- stage


def pt_sources(ctx: TaskContext, rebuild: bool) -> list[DataFrame]:
    """SPEC §2.3: update reads the delta table, rebuild seed and delta together."""
    s = ctx.settings
    names = [("pt_seed_table", s.pt_seed_table)] if rebuild else []
    names.append(("pt_delta_table", s.pt_delta_table))
    return [read_pt(ctx.spark, pt_source(setting, value)) for setting, value in names]


def pt_y_participants(
    ctx: TaskContext, rebuild: bool, keep: Callable[[DataFrame], DataFrame]
) -> tuple[DataFrame, int]:
    """The participants a PT source says Y for, cached, and how many (SPEC 2.3, 6.7).

    Only a PT source Y changes anything (SPEC 6.7 and sticky Y). The count fills
    the cache that the run's joins read.
    """
    pt = pt_flags(pt_sources(ctx, rebuild))
    pt_y = keep(pt.where(F.col("_pt_src") == "Y"))
    return pt_y, pt_y.count()


def versions(inputs: IngestInputs) -> DataFrame:
    pt_y, pt_y_count = inputs.early
    # Projected before anything is cached: the scans read only the state's columns.
    active, lookup = active_state(inputs.active), identity_by_participant(inputs.lookup)
    # Only participants with a row in the run, or PT Y (a PT-driven change,
    # SPEC 6.7), can change: the rest of the population is never joined.
    keys = inputs.valid.select(PID).unionByName(pt_y.select(PID))
    if inputs.rebuild:
        # The whole population is in the run: shuffle joins, nothing to narrow.
        keys, few = keys.distinct(), False
    else:
        most = None if inputs.most_rows is None else inputs.most_rows + pt_y_count
        keys, few = rr.run_keys(keys, PID, inputs.keep, most)
    if few:
        active = rr.narrow_to(active, keys, PID)
        lookup = rr.narrow_to(lookup, keys, PID)
        pt_y = F.broadcast(pt_y)
    state = inputs.keep(participant_state(keys, active, lookup, pt_y))
    return scd_versions(inputs.valid, F.broadcast(state) if few else state, inputs.files)


SPEC = IngestSpec(
    source=SOURCE,
    columns=COLUMNS,
    validate=validate,
    versions=versions,
    unresolved_rejects=unresolved_rejects,
    early=pt_y_participants,
    cached_columns=(PID, PCT, PCT_NUM, DATE),
)


def run(ctx: TaskContext) -> dict[str, Any]:
    return run_ingest(ctx, SPEC)


main = entry_point("ingest_scd", run)

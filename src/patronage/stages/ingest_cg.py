"""Stage ``ingest_cg``: the CG seed (rebuild) and the run's CG files -> staged versions (SPEC §7).

The seed is the run's file_order 0, then the files in order; each key's rows
are compared with the state the previous file left (the active row first).
An unchanged row leaves the state equal to its own values, so the state before
a file is simply the key's previous row in the run, else its active row.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patronage import change_log as changelog
from patronage import rules
from patronage.errors import InputError, MissingInputError
from patronage.ingest import csv_files as csv
from patronage.ingest import row_rules as rr
from patronage.ingest.template import COMMON_PUBLISHES, IngestInputs, IngestSpec, run_ingest
from patronage.repositories.ledger import RunFile
from patronage.repositories.rejects import RejectReason
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

SOURCE = "CG"
COLUMNS = (
    "Discharge_Revocation_Date__c",
    "Caregiver_Status__c",
    "CreatedById",
    "Dispositioned_Date__c",
    "CARMA_Case_ID__c",
    "Applicant_Type__c",
    "CreatedDate",
    "Veteran_ICN__c",
    "Benefits_End_Date__c",
    "Caregiver_Id__c",
    "CARMA_Case_Number__c",
    "Caregiver_ICN__c",
)
SEED_COLUMNS = (
    "ICN",
    "Veteran_ICN",
    "Applicant_Type",
    "Caregiver_Status",
    "Status_Begin_Date",
    "Status_Termination_Date",
)
PUBLISHES: tuple[str, ...] = (*COMMON_PUBLISHES, "seed_staged_rows")

KEY = ("ICN", "Veteran_ICN", "Applicant_Type")
#: SPEC §7.5 tracked columns, in change_log order.
TRACKED = ("Status_Begin_Date", "Status_Termination_Date", "Applicant_Type", "Caregiver_Status")
CREATED = "_created"
SEED_ORDER = 0

_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: yyyy-MM-dd HH:mm:ss or yyyy-MM-ddTHH:mm:ss, optional fraction, optional zone.
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)


def iso_timestamp(value: Column) -> Column:
    """SPEC §2.2 CreatedDate: ISO-8601, UTC when it has no zone (session time zone is UTC)."""
    return F.when(value.rlike(_TIMESTAMP), value.try_cast("timestamp"))


def first_ten(c: Column) -> Column:
    """SPEC §7.2/§7.3: ICNs are compared and stored by their first 10 characters."""
    return F.substring(c, 1, 10)


def validate_file_rows(rows: DataFrame) -> DataFrame:
    """SPEC §7.1 row rules and §7.3 mapping to target columns."""
    created = F.col("CreatedDate")
    disp, ends = F.col("Dispositioned_Date__c"), F.col("Benefits_End_Date__c")
    created_ts = iso_timestamp(created)
    disp_d = rr.strict_date(disp, _DATE, "yyyy-MM-dd")
    ends_d = rr.strict_date(ends, _DATE, "yyyy-MM-dd")
    checks: list[rr.Rule] = [
        rr.malformed_row(),
        (
            F.col("Caregiver_ICN__c").isNull(),
            RejectReason.MISSING_KEY,
            "Caregiver_ICN__c is empty (SPEC 7.1)",
        ),
        (
            created.isNotNull() & created_ts.isNull(),
            RejectReason.BAD_DATE,
            "CreatedDate is not an ISO-8601 timestamp (SPEC 7.1)",
        ),
        (
            disp.isNotNull() & disp_d.isNull(),
            RejectReason.BAD_DATE,
            "Dispositioned_Date__c is not a date yyyy-MM-dd (SPEC 7.1)",
        ),
        (
            ends.isNotNull() & ends_d.isNull(),
            RejectReason.BAD_DATE,
            "Benefits_End_Date__c is not a date yyyy-MM-dd (SPEC 7.1)",
        ),
    ]
    return rr.checked_rows(
        rows,
        checks,
        first_ten(F.col("Caregiver_ICN__c")).alias("ICN"),
        first_ten(F.col("Veteran_ICN__c")).alias("Veteran_ICN"),
        F.col("Applicant_Type__c").alias("Applicant_Type"),
        F.col("Caregiver_Status__c").alias("Caregiver_Status"),
        rr.yyyymmdd(disp_d).alias("Status_Begin_Date"),
        rr.yyyymmdd(ends_d).alias("Status_Termination_Date"),
        created_ts.alias(CREATED),
    )


def validate_seed_rows(rows: DataFrame) -> DataFrame:
    """SPEC §7.6: seed rows need ICN, Veteran_ICN and Applicant_Type; dates yyyy-MM-dd.

    Keys are cut to 10 characters like the files' keys (§7.3), so they always match.
    """
    begin, end = F.col("Status_Begin_Date"), F.col("Status_Termination_Date")
    begin_d = rr.strict_date(begin, _DATE, "yyyy-MM-dd")
    end_d = rr.strict_date(end, _DATE, "yyyy-MM-dd")
    checks: list[rr.Rule] = [
        rr.malformed_row(),
        (
            F.col("ICN").isNull()
            | F.col("Veteran_ICN").isNull()
            | F.col("Applicant_Type").isNull(),
            RejectReason.MISSING_KEY,
            "seed row needs ICN, Veteran_ICN and Applicant_Type (SPEC 7.6)",
        ),
        (
            begin.isNotNull() & begin_d.isNull(),
            RejectReason.BAD_DATE,
            "Status_Begin_Date is not a date yyyy-MM-dd (SPEC 2.2)",
        ),
        (
            end.isNotNull() & end_d.isNull(),
            RejectReason.BAD_DATE,
            "Status_Termination_Date is not a date yyyy-MM-dd (SPEC 2.2)",
        ),
    ]
    return rr.checked_rows(
        rows,
        checks,
        first_ten(F.col("ICN")).alias("ICN"),
        first_ten(F.col("Veteran_ICN")).alias("Veteran_ICN"),
        F.col("Applicant_Type"),
        F.col("Caregiver_Status"),
        rr.yyyymmdd(begin_d).alias("Status_Begin_Date"),
        rr.yyyymmdd(end_d).alias("Status_Termination_Date"),
        F.lit(None).cast("timestamp").alias(CREATED),
    )


def newest_per_file(valid: DataFrame) -> DataFrame:
    """SPEC §7.2: per key and file, the newest CreatedDate, then the later row (key null-safe)."""
    return rr.latest_per_file(
        valid, KEY, [F.col(CREATED).asc_nulls_first(), F.col(csv.ROW_NUMBER)]
    )


def cg_versions(valid: DataFrame, active: DataFrame, lookup: DataFrame) -> DataFrame:
    """Staged versions (+ file_order) of the run: each key's changes, file after file (§7.5)."""
    d = newest_per_file(valid)
    # One active row per key and one lookup row per ICN are invariants (merge,
    # SPEC §3.4); not deduplicated again: that would sort the whole target per run.
    a = active.select(
        *[F.col(k).alias(f"_a_key_{k}") for k in KEY],
        F.lit(True).alias("_a_exists"),
        *[F.col(c).alias(f"_a_{c}") for c in TRACKED],
    )
    cond = [d[k].eqNullSafe(a[f"_a_key_{k}"]) for k in KEY]
    e = d.join(a, cond, "left")

    w = Window.partitionBy(*KEY).orderBy(csv.FILE_ORDER)
    first = F.lag(csv.FILE_ORDER).over(w).isNull()
    a_exists = F.coalesce(F.col("_a_exists"), F.lit(False))
    e = e.select(
        "*",
        *[
            F.when(first, F.col(f"_a_{c}")).otherwise(F.lag(c).over(w)).alias(f"_old_{c}")
            for c in TRACKED
        ],
        (a_exists | ~first).alias("_old_exists"),
    )
    differs = F.lit(False)
    for c in TRACKED:
        differs = differs | ~F.col(f"_old_{c}").eqNullSafe(F.col(c))
    changes = e.where(~F.col("_old_exists") | differs)

    ident = lookup.where(F.col("MVIPersonICN").isNotNull()).select(
        F.col("MVIPersonICN").alias("_l_icn"),
        F.col("edipi").alias("_l_edipi"),
        F.col("participant_id").alias("_l_pid"),
    )
    out = changes.join(ident, changes["ICN"] == ident["_l_icn"], "left")
    entries = [changelog.entry(c, F.col(f"_old_{c}"), F.col(c)) for c in TRACKED]
    log_text = changelog.change_log(entries)
    null = F.lit(None).cast("string")
    return out.select(
        F.col("_l_edipi").alias("edipi"),
        F.col("ICN"),
        F.col("Veteran_ICN"),
        F.col("_l_pid").alias("participant_id"),
        F.lit(SOURCE).alias("Batch_CD"),
        F.col("Applicant_Type"),
        F.col("Caregiver_Status"),
        null.alias("SC_Combined_Disability_Percentage"),
        null.alias("PT_Indicator"),
        null.alias("Individual_Unemployability"),
        F.col("Status_Begin_Date"),
        null.alias("Status_Last_Update"),
        F.col("Status_Termination_Date"),
        *rr.new_version_columns(log_text, F.col("_old_exists")),
        F.col(csv.FILE_ORDER).cast("int").alias(csv.FILE_ORDER),
    )


def seed_file(ctx: TaskContext) -> RunFile:
    """The CG seed as the run's file_order 0; a rebuild without the seed fails."""
    path = ctx.settings.cg_seed_file
    if not ctx.fs.exists(path):
        raise MissingInputError(f"CG seed file (setting 'cg_seed_file') does not exist: {path}")
    begin = rules.BEGINNING[rules.CG].strftime("%Y-%m-%d %H:%M:%S.%f")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return RunFile(path, name, None, begin, SEED_ORDER)


def seed_rows(ctx: TaskContext, rebuild: bool) -> DataFrame | None:
    """SPEC §7.6: the checked seed rows, read first on a rebuild; an unusable seed fails."""
    if not rebuild:
        return None
    reading = csv.read_files(ctx.spark, ctx.fs, [seed_file(ctx)], SEED_COLUMNS)
    if reading.refused:
        reason = reading.refused[0][1]
        raise InputError(f"CG seed file (setting 'cg_seed_file') cannot be used: {reason}")
    return validate_seed_rows(reading.rows)


def versions(inputs: IngestInputs) -> DataFrame:
    # Projected before anything is cached: the scans read only the columns the rules use.
    active = inputs.active.select(*dict.fromkeys((*KEY, *TRACKED)))
    lookup = inputs.lookup.select("MVIPersonICN", "edipi", "participant_id")
    # Only the caregivers named in the run's rows can change (no PT-like rule for CG).
    narrow = (
        None if inputs.rebuild else rr.narrower(inputs.valid, "ICN", inputs.keep, inputs.most_rows)
    )
    if narrow is not None:
        active = narrow(active)
        lookup = narrow(lookup.withColumnRenamed("MVIPersonICN", "ICN")).withColumnRenamed(
            "ICN", "MVIPersonICN"
        )
    return cg_versions(inputs.valid, active, lookup).withColumn(rr.RESOLVED, F.lit(True))


SPEC = IngestSpec(
    source=SOURCE,
    columns=COLUMNS,
    validate=validate_file_rows,
    versions=versions,
    extra_rows=seed_rows,
    seed_order=SEED_ORDER,
)


def run(ctx: TaskContext) -> dict[str, Any]:
    return run_ingest(ctx, SPEC)


main = entry_point("ingest_cg", run)

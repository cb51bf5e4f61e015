"""Business keys and the pure SCD Type 2 planning functions (SPEC §4, §8).

The key definitions live here, once: ingest, merge and the invariants all use
them. Everything in this module takes and returns DataFrames or Columns; the
merge stage does the I/O.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patronage import tables as t

SCD = "SCD"
CG = "CG"

#: SPEC §4: at most one active row per business key; CG parts compare null-safely.
BUSINESS_KEYS: dict[str, tuple[str, ...]] = {
    SCD: ("participant_id",),
    CG: ("ICN", "Veteran_ICN", "Applicant_Type"),
}

NEW_RECORD = "New Record"
UPDATED_RECORD = "Updated Record"
EXPIRED_RECORD = "Expired Record"

#: Column of the merge source: the business key of a row to expire (null on rows to insert).
MERGE_KEY = "_merge_key"
#: Column of the merge source: RecordLastUpdated for the expired active row.
EXPIRE_DATE = "_expire_date"
#: The RecordChangeStatus ingest gave a version, before an intermediate one is expired.
STAGED_STATUS = "_staged_status"
#: True on the first version of its key in the run (the one that expires the active row).
FIRST_OF_KEY = "_first_of_key"


def _col(name: str, qualifier: str | None) -> Column:
    return F.col(f"{qualifier}.{name}" if qualifier else name)


def _encode(part: Column) -> Column:
    # Length-prefixed, '~' for null: distinct tuples always give distinct strings,
    # and null matches null (SPEC §4: null-safe key).
    return F.coalesce(F.concat(F.length(part).cast("string"), F.lit(":"), part), F.lit("~"))


def business_key(qualifier: str | None = None) -> Column:
    """One injective string per (Batch_CD, business key), so joins on it are equi-joins.

    Null when Batch_CD is neither SCD nor CG (such a row has no key).
    """
    batch = _col("Batch_CD", qualifier)
    expr = None
    for batch_cd, parts in BUSINESS_KEYS.items():
        value = F.concat_ws("|", F.lit(batch_cd), *[_encode(_col(p, qualifier)) for p in parts])
        expr = (F.when if expr is None else expr.when)(batch == F.lit(batch_cd), value)
    assert expr is not None
    return expr


def key_equals(left: str, right: str, batch_cd: str) -> Column:
    """Null-safe equality of the business key of ``batch_cd`` between two aliases."""
    cond = F.lit(True)
    for p in BUSINESS_KEYS[batch_cd]:
        cond = cond & F.col(f"{left}.{p}").eqNullSafe(F.col(f"{right}.{p}"))
    return cond


def plan_versions(staged: DataFrame) -> DataFrame:
    """The run's versions as they are inserted: all but the last per key expired.

    Versions of a key are ordered by file_order (CG seed = 0). An intermediate
    version is expired exactly as a later per-file run would have expired it:
    RecordLastUpdated = date of the next version's timestamp (SPEC §8).
    Adds MERGE_KEY-free helper columns ``_key``, STAGED_STATUS and FIRST_OF_KEY.
    """
    w = Window.partitionBy("_key").orderBy(
        F.col("file_order").asc_nulls_first(), F.col("SDP_Event_Created_Timestamp").asc()
    )
    ts = "SDP_Event_Created_Timestamp"
    df = (
        staged.withColumn("_key", business_key())
        .withColumn("_next_ts", F.lead(ts).over(w))
        .withColumn("_pos", F.row_number().over(w))
        .withColumn("_n", F.count(F.lit(1)).over(Window.partitionBy("_key")))
    )
    superseded = F.col("_pos") < F.col("_n")
    return (
        df.withColumn(STAGED_STATUS, F.col("RecordChangeStatus"))
        .withColumn(FIRST_OF_KEY, F.col("_pos") == 1)
        .withColumn(
            "RecordStatus", F.when(superseded, F.lit(False)).otherwise(F.col("RecordStatus"))
        )
        .withColumn(
            "RecordChangeStatus",
            F.when(superseded, F.lit(EXPIRED_RECORD)).otherwise(F.col("RecordChangeStatus")),
        )
        .withColumn("sentToDoD", F.when(superseded, F.lit(True)).otherwise(F.col("sentToDoD")))
        .withColumn(
            "RecordLastUpdated",
            F.when(superseded, F.to_date("_next_ts")).otherwise(F.col("RecordLastUpdated")),
        )
        .drop("_next_ts", "_pos", "_n")
    )


def merge_source(planned: DataFrame) -> DataFrame:
    """One source for one MERGE: expire rows (MERGE_KEY set) + insert rows (MERGE_KEY null).

    The active target row of each key is expired on the date of the key's first
    new version. Every key gets an expire row, so a target row that is active
    although ingest saw none can never stay active next to the new version.
    """
    inserts = planned.select(
        *[F.col(c) for c in t.TARGET_COLUMNS],
        F.lit(None).cast("string").alias(MERGE_KEY),
        F.lit(None).cast("date").alias(EXPIRE_DATE),
    )
    expires = planned.where(F.col(FIRST_OF_KEY) & F.col("_key").isNotNull()).select(
        *[F.lit(None).cast(f.dataType).alias(f.name) for f in t.TARGET_SCHEMA.fields],
        F.col("_key").alias(MERGE_KEY),
        F.to_date("SDP_Event_Created_Timestamp").alias(EXPIRE_DATE),
    )
    return inserts.unionByName(expires)


def merge_condition(target: str = "t", source: str = "s") -> Column:
    """Active target row whose business key equals the source's merge key (an equi-join)."""
    return (F.col(f"{target}.RecordStatus") == F.lit(True)) & (
        business_key(target) == F.col(f"{source}.{MERGE_KEY}")
    )


def expire_assignments(source: str = "s") -> dict[str, str | Column]:
    """SPEC §8: how the active row of a changed key is expired."""
    return {
        "RecordStatus": F.lit(False),
        "RecordChangeStatus": F.lit(EXPIRED_RECORD),
        "sentToDoD": F.lit(True),
        "RecordLastUpdated": F.col(f"{source}.{EXPIRE_DATE}"),
    }


def insert_values(source: str = "s") -> dict[str, str | Column]:
    return {c: F.col(f"{source}.{c}") for c in t.TARGET_COLUMNS}


#: The columns of :func:`plan_counts` besides Batch_CD.
PLAN_COUNTS = ("rows", "new", "updated", "expired", "expires_active")


def plan_counts(planned: DataFrame) -> DataFrame:
    """Per Batch_CD: rows to insert, new, updated and expired rows the plan produces.

    ``expires_active`` counts the target rows the MERGE should expire (first
    versions of keys that ingest saw active); ``expired`` adds the
    intermediate versions inserted already expired.
    """
    status = F.col(STAGED_STATUS)
    intermediate = (F.col("RecordStatus") == F.lit(False)).cast("long")
    expires_active = (F.col(FIRST_OF_KEY) & (status == F.lit(UPDATED_RECORD))).cast("long")
    return planned.groupBy("Batch_CD").agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((status == F.lit(NEW_RECORD)).cast("long")).alias("new"),
        F.sum((status == F.lit(UPDATED_RECORD)).cast("long")).alias("updated"),
        F.sum(intermediate + expires_active).alias("expired"),
        F.sum(expires_active).alias("expires_active"),
    )

"""Invariants of patronage_unified that must hold after every run (SPEC §4, §6, §8).

Results carry counts of violating keys only, never key values: the output is
safe to print in logs and CI.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patronage import scd2


@dataclass(frozen=True)
class InvariantResult:
    name: str
    description: str
    violating_keys: int

    @property
    def passed(self) -> bool:
        return self.violating_keys == 0

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} {self.name}: {self.violating_keys} violating keys ({self.description})"


ONE_ACTIVE_PER_KEY = "one_active_row_per_business_key"
PT_NEVER_Y_TO_N = "pt_never_y_to_n"
EXPIRED_FOLLOWED_BY_NEWER = "expired_row_followed_by_newer_version"
ACTIVE_HAS_ICN = "active_row_has_icn"

_TS = "SDP_Event_Created_Timestamp"


def _history_order() -> list[Column]:
    """Version order within a key: timestamp, then expired before active.

    Two versions of a key with the same timestamp (possible only when two
    files share a modification time) have no recorded order between them, so
    the remaining tie-breakers pick the order that does not violate a rule
    (RecordLastUpdated of an expired row is its successor's date; N before Y):
    a check only fails on evidence, never on an arbitrary tie.
    """
    return [
        F.col(_TS).asc_nulls_first(),
        F.col("RecordStatus").asc_nulls_first(),
        F.col("RecordLastUpdated").asc_nulls_first(),
        F.coalesce(F.col("PT_Indicator"), F.lit("N")).asc(),
    ]


def one_active_per_key(df: DataFrame) -> int:
    """Keys with more than one active row."""
    return (
        df.where(F.col("RecordStatus"))
        .groupBy(scd2.business_key().alias("_key"))
        .count()
        .where(F.col("count") > 1)
        .count()
    )


def pt_never_y_to_n(df: DataFrame) -> int:
    """Participants whose SCD history has a non-Y version after a Y version."""
    w = (
        Window.partitionBy("participant_id")
        .orderBy(*_history_order())
        .rowsBetween(Window.unboundedPreceding, -1)
    )
    is_y = (F.col("PT_Indicator") == F.lit("Y")).cast("int")
    return (
        df.where((F.col("Batch_CD") == F.lit(scd2.SCD)) & F.col("participant_id").isNotNull())
        .withColumn("_y_before", F.max(is_y).over(w))
        .where((F.col("_y_before") == 1) & (F.coalesce(is_y, F.lit(0)) == 0))
        .select("participant_id")
        .distinct()
        .count()
    )


def expired_followed_by_newer(df: DataFrame) -> int:
    """Keys whose newest version is expired (an expired row with no successor)."""
    # Structs compare field by field: the newest timestamp, and at a tie the active row.
    last = F.max(F.struct(F.col(_TS), F.col("RecordStatus").cast("int").alias("active")))
    return (
        df.groupBy(scd2.business_key().alias("_key"))
        .agg(last.alias("_last"))
        .where(F.col("_last.active") == 0)
        .count()
    )


def active_has_icn(df: DataFrame) -> int:
    """Active rows (one per key when the first invariant holds) without an ICN."""
    icn = F.trim(F.col("ICN"))
    return (
        df.where(F.col("RecordStatus") & (icn.isNull() | (icn == F.lit(""))))
        .select(scd2.business_key().alias("_key"))
        .distinct()
        .count()
    )


CHECKS = (
    (ONE_ACTIVE_PER_KEY, "at most one active row per business key", one_active_per_key),
    (PT_NEVER_Y_TO_N, "PT never goes from Y to N in a participant's history", pt_never_y_to_n),
    (EXPIRED_FOLLOWED_BY_NEWER, "every expired row has a newer version", expired_followed_by_newer),
    (ACTIVE_HAS_ICN, "no active row without ICN", active_has_icn),
)


def check_invariants(df: DataFrame) -> list[InvariantResult]:
    """Evaluate every invariant on a patronage_unified DataFrame."""
    return [InvariantResult(name, desc, int(fn(df))) for name, desc, fn in CHECKS]

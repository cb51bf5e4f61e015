"""Row-level building blocks both ingest stages use: rule checks, rejects, new versions.

A stage states its rules as ``(failed, reason code, rule text)``;
:func:`first_failure` turns them into the ``_reason``/``_rule`` columns and
:func:`reject_rows` into ``patronage_rejects`` rows whose message names the
file, the row and the rule, never a field value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from patronage.ingest.csv_files import EXTRA, FILE_ORDER, FILE_TS, PATH, RAW_ROW, ROW_NUMBER
from patronage.repositories.rejects import RejectReason

#: On checked rows: the first failing rule's reason code and text (null = valid).
REASON, RULE = "_reason", "_rule"
#: On change rows: false when the change has no ICN (rejected as identity_unresolved).
RESOLVED = "_resolved"

#: (failed, reason code, rule text) of one row rule.
Rule = tuple[Column, RejectReason, str]


#: Most keys a run may have for the large tables to be narrowed by broadcast;
#: a run with more (a re-delivered population) joins them by shuffle instead.
NARROW_MAX_KEYS = 1_000_000
_KEY_HASH = "_key_hash"


def run_keys(
    keys: DataFrame, column: str, keep: Callable[[DataFrame], DataFrame], most: int | None = None
) -> tuple[DataFrame, bool]:
    """The run's distinct keys (kept for the task), and whether they are few enough to broadcast.

    A run with more than :data:`NARROW_MAX_KEYS` keys (a re-delivered population)
    joins the large tables by shuffle instead. ``most``, when known, bounds the
    keys from above (the lines read): within the limit it decides alone, so the
    keys are computed inside the ingest's one job instead of by a count of their own.
    """
    distinct = keep(keys.select(column).where(F.col(column).isNotNull()).distinct())
    if most is not None and most <= NARROW_MAX_KEYS:
        return distinct, True
    return distinct, distinct.count() <= NARROW_MAX_KEYS


def narrow_to(table: DataFrame, keys: DataFrame, column: str) -> DataFrame:
    """``table`` cut down to ``keys`` by a broadcast semi-join, broadcast for the join after it.

    The table is scanned once and never shuffled, and the join after it works on
    the day's few keys, not the whole population. Not cached: each stage has one
    reader of the result (the frame it builds from it is the one it keeps), and
    a cache would only cost a second copy of the rows.

    The semi-join compares a 64-bit hash of the key, not the key: Spark probes
    a long key in a much cheaper map than a string, and every row of the large
    table is probed. A collision only lets a row of another key through, which
    the join after it drops, as that join compares the keys themselves.
    """
    hashed = keys.select(F.xxhash64(column).alias(_KEY_HASH))
    return F.broadcast(
        table.where(F.col(column).isNotNull()).join(
            F.broadcast(hashed), F.xxhash64(F.col(column)) == F.col(_KEY_HASH), "left_semi"
        )
    )


def narrower(
    keys: DataFrame, column: str, keep: Callable[[DataFrame], DataFrame], most: int | None = None
) -> Callable[[DataFrame], DataFrame] | None:
    """How to cut a large table (active target, lookup) down to the run's keys, if few.

    None when the run has more than :data:`NARROW_MAX_KEYS` distinct keys
    (``most``: an upper bound of them, as in :func:`run_keys`).
    """
    distinct, few = run_keys(keys, column, keep, most)
    if not few:
        return None

    def narrow(table: DataFrame) -> DataFrame:
        return narrow_to(table, distinct, column)

    return narrow


def malformed_row() -> Rule:
    """The rule every source checks first: a line with more fields than the header."""
    return (F.col(EXTRA), RejectReason.MALFORMED_ROW, "the line has more fields than the header")


def first_failure(rules: Sequence[Rule]) -> tuple[Column, Column]:
    """(reason_code, rule text) of the first failing rule, null when the row is valid."""
    code: Column | None = None
    text: Column | None = None
    for failed, reason, rule in rules:
        code = (F.when if code is None else code.when)(failed, F.lit(str(reason)))
        text = (F.when if text is None else text.when)(failed, F.lit(rule))
    assert code is not None and text is not None
    return code, text


def checked_rows(rows: DataFrame, rules: Sequence[Rule], *columns: Column) -> DataFrame:
    """The row bookkeeping columns, ``_reason``/``_rule`` of the first failing rule, ``columns``."""
    code, text = first_failure(rules)
    return rows.select(
        FILE_ORDER,
        PATH,
        FILE_TS,
        ROW_NUMBER,
        RAW_ROW,
        code.alias(REASON),
        text.alias(RULE),
        *columns,
    )


def strict_date(value: Column, pattern: str, fmt: str) -> Column:
    """The date, or null when ``value`` does not match ``pattern`` or is no real date."""
    parsed = F.to_date(F.try_to_timestamp(value, F.lit(fmt)))
    return F.when(value.rlike(pattern), parsed)


def yyyymmdd(d: Column) -> Column:
    return F.date_format(d, "yyyyMMdd")


def reject_rows(df: DataFrame, run_id: str, source: str, code: Column, rule: Column) -> DataFrame:
    """Rows for patronage_rejects (+ file_order); the message names file, row and rule.

    The message never holds field values: those are in ``raw_row`` only.
    """
    message = F.concat(
        F.lit("file "),
        F.col(PATH),
        F.lit(", row "),
        F.coalesce(F.col(ROW_NUMBER).cast("string"), F.lit("-")),
        F.lit(": "),
        rule,
    )
    return df.select(
        F.lit(run_id).alias("run_id"),
        F.lit(source).alias("source"),
        F.col(PATH).alias("file"),
        F.col(ROW_NUMBER).alias("row_number"),
        F.col(RAW_ROW).alias("raw_row"),
        code.alias("reason_code"),
        message.alias("message"),
        F.current_timestamp().alias("recorded_at"),
        F.col(FILE_ORDER),
    )


def new_version_columns(change_log: Column, key_had_active_row: Column) -> list[Column]:
    """The bookkeeping columns of a staged version, as if it were the newest (SPEC §8).

    Merge expires all but a key's last version of the run; ingest stages every
    version active, stamped with its file's name and modification time.
    """
    return [
        F.col(FILE_TS).alias("SDP_Event_Created_Timestamp"),
        F.col(PATH).alias("filename"),
        F.to_date(F.col(FILE_TS)).alias("RecordLastUpdated"),
        F.lit(True).alias("RecordStatus"),
        F.lit(False).alias("sentToDoD"),
        change_log.alias("change_log"),
        F.when(key_had_active_row, "Updated Record")
        .otherwise("New Record")
        .alias("RecordChangeStatus"),
    ]


def latest_per_file(rows: DataFrame, key: Sequence[str], order: Sequence[Column]) -> DataFrame:
    """Per key and file, the row that sorts last by ``order`` (file_order first)."""
    w = Window.partitionBy(*key).orderBy(FILE_ORDER, *order)
    nxt = F.lead(FILE_ORDER).over(w)
    return (
        rows.withColumn("_next", nxt)
        .where(F.col("_next").isNull() | (F.col("_next") != F.col(FILE_ORDER)))
        .drop("_next")
    )

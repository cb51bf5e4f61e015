"""SPEC §8 change_log text, as Spark Columns.

Each tracked column that differs (null-safely), in the SPEC's order, gives
``<column> old value: <old> changed to new value: <new>`` (null shown as
``Null``); entries are joined by ``; ``. PT is logged only for N -> Y, with a null
old value shown as ``N``. A version whose tracked columns did not change (only
possible for an untracked difference) has an empty change_log.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

NULL_TEXT = "Null"
SEPARATOR = "; "


def entry(column: str, old: Column, new: Column) -> Column:
    """The entry for one tracked column, null when it did not change."""
    text = F.concat(
        F.lit(f"{column} old value: "),
        F.coalesce(old, F.lit(NULL_TEXT)),
        F.lit(" changed to new value: "),
        F.coalesce(new, F.lit(NULL_TEXT)),
    )
    return F.when(~old.eqNullSafe(new), text)


def pt_entry(column: str, old: Column, new: Column) -> Column:
    """PT: only N (or null) -> Y is logged."""
    return F.when(
        F.coalesce(old, F.lit("N")).eqNullSafe(F.lit("N")) & new.eqNullSafe(F.lit("Y")),
        F.lit(f"{column} old value: N changed to new value: Y"),
    )


def change_log(entries: Sequence[Column]) -> Column:
    """Entries that are not null, joined by ``; `` (empty string when none)."""
    return F.concat_ws(SEPARATOR, *entries)

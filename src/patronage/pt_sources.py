"""The PT sources (SPEC §2.3): a Delta table given by name or by path, read one way.

``pt_seed_table`` and ``pt_delta_table`` name either a table
(``catalog.schema.table``, resolved by the metastore) or a Delta table's
location (``/data/pt_delta``, ``dbfs:/...``, ``/Volumes/...``, ``abfss://...``),
which lets a local run read PT data that no metastore knows. Anything with a
``/`` is a path; everything else must be a table name. Both are read through
the DataFrame and DeltaTable APIs, never through SQL text.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from patronage.errors import ConfigError, InputError
from patronage.fs import to_spark_path

if TYPE_CHECKING:  # the settings parser imports this module; it needs no Spark
    from pyspark.sql import DataFrame, SparkSession

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


@dataclasses.dataclass(frozen=True)
class PtSource:
    """Where one PT setting points: ``path`` for a Delta location, else a table name."""

    setting: str
    value: str
    is_path: bool

    @property
    def kind(self) -> str:
        return "Delta path" if self.is_path else "table"

    def describe(self) -> str:
        return f"{self.kind} {self.value}"


def is_delta_path(value: str) -> bool:
    """True when ``value`` is a location (it has a ``/``), false for a table name."""
    return "/" in value


def parse(setting: str, raw: str) -> str:
    """A PT setting's value: a table name or a Delta path, or a ConfigError naming it."""
    value = raw.strip()
    if is_delta_path(value) or _TABLE.match(value):
        return value
    raise ConfigError(
        f"setting '{setting}' must be a table name (catalog.schema.table) or a Delta path "
        f"(/..., dbfs:/..., /Volumes/..., abfss://...), got {raw!r}"
    )


def source(setting: str, value: str) -> PtSource:
    return PtSource(setting, value, is_delta_path(value))


def exists(spark: SparkSession, src: PtSource) -> bool:
    """Whether the table (or a Delta table at the path) is there; reads no data."""
    from delta.tables import DeltaTable

    if src.is_path:
        return bool(DeltaTable.isDeltaTable(spark, to_spark_path(src.value)))
    return bool(spark.catalog.tableExists(src.value))


def delta_table(spark: SparkSession, src: PtSource) -> Any:
    """The :class:`delta.tables.DeltaTable` of the source (for its history)."""
    from delta.tables import DeltaTable

    if src.is_path:
        return DeltaTable.forPath(spark, to_spark_path(src.value))
    return DeltaTable.forName(spark, src.value)


def read(spark: SparkSession, src: PtSource) -> DataFrame:
    """The source's rows; an :class:`InputError` naming the setting when it is absent."""
    if not exists(spark, src):
        raise InputError(f"PT {src.kind} of setting '{src.setting}' does not exist: {src.value}")
    if src.is_path:
        return spark.read.format("delta").load(to_spark_path(src.value))
    return spark.table(src.value)

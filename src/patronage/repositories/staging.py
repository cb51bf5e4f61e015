"""Staged versions between ingest and merge: ``patronage_staging_scd`` and ``_cg``.

Each ingest replaces its run's rows in its own table (parallel ingests never
write the same table); merge reads both for the run.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patronage import tables as t

#: The staging table of each source.
TABLES = {"SCD": t.STAGING_SCD, "CG": t.STAGING_CG}


class Staging:
    def __init__(self, tables: t.Tables) -> None:
        self.tables = tables

    def ensure(self) -> None:
        for name in TABLES.values():
            self.tables.ensure(name)

    def replace_for_run(self, source: str, run_id: str, rows: DataFrame) -> None:
        """The run's versions of one source, replacing an earlier attempt's (one commit)."""
        self.tables.replace_where(TABLES[source], rows, run_id=run_id)

    def read_run(self, run_id: str) -> DataFrame:
        """The run's versions of both sources (target columns + file_order), CG first."""
        cols = [*t.TARGET_COLUMNS, "file_order"]
        cg, scd = (
            self.tables.read(TABLES[source]).where(F.col("run_id") == run_id).select(*cols)
            for source in ("CG", "SCD")
        )
        return cg.unionByName(scd)

"""Rejected rows ``patronage_rejects``: the only code that reads or writes it.

One row per refused input row (or unresolved change), with a reason code,
the file and row number, the raw row and a message naming the rule; rows are
replaced per (run, source), so a rerun of an ingest never duplicates them.
"""

from __future__ import annotations

from enum import StrEnum

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patronage import tables as t


class RejectReason(StrEnum):
    MISSING_KEY = "missing_key"
    BAD_DATE = "bad_date"
    BAD_PERCENT = "bad_percent"
    IDENTITY_UNRESOLVED = "identity_unresolved"
    MALFORMED_ROW = "malformed_row"


class Rejects:
    def __init__(self, tables: t.Tables) -> None:
        self.tables = tables

    def ensure(self) -> None:
        self.tables.ensure(t.REJECTS)

    def replace_for_run(self, run_id: str, source: str, rows: DataFrame) -> None:
        """The run's rejects of one source, replacing an earlier attempt's (one commit)."""
        self.tables.replace_where(t.REJECTS, rows, run_id=run_id, source=source)

    def counts_by_reason(self, run_id: str, source: str) -> dict[str, int]:
        rows = (
            self.tables.read(t.REJECTS)
            .where((F.col("run_id") == run_id) & (F.col("source") == source))
            .groupBy("reason_code")
            .count()
            .collect()
        )
        return {r["reason_code"]: int(r["count"]) for r in sorted(rows)}

    def counts_by_file(self, run_id: str, source: str) -> dict[str, dict[str, int]]:
        """Rejects of the run per file (path) and reason code."""
        rows = (
            self.tables.read(t.REJECTS)
            .where((F.col("run_id") == run_id) & (F.col("source") == source))
            .groupBy("file", "reason_code")
            .count()
            .collect()
        )
        out: dict[str, dict[str, int]] = {}
        for r in sorted(rows):
            out.setdefault(r["file"], {})[r["reason_code"]] = int(r["count"])
        return out

    def counts_by_run(self, run_ids: list[str]) -> dict[str, dict[str, int]]:
        """Rejected rows per run and reason code (every source), one read."""
        if not run_ids:
            return {}
        rows = (
            self.tables.read(t.REJECTS)
            .where(F.col("run_id").isin(*run_ids))
            .groupBy("run_id", "reason_code")
            .count()
            .collect()
        )
        out: dict[str, dict[str, int]] = {}
        for r in sorted(rows):
            out.setdefault(r["run_id"], {})[r["reason_code"]] = int(r["count"])
        return out

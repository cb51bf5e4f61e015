"""The DMDC export checkpoints ``dmdc_checkpoint``: the only code that reads or writes it.

One row per export (SPEC §9.1): the window end, the file, its record count,
the query with the run date frozen in and the file's checksum.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyspark.sql import functions as F

from patronage import tables as t


class DmdcCheckpoints:
    def __init__(self, tables: t.Tables) -> None:
        self.tables = tables

    def facts(self, end: dt.datetime) -> tuple[dt.datetime | None, Any]:
        """(newest checkpoint_timestamp, the checkpoint row at ``end`` or None), one action.

        The row has ``previous``: the newest checkpoint before ``end`` (its window's start).
        """
        ts = F.col("checkpoint_timestamp")
        row = (
            self.tables.read(t.DMDC_CHECKPOINT)
            .agg(
                F.max(ts).alias("newest"),
                F.max(F.when(ts < F.lit(end), ts)).alias("previous"),
                F.max(
                    F.when(
                        ts == F.lit(end),
                        F.struct("created_at", "filename", "record_count", "file_sha256", "run_id"),
                    )
                ).alias("existing"),
            )
            .collect()[0]
        )
        existing = row["existing"]
        if existing is not None:
            existing = {**existing.asDict(), "previous": row["previous"]}
        return row["newest"], existing

    def record(
        self,
        *,
        end: dt.datetime,
        filename: str,
        record_count: int,
        generate_query: str,
        file_sha256: str,
        run_id: str,
    ) -> None:
        """Append one checkpoint; a failure propagates (the export must not look done)."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        row = (end, filename, record_count, generate_query, file_sha256, run_id, now)
        df = self.tables.spark.createDataFrame([row], t.CHECKPOINT_SCHEMA)
        self.tables.append(t.DMDC_CHECKPOINT, df)

    def days_and_files(self) -> list[tuple[dt.date, str]]:
        """(day of checkpoint_timestamp, filename) of every checkpoint."""
        rows = (
            self.tables.read(t.DMDC_CHECKPOINT)
            .select("checkpoint_timestamp", "filename")
            .collect()
        )
        return [
            (r["checkpoint_timestamp"].date(), r["filename"])
            for r in rows
            if r["checkpoint_timestamp"] is not None
        ]

    def latest(self) -> dict[str, Any] | None:
        """The newest checkpoint (window end, file, record count, run, when), or None."""
        rows = (
            self.tables.read(t.DMDC_CHECKPOINT)
            .orderBy(F.col("checkpoint_timestamp").desc(), F.col("created_at").desc())
            .select("checkpoint_timestamp", "filename", "record_count", "run_id", "created_at")
            .limit(1)
            .collect()
        )
        return rows[0].asDict() if rows else None

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
        """(newest checkpoint_timestamp, the checkpoint row at ``end`` or None), one action."""
        this = F.col("checkpoint_timestamp") == F.lit(end)
        row = (
            self.tables.read(t.DMDC_CHECKPOINT)
            .agg(
                F.max("checkpoint_timestamp").alias("newest"),
                F.max(
                    F.when(this, F.struct("created_at", "filename", "record_count", "file_sha256"))
                ).alias("existing"),
            )
            .collect()[0]
        )
        return row["newest"], row["existing"]

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

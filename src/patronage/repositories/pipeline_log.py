"""The run log ``patronage_pipeline_log``: the only code that reads or writes it.

One row per job run (SPEC §10), written by finalize, also for failed runs; a
rerun of finalize replaces its run's row.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Row
from pyspark.sql import functions as F

from patronage import tables as t


class PipelineLog:
    def __init__(self, tables: t.Tables) -> None:
        self.tables = tables

    def upsert(self, row: dict[str, Any]) -> None:
        """Insert, or replace this run's row (a rerun of finalize)."""
        df = self.tables.spark.createDataFrame(
            [tuple(row[f.name] for f in t.PIPELINE_LOG_SCHEMA.fields)], t.PIPELINE_LOG_SCHEMA
        )
        (
            self.tables.delta(t.PIPELINE_LOG)
            .alias("log")
            .merge(df.alias("new"), "log.run_id = new.run_id")
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .execute()
        )

    def export_facts(self) -> list[Row]:
        """Per logged run: its run date (from discovery), timestamp and export stats."""
        return (
            self.tables.read(t.PIPELINE_LOG)
            .select(
                F.get_json_object("file_discovery_detail", "$.run_date").alias("run_date"),
                "run_timestamp_utc",
                "dmdc_export_stats",
            )
            .collect()
        )

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` newest runs' rows, newest first (``patronage status``)."""
        rows = (
            self.tables.read(t.PIPELINE_LOG)
            .orderBy(F.col("run_timestamp_utc").desc(), F.col("run_id").desc())
            .limit(limit)
            .collect()
        )
        return [r.asDict() for r in rows]

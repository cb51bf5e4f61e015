"""SPEC §8 (improvement): a rebuild reproduces the history daily update runs produce.

The fixture files are applied twice into two schemas from one landing
directory: once by five daily update runs, once by a single confirmed rebuild.
With the same PT and identity inputs (the CG seed emptied, as the daily runs
never load it), both histories must be equal row for row, every column.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual, assertSchemaEqual

from conftest import task_argv
from patronage import tables as t
from patronage.devtools.fixture_landing import land_fixtures
from patronage.stages import discover, identity, ingest_cg, ingest_scd, merge
from patronage.task import run_stage

pytestmark = pytest.mark.spark

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STAGES = [
    ("discover", discover.run),
    ("identity", identity.run),
    ("ingest_scd", ingest_scd.run),
    ("ingest_cg", ingest_cg.run),
    ("merge", merge.run),
]
#: The day after each fixture file day: every daily run applies at most one day.
DAILY_RUN_DATES = ["2025-01-08", "2025-01-15", "2025-01-22", "2025-02-05", "2025-03-01"]


def run_once(spark, schema: str, base: Path, run_id: str, **params) -> dict:
    argv = task_argv(
        schema, base, run_id=run_id,
        pt_seed_table="spark_catalog.patronage_sources.pt_seed",
        pt_delta_table="spark_catalog.patronage_sources.pt_delta",
        **params,
    )
    return {key: run_stage(key, stage, argv, spark=spark) for key, stage in STAGES}


def history(spark, schema: str) -> list[tuple]:
    df = spark.table(f"spark_catalog.`{schema}`.`{t.PATRONAGE_UNIFIED}`")
    return sorted(
        (tuple(r) for r in df.select(*t.TARGET_COLUMNS).collect()),
        key=lambda r: tuple("" if v is None else str(v) for v in r),
    )


def test_rebuild_reproduces_the_history_of_daily_update_runs(spark, tmp_path):
    land_fixtures(FIXTURES, tmp_path, spark)
    seed = tmp_path / "landing" / "seed" / "caregivers_seed.csv"
    seed.write_text(seed.read_text().splitlines()[0] + "\n")  # header only

    daily = "daily_" + uuid.uuid4().hex[:8]
    merged_files = 0
    for i, day in enumerate(DAILY_RUN_DATES, start=1):
        values = run_once(spark, daily, tmp_path, f"d{i}", run_date=day)
        merged_files += values["merge"]["merged_files"]
    assert merged_files == 9  # every readable fixture file, one day at a time

    rebuilt = "rebuild_" + uuid.uuid4().hex[:8]
    values = run_once(
        spark, rebuilt, tmp_path, "r1", run_date="2025-03-01", processing_mode="rebuild",
        confirm_rebuild="patronage_unified",
    )
    assert values["merge"]["merged_files"] == 9

    daily_rows, rebuilt_rows = history(spark, daily), history(spark, rebuilt)
    assert len(daily_rows) == 32  # 15 SCD + 17 CG rows (fixtures/README.md)
    assert rebuilt_rows == daily_rows
    # The same comparison as Spark's own test helpers state it: schema and rows.
    daily_df, rebuilt_df = (
        spark.table(f"spark_catalog.`{name}`.`{t.PATRONAGE_UNIFIED}`").select(*t.TARGET_COLUMNS)
        for name in (daily, rebuilt)
    )
    assertSchemaEqual(rebuilt_df.schema, daily_df.schema)
    assertDataFrameEqual(rebuilt_df, daily_df)

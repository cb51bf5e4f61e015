"""Shared fixtures: one local Spark + Delta session for the whole suite."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("PATRONAGE_DRIVER_MEMORY", "2g")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from patronage.spark import get_spark

    state = tmp_path_factory.mktemp("spark-state")
    session = get_spark(state)
    yield session
    session.stop()


@pytest.fixture
def schema_name() -> str:
    """A fresh schema per test, so tests never see each other's tables."""
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
def tables(spark, schema_name):
    from patronage.tables import Tables

    tbl = Tables(spark, "spark_catalog", schema_name)
    tbl.ensure_schema()
    return tbl


def task_argv(schema: str, base, **overrides) -> list[str]:
    """Complete ``--name=value`` task parameters rooted at ``base`` (a tmp dir)."""
    base = str(base)
    params = {
        "run_id": "1001",
        "catalog": "spark_catalog",
        "schema": schema,
        "inbound_scd_dir": f"{base}/landing/scd",
        "inbound_cg_dir": f"{base}/landing/cg",
        "cg_seed_file": f"{base}/landing/seed/caregivers_seed.csv",
        "pt_seed_table": f"spark_catalog.{schema}.pt_seed",
        "pt_delta_table": f"spark_catalog.{schema}.pt_delta",
        "mvi_psa_dir": f"{base}/landing/mvi/psa",
        "mvi_person_dir": f"{base}/landing/mvi/person",
        "mvi_institution_dir": f"{base}/landing/mvi/institution",
        "export_dir": f"{base}/export",
        "backup_dir": f"{base}/backups",
        "processing_mode": "update",
        "run_date": "2025-03-01",
    }
    params.update({k: str(v) for k, v in overrides.items()})
    return [f"--{k}={v}" for k, v in params.items()]


def flat_argv(tmp, schema: str, run_id: str, mode: str = "update") -> list[str]:
    """Task parameters for inputs written straight under ``tmp`` (scd/, cg/, seed/...)."""
    return [
        f"--run_id={run_id}",
        "--catalog=spark_catalog",
        f"--schema={schema}",
        f"--inbound_scd_dir={tmp}/scd",
        f"--inbound_cg_dir={tmp}/cg",
        f"--cg_seed_file={tmp}/seed/caregivers_seed.csv",
        f"--pt_seed_table=spark_catalog.{schema}.pt_seed",
        f"--pt_delta_table=spark_catalog.{schema}.pt_delta",
        f"--mvi_psa_dir={tmp}/mvi/psa",
        f"--mvi_person_dir={tmp}/mvi/person",
        f"--mvi_institution_dir={tmp}/mvi/institution",
        f"--export_dir={tmp}/export",
        f"--backup_dir={tmp}/backups",
        f"--processing_mode={mode}",
    ]


def record_discovered(
    tables, run_id: str, source: str, files: list[tuple[str, str]], status: str = "discovered"
) -> None:
    """What discover records: one event per (path, mtime) file, file_order 1..n."""
    from pyspark.sql import functions as F

    from patronage import tables as t

    rows = [
        (p, Path(p).name, source, Path(p).stat().st_size, ts, run_id, "update", status, i)
        for i, (p, ts) in enumerate(files, start=1)
    ]
    df = tables.spark.createDataFrame(
        rows,
        "path string, file_name string, source string, size long, mt string, run_id string, "
        "processing_mode string, status string, file_order int",
    ).select(
        "*",
        F.col("mt").cast("timestamp").alias("modification_time"),
        F.lit(None).cast("string").alias("reason"),
        *[F.lit(None).cast("long").alias(c) for c in
          ("raw_rows", "valid_rows", "rejected_rows", "staged_rows")],
        F.current_timestamp().alias("recorded_at"),
    )
    tables.append(t.FILE_LEDGER, df)

"""Shared fixtures: one local Spark + Delta session for the whole suite."""

from __future__ import annotations

import os
import uuid

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

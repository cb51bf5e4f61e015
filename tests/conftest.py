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

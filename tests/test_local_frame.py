"""Small driver-side frames as local relations (patronage.spark.local_frame)."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import types as T

from patronage import spark as spark_mod

pytestmark = pytest.mark.spark

SCHEMA = T.StructType(
    [T.StructField("file_order", T.IntegerType()), T.StructField("_path", T.StringType()),
     T.StructField("_ts", T.TimestampType())]
)  # fmt: skip
ROWS = [(1, "/in/a 'x'.csv", dt.datetime(2025, 1, 2, 3, 4, 5)), (2, None, None)]


def types(df) -> list[tuple[str, T.DataType]]:
    return [(f.name, f.dataType) for f in df.schema]


def test_rows_keep_their_values_and_the_declared_types(spark):
    df = spark_mod.local_frame(spark, SCHEMA, ROWS)
    assert types(df) == [(f.name, f.dataType) for f in SCHEMA]
    assert [tuple(r) for r in df.orderBy("file_order").collect()] == ROWS
    ddl = spark_mod.local_frame(spark, "file_order INT, _path STRING, _ts TIMESTAMP", ROWS)
    assert types(ddl) == types(df)
    # A local relation: Spark plans it without a scan of an RDD.
    assert "LocalTableScan" in df._jdf.queryExecution().executedPlan().toString()


def test_no_rows_and_many_rows_give_the_same_typed_frame(spark, monkeypatch):
    assert types(spark_mod.local_frame(spark, SCHEMA, [])) == types(
        spark_mod.local_frame(spark, SCHEMA, ROWS))
    monkeypatch.setattr(spark_mod, "LOCAL_FRAME_MAX_ROWS", 1)
    df = spark_mod.local_frame(spark, SCHEMA, ROWS)
    assert df.schema == SCHEMA
    assert [tuple(r) for r in df.orderBy("file_order").collect()] == ROWS

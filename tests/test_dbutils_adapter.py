"""Where dbutils comes from: classic clusters, serverless compute, or nowhere (local)."""

from __future__ import annotations

import sys
import types

from patronage import fs


def test_off_databricks_there_is_no_dbutils_and_the_sdk_runtime_is_not_touched(monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    # Importing the SDK's runtime module off Databricks would try to build a
    # remote session; a module that fails on import proves it is not imported.
    poisoned = types.ModuleType("databricks.sdk.runtime")

    def _fail(name):
        raise AssertionError("databricks.sdk.runtime was imported off Databricks")

    poisoned.__getattr__ = _fail  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "databricks.sdk.runtime", poisoned)
    assert fs.get_dbutils(spark=None) is None
    assert isinstance(fs.filesystem_for(spark=None), fs.FileSystem)


def test_on_serverless_compute_dbutils_comes_from_the_sdk_runtime(monkeypatch):
    # Serverless has no pyspark.dbutils, only the SDK's runtime module.
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "client.4.0")
    runtime = types.ModuleType("databricks.sdk.runtime")
    runtime.dbutils = object()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "databricks.sdk.runtime", runtime)
    assert fs.get_dbutils(spark=None) is runtime.dbutils
    assert isinstance(fs.filesystem_for(spark=None), fs.DbutilsFileSystem)

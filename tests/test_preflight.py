"""Runbook section 1 as `patronage preflight`: one PASS/FAIL line per check."""

from __future__ import annotations

import argparse

import pytest

from conftest import task_argv
from patronage import config
from patronage import tables as t
from patronage.commands import preflight

pytestmark = pytest.mark.spark


PT = "PTCPNT_VET_ID string, PT_35_FLAG string"


def pt_sources(spark, tables, base) -> dict[str, str]:
    """The seed as a table of the schema, the delta as a Delta table at a path."""
    seed = f"spark_catalog.{tables.schema}.pt_seed"
    spark.createDataFrame([("1", "Y")], PT).write.format("delta").saveAsTable(seed)
    delta = f"{base}/pt_delta"
    spark.createDataFrame([("1", "Y"), ("2", "N")], PT).write.format("delta").save(delta)
    return {"pt_seed_table": seed, "pt_delta_table": delta}


def test_preflight_passes_on_a_fresh_local_state_and_leaves_nothing_behind(
    spark, tables, tmp_path
):
    sources = pt_sources(spark, tables, tmp_path)
    settings = config.settings_from_argv(task_argv(tables.schema, tmp_path, **sources))

    results = preflight.run_checks(settings, spark)

    assert [r.name for r in results] == [
        "settings", "export directory", "backup directory", "pt_seed_table", "pt_delta_table",
        t.DMDC_CHECKPOINT, t.PATRONAGE_UNIFIED, t.PIPELINE_LOG,
    ]
    assert all(r.ok for r in results), [r.line() for r in results]
    assert results[3].detail.startswith(f"table {sources['pt_seed_table']} readable: 1 rows")
    assert results[4].detail.startswith(f"Delta path {tmp_path}/pt_delta readable: 2 rows")
    assert "absent; will be created" in results[5].detail
    assert list((tmp_path / "export").iterdir()) == []  # probe removed
    assert not tables.exists(t.PATRONAGE_UNIFIED)  # absent tables stay absent
    assert [tb.name for tb in spark.catalog.listTables(tables.schema)] == ["pt_seed"]


def test_preflight_fails_when_a_pt_source_is_missing(spark, tables, tmp_path):
    settings = config.settings_from_argv(task_argv(
        tables.schema, tmp_path, pt_delta_table=f"{tmp_path}/no_such_delta"))

    results = {r.name: r for r in preflight.run_checks(settings, spark)}

    assert not results["pt_delta_table"].ok
    assert f"setting 'pt_delta_table' does not exist: {tmp_path}/no_such_delta" in (
        results["pt_delta_table"].detail)
    assert not results["pt_seed_table"].ok
    assert "PT table of setting 'pt_seed_table' does not exist" in results["pt_seed_table"].detail


def test_preflight_fails_when_the_export_directory_is_not_writable(
    spark, tables, tmp_path, monkeypatch, capsys
):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the export directory should be")
    settings = config.settings_from_argv(task_argv(
        tables.schema, tmp_path, export_dir=f"{blocker}/export",
        **pt_sources(spark, tables, tmp_path)))
    tables.ensure(t.DMDC_CHECKPOINT)
    from patronage import runner

    monkeypatch.setattr(runner, "resolve_settings", lambda *_a, **_k: (settings, spark))

    code = preflight.main(argparse.Namespace())

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert any(line.startswith("FAIL  export directory:") for line in lines)
    assert "PASS  dmdc_checkpoint: readable: 0 rows, last checkpoint None" in lines
    assert lines[-1] == "preflight: FAIL (export directory)"

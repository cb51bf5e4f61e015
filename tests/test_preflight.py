"""Runbook section 1 as `patronage preflight`: one PASS/FAIL line per check."""

from __future__ import annotations

import argparse

import pytest

from conftest import task_argv
from patronage import config
from patronage import tables as t
from patronage.commands import preflight

pytestmark = pytest.mark.spark


def test_preflight_passes_on_a_fresh_local_state_and_leaves_nothing_behind(
    spark, tables, tmp_path
):
    settings = config.settings_from_argv(task_argv(tables.schema, tmp_path))

    results = preflight.run_checks(settings, spark)

    assert [r.name for r in results] == [
        "settings", "export directory", "backup directory",
        t.DMDC_CHECKPOINT, t.PATRONAGE_UNIFIED, t.PIPELINE_LOG,
    ]
    assert all(r.ok for r in results), [r.line() for r in results]
    assert "absent; will be created" in results[3].detail
    assert list((tmp_path / "export").iterdir()) == []  # probe removed
    assert not tables.exists(t.PATRONAGE_UNIFIED)  # absent tables stay absent
    assert [row.tableName for row in spark.catalog.listTables(tables.schema)] == []


def test_preflight_fails_when_the_export_directory_is_not_writable(
    spark, tables, tmp_path, monkeypatch, capsys
):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the export directory should be")
    settings = config.settings_from_argv(
        task_argv(tables.schema, tmp_path, export_dir=f"{blocker}/export"))
    tables.ensure(t.DMDC_CHECKPOINT)
    from patronage import runner

    monkeypatch.setattr(runner, "resolve_settings", lambda *_a, **_k: (settings, spark))

    code = preflight.main(argparse.Namespace())

    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert any(line.startswith("FAIL  export directory:") for line in lines)
    assert "PASS  dmdc_checkpoint: readable: 0 rows, last checkpoint None" in lines
    assert lines[-1] == "preflight: FAIL (export directory)"

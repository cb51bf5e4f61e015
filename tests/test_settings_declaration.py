"""Settings are declared once (``config.Settings``); every job's YAML must match it.

Each wheel task of each job under resources/ carries exactly the
``named_parameters`` that :func:`patronage.config.named_parameters` derives
from the declaration: no hand copy can drift (a missing, extra or differently
sourced parameter is reported).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from patronage import config, runner

ROOT = Path(__file__).resolve().parents[1]
RAW = runner.load_bundle_config(ROOT)
JOB_KEYS = sorted((RAW.get("resources") or {}).get("jobs") or {})


def named_parameter_problems(job_key: str, job: Mapping[str, Any]) -> list[str]:
    """Differences between each wheel task's named_parameters and the declaration."""
    expected = config.named_parameters()
    problems = []
    for task in job.get("tasks") or []:
        named = (task.get("python_wheel_task") or {}).get("named_parameters") or {}
        where = f"job {job_key} task {task.get('task_key')}"
        for name in sorted(set(expected) - set(named)):
            problems.append(f"{where}: named_parameters lacks {name}")
        for name in sorted(set(named) - set(expected)):
            problems.append(f"{where}: named_parameters has undeclared {name}")
        for name in sorted(set(named) & set(expected)):
            if str(named[name]) != expected[name]:
                problems.append(f"{where}: {name} is {named[name]!r}, declared {expected[name]!r}")
    return problems


def test_the_declaration_splits_required_from_optional():
    assert config.REQUIRED[:3] == ("run_id", "catalog", "schema")
    assert "processing_mode" not in config.REQUIRED
    assert list(config.named_parameters()) == [
        f.name for f in config.dataclasses.fields(config.Settings)
    ]


@pytest.mark.parametrize("job_key", JOB_KEYS)
def test_every_job_passes_the_declared_settings_to_every_task(job_key):
    assert named_parameter_problems(job_key, RAW["resources"]["jobs"][job_key]) == []


def test_a_drifted_copy_is_reported():
    job = copy.deepcopy(RAW["resources"]["jobs"][runner.DEFAULT_JOB])
    job["tasks"] = job["tasks"][:1]
    named = job["tasks"][0]["python_wheel_task"]["named_parameters"]
    named.pop("backup_dir")
    named["ghost"] = "x"
    named["catalog"] = "${var.schema}"
    problems = named_parameter_problems("bad", job)
    assert len(problems) == 3
    assert any("lacks backup_dir" in p for p in problems)
    assert any("undeclared ghost" in p for p in problems)
    assert any("catalog is '${var.schema}'" in p for p in problems)

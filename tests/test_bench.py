"""Smoke of ``patronage bench`` (population/daily profiles) at a tiny scale.

Figures depend on the machine and are never asserted; what is checked is that
every case ran, the staged versions are the ones the data implies, the engine
references wrote what they claim, and every ratio is reported.
"""

from __future__ import annotations

import dataclasses

import pytest

from patronage.devtools import benchmark as bench
from patronage.devtools.bench_data import PROFILES


@pytest.mark.spark
@pytest.mark.load
def test_the_bench_measures_every_case_against_the_engine_references(spark, tmp_path):
    sizes = dataclasses.replace(PROFILES["population"].scaled(0.0002), files=2)
    report = bench.run_bench(spark, tmp_path / "bench", sizes)

    assert all(c.seconds and c.best > 0 for c in report.cases.values())
    update = report.cases["update"].best_detail
    assert update["ingest_scd"]["staged_rows"] > 0 and set(update["merge"]["phases"])
    for case in ("bare_ingest", "bare_ingest_by_run"):
        bare = report.cases[case].best_detail["bare_ingest"]["phases"]
        assert list(bare) == ["ledger read", "files + state + staging write", "rejects commit",
                              "ledger commit", "task_values commit"]  # fmt: skip
    names = [r.name.strip() for r in report.ratios]
    assert "ingest_scd vs floor" in names and "(engine: bare ingest vs floor)" in names
    assert "(engine: replace by run vs append)" in names
    text = "\n".join(report.lines())
    assert "bare_ingest_2_files" in text and "target <=" in text
    assert not (tmp_path / "bench").exists()  # cleaned up

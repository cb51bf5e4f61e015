"""The load bench's arithmetic and report (pure), and its CLI options."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from patronage.devtools import bench_load as load
from patronage.devtools import bench_load_report as rep


def day(index: int, seconds: float, due: str = "", ledger_rows: int = 0) -> rep.Day:
    tables = {name: rep.TableSize(ledger_rows, index, 1) for name in rep.BOOKKEEPING}
    tables[rep.TARGET] = rep.TableSize(1000 + index, 2 * index, 3)
    return rep.Day(index, load.run_date(index), seconds, {"discover": seconds / 2,
                   "merge": 1.0 + index}, due, 0.5, tables)  # fmt: skip


def test_slope_is_the_least_squares_fit():
    assert rep.slope([1, 2, 3, 4], [2.0, 4.0, 6.0, 8.0]) == pytest.approx(2.0)
    assert rep.slope([1, 2, 3, 4], [5.0, 5.0, 5.0, 5.0]) == 0.0
    # Noise around a flat line: the fit, not last minus first.
    assert rep.slope([1, 2, 3, 4], [10.0, 12.0, 8.0, 10.0]) == pytest.approx(-0.4)
    assert rep.slope([1], [3.0]) == 0.0
    assert rep.slope([2, 2], [1.0, 5.0]) == 0.0
    with pytest.raises(ValueError):
        rep.slope([1, 2], [1.0])


def test_trend_reports_first_last_slope_and_slope_relative_to_the_mean():
    tr = rep.trend([1, 2, 3], [10.0, 11.0, 12.0])
    assert (tr.n, tr.first, tr.last, tr.mean, tr.slope) == (3, 10.0, 12.0, 11.0, 1.0)
    assert tr.relative == pytest.approx(1 / 11)
    line = tr.line("run time")
    assert "first 10.0s, last 12.0s" in line and "+1.000 s/day" in line and "+9.09%" in line
    assert rep.trend([], []).n == 0 and "no trend" in rep.trend([1], [2.0]).line("x")


def test_plain_days_and_tasks_have_their_own_trends():
    days = [day(1, 10.0), day(2, 30.0, due="E"), day(3, 12.0), day(4, 14.0)]
    assert rep.plain_trend(days).slope == pytest.approx(
        rep.slope([1, 3, 4], [10.0, 12.0, 14.0]))  # fmt: skip
    per_task = rep.task_trends(days)
    assert per_task["merge"].slope == pytest.approx(1.0)
    assert per_task["backup"].n == 0  # never ran: no trend


def test_report_names_every_day_the_trends_and_the_table_growth():
    days = [day(i, 10.0 + i, ledger_rows=4 * i) for i in range(1, 6)]
    text = "\n".join(rep.report_lines(days, ["header line"]))
    assert text.startswith("header line")
    for d in days:
        assert f"{d.run_date.isoformat()}" in text
    assert "slope +1.000 s/day" in text
    assert "second half, run time (n=3): first 13.0s, last 15.0s" in text
    assert "patronage_file_ledger" in text and "4 ->        20 (       +4)" in text
    assert "v1->v5" in text


def test_run_dates_cover_every_gate():
    dates = [load.run_date(i) for i in range(1, 31)]
    assert dates[0] == dt.date(2025, 2, 28) and dates[-1] == dt.date(2025, 3, 29)
    from patronage import rules

    assert any(rules.backup_due(d) for d in dates)
    assert sum(rules.edipi_backfill_due(d) for d in dates) == 2
    assert any(rules.dmdc_export_due(d) for d in dates)


def test_sizes_scale_the_population_not_the_days():
    assert load.LOAD == load.LoadSizes(100_000, 20_000, 30)
    assert load.LOAD.scaled(0.01) == load.LoadSizes(1000, 200, 30)


def test_bench_command_accepts_the_load_profile():
    from patronage import cli

    args = cli.build_parser().parse_args(
        ["bench", "--profile", "load", "--days", "3", "--veterans", "300"])  # fmt: skip
    assert (args.profile, args.days, args.veterans, args.caregivers) == ("load", 3, 300, None)


@pytest.mark.spark
@pytest.mark.e2e
@pytest.mark.load
def test_the_load_case_runs_the_job_day_after_day_and_checks_each_run(spark, tmp_path):
    """Smoke of the code path (a baseline and one day at a few dozen veterans)."""
    from pathlib import Path

    seen: list[int] = []
    result = load.run_load(
        spark, tmp_path / "load", load.LoadSizes(40, 8, 1),
        bundle_dir=Path(__file__).resolve().parents[1], on_day=lambda d: seen.append(d.index),
    )  # fmt: skip
    assert seen == [0, 1] and [d.index for d in result.days] == [1]
    first = result.days[0]
    assert first.run_date == load.run_date(1) and first.seconds > 0 and first.check_seconds > 0
    assert set(first.tasks) == set(rep.TASKS)
    # The baseline and the day each left a row in the pipeline log and files in the ledger.
    assert first.tables["patronage_pipeline_log"].rows == 2
    assert first.tables["patronage_file_ledger"].rows > result.baseline.tables[
        "patronage_file_ledger"].rows  # fmt: skip
    assert not (tmp_path / "load").exists()  # cleaned up
    assert "run time" in "\n".join(rep.report_lines(result.days))


@pytest.mark.spark
def test_a_failed_invariant_stops_the_load_loudly(tables):
    from patronage import tables as t
    from patronage.errors import IntegrityError

    def active(day: int) -> dict:
        r = dict.fromkeys(t.TARGET_COLUMNS)
        r.update(Batch_CD="SCD", ICN="1000000001", participant_id="P1", PT_Indicator="N",
                 SDP_Event_Created_Timestamp=dt.datetime(2025, 3, day, 6),
                 RecordLastUpdated=dt.date(2025, 3, day), RecordStatus=True, sentToDoD=False,
                 RecordChangeStatus="New Record")  # fmt: skip
        return r

    load.check(tables, "load day 2")  # an empty target holds every invariant
    # Two active rows of one participant: the load must stop, naming the day and the rule.
    tables.append(t.PATRONAGE_UNIFIED,
                  tables.spark.createDataFrame([active(1), active(2)], t.TARGET_SCHEMA))
    with pytest.raises(IntegrityError, match="load day 3.*one_active_row_per_business_key"):
        load.check(tables, "load day 3")


def test_cpu_trend_uses_only_days_with_a_cpu_figure():
    days = [dataclasses.replace(day(i, 10.0), cpu_seconds=c)
            for i, c in ((1, 5.0), (2, None), (3, 7.0))]  # fmt: skip
    tr = rep.cpu_trend(days)
    assert (tr.n, tr.first, tr.last, tr.slope) == (2, 5.0, 7.0, 1.0)
    assert "    5.0" in rep.day_lines(days)[1] and "      -" in rep.day_lines(days)[2]

"""SPEC §5 windows and ledger decisions, §9 gates: pure rules, no Spark."""

from __future__ import annotations

import datetime as dt

import pytest

from patronage import rules
from patronage.fs import FileInfo

D = dt.datetime


def f(name: str, when: D, size: int = 10, directory: str = "/in") -> FileInfo:
    return FileInfo(when, f"{directory}/{name}", name, size)


# --- §2.1/§2.2 name patterns -------------------------------------------------


@pytest.mark.parametrize(
    "source,name,ok",
    [
        ("SCD", "CPIDODIEX_20250101.csv", True),
        ("SCD", "cpidodiex_20250101.CSV", True),
        ("SCD", "CPIDODIEX20250101.csv", False),
        ("SCD", "CPIDODIEX_20250101.csv.bak", False),
        ("SCD", "xCPIDODIEX_20250101.csv", False),
        ("CG", "caregiver_20250101.csv", True),
        ("CG", "CareGiverExport.Csv", True),
        ("CG", "caregivers.txt", False),
        ("CG", "CPIDODIEX_20250101.csv", False),
    ],
)
def test_file_name_prefix_and_extension_are_case_insensitive(source, name, ok):
    assert rules.matches(source, name) is ok


# --- §5 windows --------------------------------------------------------------


def test_update_window_starts_after_newest_loaded_file_and_ends_at_run_date_midnight():
    w = rules.window_for("SCD", "update", dt.date(2025, 3, 5), D(2025, 3, 3, 6, 0))
    assert w == rules.Window(D(2025, 3, 3, 6, 0), D(2025, 3, 5))


def test_update_window_without_loaded_files_starts_at_the_beginning_date():
    assert rules.window_for("SCD", "update", dt.date(2025, 3, 5), None).start == D(2024, 6, 30)
    assert rules.window_for("CG", "update", dt.date(2025, 3, 5), None).start == D(
        2024, 12, 18, 20
    )


@pytest.mark.parametrize(
    "run_date,end",
    [
        (dt.date(2025, 3, 5), D(2025, 2, 28, 23, 59, 59)),
        (dt.date(2024, 3, 1), D(2024, 2, 29, 23, 59, 59)),  # leap year
        (dt.date(2025, 1, 15), D(2024, 12, 31, 23, 59, 59)),  # year end
    ],
)
def test_rebuild_window_ends_at_the_last_second_of_the_previous_month(run_date, end):
    w = rules.window_for("CG", "rebuild", run_date, D(2025, 2, 1))
    assert w == rules.Window(rules.BEGINNING["CG"], end)


def test_window_bounds_are_strict():
    w = rules.Window(D(2025, 1, 1), D(2025, 1, 2))
    assert not w.contains(D(2025, 1, 1))
    assert w.contains(D(2025, 1, 1, 0, 0, 0, 1))
    assert not w.contains(D(2025, 1, 2))


# --- §9 gates ------------------------------------------------------------------


@pytest.mark.parametrize(
    "day,due",
    [
        (dt.date(2025, 3, 5), True),  # Wednesday
        (dt.date(2025, 3, 7), True),  # Friday
        (dt.date(2025, 3, 6), False),  # Thursday
        (dt.date(2025, 3, 8), False),  # Saturday
        (dt.date(2025, 12, 31), True),  # Wednesday at year end
        (dt.date(2026, 1, 2), True),  # Friday after new year
    ],
)
def test_dmdc_export_is_due_on_wednesday_and_friday(day, due):
    assert rules.dmdc_export_due(day) is due


@pytest.mark.parametrize(
    "day,due",
    [
        (dt.date(2025, 2, 28), True),  # last Friday is the last day of February
        (dt.date(2025, 2, 21), False),  # a Friday with one more to come
        (dt.date(2025, 10, 31), True),
        (dt.date(2025, 10, 24), False),
        (dt.date(2025, 12, 26), True),  # year end: next Friday is in January
        (dt.date(2026, 1, 30), True),
        (dt.date(2025, 5, 30), True),  # May 2025: 30th is the last Friday, 31st a Saturday
        (dt.date(2025, 5, 31), False),  # Saturday
    ],
)
def test_edipi_backfill_is_due_on_the_last_friday_of_the_month(day, due):
    assert rules.edipi_backfill_due(day) is due


@pytest.mark.parametrize(
    "day,due",
    [(dt.date(2025, 3, 1), True), (dt.date(2026, 1, 1), True), (dt.date(2025, 3, 2), False),
     (dt.date(2024, 12, 31), False)],
)
def test_backup_is_due_on_the_first_day_of_the_month(day, due):
    assert rules.backup_due(day) is due


# --- §5 ledger decisions -----------------------------------------------------

WIN = rules.Window(D(2025, 1, 10, 6), D(2025, 1, 20))


def test_in_window_files_are_chosen_in_modification_time_order():
    listing = [
        f("CPIDODIEX_b.csv", D(2025, 1, 12)),
        f("CPIDODIEX_a.csv", D(2025, 1, 15)),
        f("CPIDODIEX_c.csv", D(2025, 1, 11)),
        f("notes.txt", D(2025, 1, 12)),
    ]
    got = rules.decide("SCD", "update", WIN, listing, {})
    assert [x.name for x in got.chosen] == ["CPIDODIEX_c.csv", "CPIDODIEX_b.csv", "CPIDODIEX_a.csv"]


def test_a_file_already_merged_with_the_same_size_and_time_is_not_processed_again():
    done = f("CPIDODIEX_a.csv", D(2025, 1, 12))
    changed = f("CPIDODIEX_b.csv", D(2025, 1, 13), size=11)
    status = {rules.file_key(done): "merged",
              ("/in/CPIDODIEX_b.csv", 10, D(2025, 1, 13)): "merged"}
    got = rules.decide("SCD", "update", WIN, [done, changed], status)
    assert got.already_processed == [done]
    assert got.chosen == [changed]  # same path, different size: a new file


def test_a_discovered_but_never_merged_file_is_discovered_again():
    again = f("CPIDODIEX_a.csv", D(2025, 1, 12))
    for st in ("discovered", "ingested", "superseded"):
        assert rules.decide("SCD", "update", WIN, [again], {rules.file_key(again): st}).chosen == [
            again
        ]


def test_a_late_file_is_reported_not_applied():
    late = f("CPIDODIEX_late.csv", D(2025, 1, 10, 6))  # exactly at the window start
    older = f("CPIDODIEX_older.csv", D(2025, 1, 2))
    prehistory = f("CPIDODIEX_2023.csv", D(2023, 5, 1))
    got = rules.decide("SCD", "update", WIN, [late, older, prehistory], {})
    assert got.chosen == []
    assert got.late == [older, late]


def test_files_at_or_after_the_window_end_wait_for_a_later_run():
    today = f("CPIDODIEX_today.csv", D(2025, 1, 20))
    assert rules.decide("SCD", "update", WIN, [today], {}).waiting == [today]


def test_rebuild_replays_merged_files_and_reports_no_late_files():
    merged = f("CPIDODIEX_a.csv", D(2025, 1, 12))
    before = f("CPIDODIEX_old.csv", D(2024, 5, 1))
    w = rules.window_for("SCD", "rebuild", dt.date(2025, 2, 3), None)
    got = rules.decide("SCD", "rebuild", w, [merged, before], {rules.file_key(merged): "merged"})
    assert got.chosen == [merged]
    assert got.late == []


def test_a_file_that_cannot_be_stat_ed_is_recorded_as_unreadable():
    bad = f("CPIDODIEX_x.csv", D(1970, 1, 1), size=-1)
    assert rules.decide("SCD", "update", WIN, [bad], {}).unreadable == [bad]

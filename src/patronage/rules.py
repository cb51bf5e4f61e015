"""Pure business rules of discovery and scheduling (SPEC §5, §9), no Spark.

Everything is UTC and naive ``datetime`` values are UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

from patronage.fs import FileInfo
from patronage.repositories.ledger import FINAL_STATUSES, FileKey, file_key

SCD = "SCD"
CG = "CG"
SOURCES = (SCD, CG)

#: Rebuild lower bounds (SPEC §2.1, §2.2).
BEGINNING = {
    SCD: dt.datetime(2024, 6, 30, 0, 0, 0),
    CG: dt.datetime(2024, 12, 18, 20, 0, 0),
}

#: (name prefix, extension), both compared case-insensitively.
FILE_PATTERNS = {
    SCD: ("cpidodiex_", ".csv"),
    CG: ("caregiver", ".csv"),
}

UPDATE = "update"
REBUILD = "rebuild"
TARGET_TABLE = "patronage_unified"


def matches(source: str, file_name: str) -> bool:
    """Does a file name qualify as an inbound file of ``source``?"""
    prefix, ext = FILE_PATTERNS[source]
    lowered = file_name.lower()
    return lowered.startswith(prefix) and lowered.endswith(ext)


@dataclasses.dataclass(frozen=True)
class Window:
    """Files qualify when ``start < modification time < end`` (both strict)."""

    start: dt.datetime
    end: dt.datetime

    def contains(self, when: dt.datetime) -> bool:
        return self.start < when < self.end


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


def end_of_previous_month(run_date: dt.date) -> dt.datetime:
    """23:59:59 of the last day of the month before ``run_date``."""
    first = run_date.replace(day=1)
    last = first - dt.timedelta(days=1)
    return dt.datetime(last.year, last.month, last.day, 23, 59, 59)


def window_for(
    source: str, mode: str, run_date: dt.date, newest_in_target: dt.datetime | None
) -> Window:
    """SPEC §5: update continues after the newest loaded file; rebuild replays history.

    Update runs stop at 00:00 of the run date so that a file landing during the
    day waits for the next run; rebuilds stop at the end of the previous month.
    """
    if mode == REBUILD:
        return Window(BEGINNING[source], end_of_previous_month(run_date))
    start = newest_in_target if newest_in_target is not None else BEGINNING[source]
    return Window(start, midnight(run_date))


# --- scheduled task gates (SPEC §9), on the run date in UTC ----------------


def dmdc_export_due(run_date: dt.date) -> bool:
    """Wednesdays and Fridays."""
    return run_date.weekday() in (2, 4)


def edipi_backfill_due(run_date: dt.date) -> bool:
    """The last Friday of the month: a Friday with no Friday left in its month."""
    return run_date.weekday() == 4 and (run_date + dt.timedelta(days=7)).month != run_date.month


def backup_due(run_date: dt.date) -> bool:
    """The first day of the month."""
    return run_date.day == 1


# --- the ledger decision -----------------------------------------------------

@dataclasses.dataclass
class Discovery:
    """What discovery decided for one source."""

    window: Window
    chosen: list[FileInfo] = dataclasses.field(default_factory=list)
    late: list[FileInfo] = dataclasses.field(default_factory=list)
    already_processed: list[FileInfo] = dataclasses.field(default_factory=list)
    unreadable: list[FileInfo] = dataclasses.field(default_factory=list)
    waiting: list[FileInfo] = dataclasses.field(default_factory=list)


def decide(
    source: str,
    mode: str,
    window: Window,
    listing: Iterable[FileInfo],
    latest_status: Mapping[FileKey, str],
) -> Discovery:
    """Sort one source's listing into chosen, late, processed, unreadable, waiting.

    * Names that do not match the source's pattern are not ours: ignored.
    * A file that could not be stat-ed (size -1) is recorded as unreadable.
    * Update mode: a file whose latest ledger status is final is not processed
      again; a not-yet-processed file at or before the window start (but after
      the beginning date) is late: reported, never applied out of order.
    * Rebuild mode replays everything in the window (the target is reset).
    * Files at or after the window end wait for a later run.
    """
    result = Discovery(window)
    for info in listing:
        if not matches(source, info.name):
            continue
        if info.size < 0:
            result.unreadable.append(info)
            continue
        if mode == UPDATE and latest_status.get(file_key(info)) in FINAL_STATUSES:
            result.already_processed.append(info)
            continue
        if window.contains(info.modification_time):
            result.chosen.append(info)
        elif info.modification_time >= window.end:
            result.waiting.append(info)
        elif mode == UPDATE and info.modification_time > BEGINNING[source]:
            result.late.append(info)
    result.chosen.sort(key=lambda f: (f.modification_time, f.path))
    result.late.sort(key=lambda f: (f.modification_time, f.path))
    return result

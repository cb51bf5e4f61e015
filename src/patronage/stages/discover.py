"""discover: fix the run's facts once (SPEC §5, §9 gates).

Every later task, and every repair of this run, reads these facts from the
run state instead of recomputing them, so the whole run agrees on its date,
windows, files and which scheduled tasks are due. The chosen files go to the
file ledger, not into task values (they can be many).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patronage import rules
from patronage import tables as t
from patronage.errors import ConfigError, FileSystemError
from patronage.faults import CrashPoint, crash_point
from patronage.fs import FileInfo
from patronage.repositories.ledger import LedgerStatus, discovery_event
from patronage.stages import merge
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

#: The run's facts finalize logs as file_discovery_detail.
FACTS = (
    "run_date",
    "processing_mode",
    "scd_window_start",
    "scd_window_end",
    "cg_window_start",
    "cg_window_end",
    "scd_files",
    "cg_files",
    "late_files",
    "unreadable_files",
)
PUBLISHES = (
    *FACTS,
    "edipi_backfill_due",
    "dmdc_export_due",
    "backup_due",
)

_SOURCE_DIR_SETTING = {rules.SCD: "inbound_scd_dir", rules.CG: "inbound_cg_dir"}


def require_rebuild_confirmation(mode: str, confirm: str) -> None:
    """Rebuild is destructive: it must name the target table explicitly."""
    if mode == rules.REBUILD and confirm != rules.TARGET_TABLE:
        raise ConfigError(
            "processing_mode=rebuild drops and reloads the target table; set the job parameter "
            f"confirm_rebuild={rules.TARGET_TABLE} to confirm (got {confirm!r}). "
            "Nothing was changed."
        )


def newest_loaded(target: DataFrame) -> dict[str, dt.datetime]:
    """Newest SDP_Event_Created_Timestamp per Batch_CD already in the target."""
    rows = (
        target.groupBy("Batch_CD")
        .agg(F.max("SDP_Event_Created_Timestamp").alias("newest"))
        .collect()
    )
    return {r["Batch_CD"]: r["newest"] for r in rows if r["newest"] is not None}


def list_source(ctx: TaskContext, source: str) -> list[FileInfo]:
    setting = _SOURCE_DIR_SETTING[source]
    directory = getattr(ctx.settings, setting)
    try:
        return ctx.fs.list_files(directory)
    except FileSystemError as exc:
        raise FileSystemError(f"setting '{setting}': {exc}") from None


def ledger_events(
    run_id: str, mode: str, source: str, found: rules.Discovery, now: dt.datetime
) -> list[tuple[Any, ...]]:
    """Rows for the ledger: discovered (with file order), late and unreadable."""

    def event(
        info: FileInfo, status: LedgerStatus, reason: str | None, order: int | None
    ) -> tuple[Any, ...]:
        return discovery_event(
            info, source=source, status=status, reason=reason, order=order,
            run_id=run_id, mode=mode, now=now,
        )  # fmt: skip

    start = found.window.start
    late = f"modification time at or before the window start {start}; not applied"
    unreadable = "file could not be stat-ed (size/modification time)"
    return [
        *(event(f, LedgerStatus.DISCOVERED, None, i) for i, f in enumerate(found.chosen, 1)),
        *(event(f, LedgerStatus.LATE, late, None) for f in found.late),
        *(event(f, LedgerStatus.UNREADABLE, unreadable, None) for f in found.unreadable),
    ]


def settle_merged_runs(ctx: TaskContext) -> int:
    """Mark ``merged`` the files of earlier runs whose MERGE committed before they died.

    A run killed between its MERGE commit and its ``merged`` ledger events, and
    then not repaired but followed by a new run, would otherwise leave those
    files looking unfinished (and, at the window start, late). The MERGE
    commit carries the run's marker, so the target's history settles it.
    """
    settled = 0
    for run_id, mode in ctx.ledger.ingested_runs():
        if run_id != ctx.settings.run_id and merge.already_merged(ctx.tables, run_id):
            n = ctx.ledger.mark_merged(run_id, mode)
            log.warning("run %s merged but never recorded it: %d file(s) marked merged", run_id, n)
            settled += n
    return settled


def run(ctx: TaskContext) -> dict[str, Any]:
    s = ctx.settings
    require_rebuild_confirmation(s.processing_mode, s.confirm_rebuild)
    run_date = s.effective_run_date()
    listings = {src: list_source(ctx, src) for src in rules.SOURCES}

    newest = (
        {} if s.processing_mode == rules.REBUILD
        else newest_loaded(ctx.tables.read(t.PATRONAGE_UNIFIED))
    )
    settle_merged_runs(ctx)
    status = ctx.ledger.latest_status()

    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    found: dict[str, rules.Discovery] = {}
    events: list[tuple[Any, ...]] = []
    for src in rules.SOURCES:
        window = rules.window_for(src, s.processing_mode, run_date, newest.get(src))
        found[src] = rules.decide(src, s.processing_mode, window, listings[src], status)
        events += ledger_events(s.run_id, s.processing_mode, src, found[src], now)
        f = found[src]
        log.info(
            "%s window %s -> %s: %d file(s) to process, %d already processed, %d waiting",
            src, window.start, window.end, len(f.chosen), len(f.already_processed), len(f.waiting),
        )
        for info in f.late:
            log.warning("%s LATE file not applied (at or before window start): %s", src, info.name)
        for info in f.unreadable:
            log.warning("%s file could not be stat-ed: %s", src, info.name)

    # A repaired discover replaces what an earlier attempt of this run recorded.
    ctx.ledger.replace_discovery(s.run_id, events)
    crash_point(CrashPoint.DISCOVER_AFTER_LEDGER)
    # Create what the parallel ingest tasks write, so they never race to create it.
    ctx.rejects.ensure()
    ctx.staging.ensure()

    def ts(value: dt.datetime) -> str:
        return value.strftime("%Y-%m-%d %H:%M:%S")

    return {
        "run_date": run_date.isoformat(),
        "processing_mode": s.processing_mode,
        "scd_window_start": ts(found[rules.SCD].window.start),
        "scd_window_end": ts(found[rules.SCD].window.end),
        "cg_window_start": ts(found[rules.CG].window.start),
        "cg_window_end": ts(found[rules.CG].window.end),
        "scd_files": len(found[rules.SCD].chosen),
        "cg_files": len(found[rules.CG].chosen),
        "late_files": sum(len(f.late) for f in found.values()),
        "unreadable_files": sum(len(f.unreadable) for f in found.values()),
        "edipi_backfill_due": s.force_edipi_backfill or rules.edipi_backfill_due(run_date),
        "dmdc_export_due": s.force_dmdc_export or rules.dmdc_export_due(run_date),
        "backup_due": s.force_backup or rules.backup_due(run_date),
    }


main = entry_point("discover", run)

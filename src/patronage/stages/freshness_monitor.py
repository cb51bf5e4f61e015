"""freshness_monitor: the separate daily job that alerts on silence (SPEC §12).

Read-only: it reads tables (never creating an absent one), the PT delta
table's Delta history and the export directory listing; its only write is its
own task values. It fails, with one message listing every gap, when:

- ``scd_files`` / ``cg_files``: the newest processed file of the source is
  older than 00:00 of the run date minus the source's cadence. "Processed" =
  the newest modification time of a file with a ``merged`` ledger event, or the
  target's newest ``SDP_Event_Created_Timestamp`` for that ``Batch_CD``
  (whichever is newer: a merged file that changed nothing still counts, and a
  restored target without ledger history still counts).
- ``pt_delta``: the PT delta table has no data-changing commit (Delta history,
  maintenance operations ignored) since 00:00 of the run date minus its
  cadence, or does not exist.
- ``dmdc_exports``: for each transfer day (Wednesday, Friday) in the
  :data:`DMDC_LOOKBACK_DAYS` days before the run date, on or after the day the
  export history starts (the first checkpoint or the first logged run,
  whichever is earlier; nothing is expected before), the checkpoint table is
  the record of what was sent:
  * a checkpoint for the day whose file is not in the export directory: gap;
  * no checkpoint but a ``PATRONAGE_<day>.txt`` file: gap (written but never
    checkpointed, so the next export would send its window again);
  * neither: fine only when a logged run for that run date ran the export and
    found no eligible rows (SPEC §9.1: no file, no checkpoint); otherwise gap.

The run date is ``settings.effective_run_date()``; today's transfer is not
checked (the pipeline may not have run yet).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from patronage import dmdc_format as fmt
from patronage import pt_sources, rules
from patronage import tables as t
from patronage.errors import FileSystemError, FreshnessGap
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

PUBLISHES = ("checks",)
TASK_KEY = "freshness_monitor"

#: How long each source may stay silent before it is a gap.
SOURCE_CADENCE = {rules.SCD: dt.timedelta(days=3), rules.CG: dt.timedelta(days=3)}
PT_CADENCE = dt.timedelta(days=35)
DMDC_LOOKBACK_DAYS = 14
#: Delta operations that do not change a table's data.
MAINTENANCE_OPERATIONS = frozenset(
    {
        "OPTIMIZE",
        "VACUUM START",
        "VACUUM END",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "ANALYZE",
        "FSCK",
        "REORG",
        "UPGRADE PROTOCOL",
        "ADD CONSTRAINT",
        "DROP CONSTRAINT",
        "CLUSTER BY",
        "CHANGE COLUMN",
        "ADD COLUMNS",
        "SET COLUMN MASK",
        "SET ROW FILTER",
    }
)

PASS = "PASS"
FAIL = "FAIL"


@dataclasses.dataclass
class Check:
    """One check's verdict, published figures and gap messages."""

    name: str
    gaps: list[str]
    figures: dict[str, Any]

    @property
    def status(self) -> str:
        return FAIL if self.gaps else PASS

    def as_value(self) -> dict[str, Any]:
        return {"status": self.status, "gaps": len(self.gaps), **self.figures}


def _ts(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


# --- pure rules ----------------------------------------------------------------


def source_check(source: str, newest: dt.datetime | None, run_date: dt.date) -> Check:
    cadence = SOURCE_CADENCE[source]
    limit = rules.midnight(run_date) - cadence
    gaps = []
    if newest is None:
        gaps.append(
            f"no {source} file has ever been processed (expected every {cadence.days} days)"
        )
    elif newest < limit:
        gaps.append(
            f"no {source} file processed since {_ts(newest)}: older than {cadence.days} days "
            f"before {run_date.isoformat()} (limit {_ts(limit)})"
        )
    return Check(
        f"{source.lower()}_files",
        gaps,
        {"newest_processed": _ts(newest), "limit": _ts(limit), "cadence_days": cadence.days},
    )


def pt_check(
    table: str, exists: bool, last_change: dt.datetime | None, run_date: dt.date
) -> Check:
    limit = rules.midnight(run_date) - PT_CADENCE
    gaps = []
    if not exists:
        gaps.append(f"PT delta table {table} does not exist")
    elif last_change is None or last_change < limit:
        gaps.append(
            f"PT delta table {table} has not changed since {_ts(last_change)}: older than "
            f"{PT_CADENCE.days} days before {run_date.isoformat()} (limit {_ts(limit)})"
        )
    return Check(
        "pt_delta",
        gaps,
        {"last_change": _ts(last_change), "limit": _ts(limit), "cadence_days": PT_CADENCE.days},
    )


def transfer_days(run_date: dt.date) -> list[dt.date]:
    """Past DMDC transfer days in the look-back (today excluded), oldest first."""
    days = (run_date - dt.timedelta(days=n) for n in range(DMDC_LOOKBACK_DAYS, 0, -1))
    return [d for d in days if rules.dmdc_export_due(d)]


def dmdc_check(
    run_date: dt.date,
    checkpoints: Iterable[tuple[dt.date, str]],
    files: set[str],
    logged_runs: Mapping[dt.date, bool],
) -> Check:
    """``checkpoints``: (day, filename); ``logged_runs``: run date -> export found no rows."""
    by_day: dict[dt.date, list[str]] = {}
    for day, filename in checkpoints:
        by_day.setdefault(day, []).append(filename)
    starts = [d for d in (min(by_day, default=None), min(logged_runs, default=None)) if d]
    first = min(starts) if starts else None
    checked = [d for d in transfer_days(run_date) if first is not None and d >= first]
    gaps = []
    for day in checked:
        expected = fmt.export_filename(day)
        if day in by_day:
            gaps += [
                f"DMDC file {name} of transfer day {day.isoformat()} is in dmdc_checkpoint "
                "but missing from the export directory"
                for name in by_day[day]
                if name not in files
            ]
        elif expected in files:
            gaps.append(
                f"DMDC file {expected} of transfer day {day.isoformat()} exists without a "
                "checkpoint (the next export would send its window again)"
            )
        elif not logged_runs.get(day, False):
            gaps.append(
                f"no DMDC export for transfer day {day.isoformat()}: no checkpoint, no file, "
                "and no logged run that found no eligible rows"
            )
    return Check(
        "dmdc_exports",
        gaps,
        {
            "transfer_days_checked": len(checked),
            "history_starts": first.isoformat() if first else None,
            "lookback_days": DMDC_LOOKBACK_DAYS,
        },
    )


def found_no_rows(stats_json: str | None) -> bool:
    """Did a logged run's export run and find nothing to send (SPEC §9.1)?"""
    try:
        stats = json.loads(stats_json) if stats_json else None
    except ValueError:
        return False
    if not isinstance(stats, dict) or stats.get("triggered") is not True:
        return False
    return not stats.get("filename") and not stats.get("record_count")


# --- reads (never create a table) -------------------------------------------------


def newest_processed(ctx: TaskContext) -> dict[str, dt.datetime]:
    """Per source, the newest file time merged: from the ledger and from the target."""
    newest = ctx.ledger.newest_merged()
    rows = (
        ctx.tables.read(t.PATRONAGE_UNIFIED)
        .groupBy(F.upper("Batch_CD").alias("src"))
        .agg(F.max("SDP_Event_Created_Timestamp").alias("newest"))
        .collect()
    )
    for r in rows:
        if r["newest"] is not None and (r["src"] not in newest or r["newest"] > newest[r["src"]]):
            newest[r["src"]] = r["newest"]
    return newest


def pt_last_change(spark: SparkSession, table: str) -> tuple[bool, dt.datetime | None]:
    """Whether the PT delta table (name or Delta path) exists, and its last data change."""
    src = pt_sources.source("pt_delta_table", table)
    if not pt_sources.exists(spark, src):
        return False, None
    row = (
        pt_sources.delta_table(spark, src)
        .history()
        .where(~F.col("operation").isin(*sorted(MAINTENANCE_OPERATIONS)))
        .agg(F.max("timestamp").alias("last"))
        .collect()[0]
    )
    return True, row["last"]


def read_logged_runs(ctx: TaskContext) -> dict[dt.date, bool]:
    """Run date of each logged run -> whether its export found no eligible rows."""
    out: dict[dt.date, bool] = {}
    for r in ctx.pipeline_log.export_facts():
        try:
            day = dt.date.fromisoformat(r["run_date"]) if r["run_date"] else None
        except ValueError:
            day = None
        if day is None and r["run_timestamp_utc"] is not None:
            day = r["run_timestamp_utc"].date()
        if day is not None:
            out[day] = out.get(day, False) or found_no_rows(r["dmdc_export_stats"])
    return out


def export_file_names(ctx: TaskContext) -> tuple[set[str], str | None]:
    try:
        return {f.name for f in ctx.fs.list_files(ctx.settings.export_dir)}, None
    except FileSystemError as exc:
        return set(), f"setting 'export_dir': {exc}"


def run(ctx: TaskContext) -> dict[str, Any]:
    s = ctx.settings
    run_date = s.effective_run_date()
    newest = newest_processed(ctx)
    checks = [source_check(src, newest.get(src), run_date) for src in rules.SOURCES]
    exists, last_change = pt_last_change(ctx.spark, s.pt_delta_table)
    checks.append(pt_check(s.pt_delta_table, exists, last_change, run_date))
    files, listing_error = export_file_names(ctx)
    dmdc = dmdc_check(run_date, ctx.checkpoints.days_and_files(), files, read_logged_runs(ctx))
    if listing_error and dmdc.figures["transfer_days_checked"]:
        dmdc.gaps.insert(0, listing_error)
    checks.append(dmdc)

    values = {"checks": {c.name: c.as_value() for c in checks}}
    gaps = [g for c in checks for g in c.gaps]
    for c in checks:
        log.info("freshness %s: %s", c.name, c.status)
    if gaps:
        ctx.state.publish(TASK_KEY, values)
        raise FreshnessGap(f"{len(gaps)} freshness gap(s) on {run_date.isoformat()}: " +
                           " | ".join(gaps))
    return values


main = entry_point(TASK_KEY, run)

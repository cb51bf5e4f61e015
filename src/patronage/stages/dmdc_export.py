"""Task ``dmdc_export``: the Wednesday/Friday DMDC file, exactly once per run date (SPEC §9.1).

Order matters: the file is written atomically first, then the checkpoint row
is appended, and a failed append fails the task. A checkpoint for the run date
(00:00 of it) means the export happened: a rerun or repair writes nothing and
inserts nothing. If the file was written but the checkpoint append failed, a
repair finds no checkpoint, selects the same window again and atomically
rewrites the file (the same bytes unless the table changed in between, which
is logged) before inserting the checkpoint with the SHA-256 of what is on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patronage import config
from patronage import dmdc_format as fmt
from patronage import tables as t
from patronage.faults import CrashPoint, crash_point
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

PUBLISHES: tuple[str, ...] = (
    "triggered",
    "reason",
    "record_count",
    "record_count_by_batch",
    "filename",
    "window_start",
    "window_end",
    "file_sha256",
)


def due_flag(value: Any) -> bool:
    """A due flag from task values (JSON bool; tolerate its string form)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def ts_text(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ")


def select_for_export(
    target: DataFrame, run_date: dt.date, start: dt.datetime, end: dt.datetime
) -> DataFrame:
    """Active rows with an edipi, eligible, created in ``[start, end)``: record columns."""
    return target.where(
        (F.col("RecordStatus") == F.lit(True))
        & F.col("edipi").isNotNull()
        & fmt.in_window(start, end)
        & fmt.eligible(run_date)
    ).select(*fmt.RECORD_COLUMNS)


def _exported_by_this_run(
    ctx: TaskContext, run_date: dt.date, existing: dict[str, Any]
) -> dict[str, Any]:
    """The values the attempt that wrote the file and its checkpoint would have published."""
    start, _ = fmt.export_window(run_date, existing["previous"])
    path = ctx.settings.export_dir.rstrip("/") + "/" + str(existing["filename"])
    by_batch = dict.fromkeys(fmt.BATCHES, 0)
    if ctx.fs.exists(path):
        by_batch = fmt.count_by_batch(
            fmt.parse_records(ctx.fs.read_bytes(path), str(existing["filename"]))
        )
    return {"triggered": True, "reason": "exported", "window_start": ts_text(start),
            "record_count_by_batch": by_batch}  # fmt: skip


def run(ctx: TaskContext) -> dict[str, Any]:
    facts = ctx.upstream("discover")
    run_date = config.parse_date("run_date", str(facts["run_date"]))
    filename = fmt.export_filename(run_date)
    values: dict[str, Any] = {
        "triggered": False,
        "reason": "not due",
        "record_count": 0,
        "record_count_by_batch": dict.fromkeys(fmt.BATCHES, 0),
        "filename": None,
        "window_start": None,
        "window_end": None,
        "file_sha256": None,
    }
    if not due_flag(facts.get("dmdc_export_due")):
        log.info("DMDC export not due for %s", run_date)
        return values

    end = fmt.midnight(run_date)
    newest, existing = ctx.checkpoints.facts(end)
    values["window_end"] = ts_text(end)
    if existing is not None:
        log.info("DMDC export for %s already has its checkpoint (%s): nothing to do",
                 run_date, existing["filename"])
        values.update(
            reason="already exported",
            filename=existing["filename"],
            record_count=int(existing["record_count"] or 0),
            file_sha256=existing["file_sha256"],
        )
        if existing["run_id"] == ctx.settings.run_id:
            # A repair of the run whose earlier attempt exported and died: its values.
            values.update(_exported_by_this_run(ctx, run_date, existing))
        return values

    start, end = fmt.export_window(run_date, newest)
    values["window_start"] = ts_text(start)
    if start >= end:
        log.warning("DMDC window for %s is empty: newest checkpoint %s is not before %s",
                    run_date, start, end)
    rows = (
        select_for_export(ctx.tables.read(t.PATRONAGE_UNIFIED), run_date, start, end).collect()
        if start < end
        else []
    )
    if not rows:
        log.info("DMDC export %s: no eligible rows in window; no file, no checkpoint", filename)
        values.update(triggered=True, reason="no eligible rows")
        return values

    records = fmt.format_records(tuple(r) for r in rows)
    content = fmt.file_content(records)
    sha256 = hashlib.sha256(content).hexdigest()
    path = ctx.settings.export_dir.rstrip("/") + "/" + filename
    if ctx.fs.exists(path):
        # Left by an attempt whose checkpoint insert failed (see module docstring).
        same = hashlib.sha256(ctx.fs.read_bytes(path)).hexdigest() == sha256
        log.warning("DMDC file %s exists without a checkpoint; rewriting it (%s content)",
                    filename, "same" if same else "DIFFERENT")
    ctx.fs.write_atomic(path, content)
    log.info("wrote DMDC file %s with %d records", filename, len(records))
    crash_point(CrashPoint.DMDC_EXPORT_AFTER_FILE)

    # A failure here fails the task: the next export must not skip this window.
    ctx.checkpoints.record(
        end=end,
        filename=filename,
        record_count=len(records),
        generate_query=fmt.generate_query(run_date),
        file_sha256=sha256,
        run_id=ctx.settings.run_id,
    )
    log.info("DMDC checkpoint %s recorded", ts_text(end))
    crash_point(CrashPoint.DMDC_EXPORT_AFTER_CHECKPOINT)

    values.update(
        triggered=True,
        reason="exported",
        record_count=len(records),
        record_count_by_batch=fmt.count_by_batch(records),
        filename=filename,
        file_sha256=sha256,
    )
    return values


main = entry_point("dmdc_export", run)

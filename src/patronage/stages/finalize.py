"""finalize: the one ``patronage_pipeline_log`` row of a run (SPEC §10).

Runs with ``run_if: ALL_DONE``, so it also logs failed runs. Everything comes
from the run's task values (the run-state table), never from re-reading the
inputs:

- A pipeline task failed when its ``task_status`` is ``FAILED``, or when it
  published nothing for this run (it was skipped because an upstream task
  failed, or never reached). The task list is :data:`PIPELINE_TASKS` (the job's
  DAG without finalize); Settings take no extra parameter for it.
- ``run_timestamp_utc`` is the start of the run's first task (its publish time
  minus its duration, over every attempt), ``duration_seconds`` the wall-clock
  time from then to this row: a repaired run includes the time until the
  repair.
- The JSON detail columns hold the values the stages published (missing
  values are ``null``), plus the target's row counts read once here.
- The reject policy (:mod:`patronage.reject_policy`) fails a run whose tasks
  all succeeded when an inbound file was refused as a whole or too many of a
  file's rows were rejected; the message names each file, its counts by
  reason code and the rule. With ``reject_policy=warn`` it is only logged.
- With ``ops_schema`` set, the operators' views (:mod:`patronage.ops_views`)
  are refreshed after the row is written.
- A rerun of finalize for the same run replaces that run's row (MERGE on
  ``run_id``). When the run failed, the row is written first and then
  finalize raises, so the job's outcome stays failed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import functions as F

from patronage import ops_views
from patronage import reject_policy as policy
from patronage import tables as t
from patronage.errors import RunFailed
from patronage.faults import CrashPoint, crash_point
from patronage.repositories.task_values import RunState
from patronage.stages import discover
from patronage.task import DURATION_VALUE, ERROR_VALUE, STATUS_VALUE, TaskContext, entry_point

log = logging.getLogger(__name__)

PUBLISHES = ("status", "error_message", policy.BREACHES)

TASK_KEY = "finalize"
#: The job's tasks before finalize, in DAG order.
PIPELINE_TASKS = (
    "discover",
    "identity",
    "ingest_scd",
    "ingest_cg",
    "merge",
    "edipi_backfill",
    "dmdc_export",
    "backup",
)
SCHEDULED_TASKS = ("edipi_backfill", "dmdc_export", "backup")
SUCCESS = "SUCCESS"
FAILED = "FAILED"
NOT_RUN = "NOT_RUN"


def task_outcomes(values: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """(state, error) per pipeline task: SUCCESS, FAILED or NOT_RUN."""
    out: dict[str, tuple[str, str | None]] = {}
    for task in PIPELINE_TASKS:
        v = values.get(task) or {}
        if not v:
            out[task] = (NOT_RUN, None)
        elif v.get(STATUS_VALUE) == FAILED:
            out[task] = (FAILED, v.get(ERROR_VALUE) or "no error recorded")
        else:
            out[task] = (SUCCESS, None)
    return out


def run_status(outcomes: dict[str, tuple[str, str | None]]) -> tuple[str, str | None]:
    """SUCCESS, or FAILED with a message naming each failed and each missing task."""
    failed = [f"{task} FAILED ({err})" for task, (st, err) in outcomes.items() if st == FAILED]
    missing = [task for task, (state, _) in outcomes.items() if state == NOT_RUN]
    if not failed and not missing:
        return SUCCESS, None
    parts = list(failed)
    if missing:
        parts.append("not run (published nothing): " + ", ".join(missing))
    return FAILED, "; ".join(parts)


def policy_breaches(values: dict[str, dict[str, Any]], limits: policy.Thresholds) -> list[str]:
    """The reject policy's fired rules, from what the ingests published."""
    return policy.breaches(
        {"SCD": values.get("ingest_scd"), "CG": values.get("ingest_cg")}, limits
    )


def _without_wrapper(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if not values:
        return None
    return {k: v for k, v in values.items() if k not in (STATUS_VALUE, ERROR_VALUE)}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def detail_columns(
    values: dict[str, dict[str, Any]],
    outcomes: dict[str, tuple[str, str | None]],
    target_counts: dict[str, Any] | None,
) -> dict[str, str]:
    """The SPEC §10 JSON columns from the published values (missing -> null)."""
    disc = values.get("discover") or {}
    ident = values.get("identity") or {}
    merge = values.get("merge") or {}

    rows_after = (target_counts or {}).get("rows")
    added = _int(merge.get("staged_rows")) if merge.get(STATUS_VALUE) != FAILED else None
    rebuild = disc.get("processing_mode") == "rebuild"
    table_detail = {
        "rows_before": (
            rows_after - added
            if rows_after is not None and added is not None and not rebuild
            else None
        ),
        "rows_after": rows_after,
        "rows_added": added,
        "active_rows": (target_counts or {}).get("active"),
        "target_version": merge.get("target_version"),
    }
    identity_detail = {
        "lookup_rows": ident.get("lookup_rows"),
        "quarantined_rows": ident.get("quarantined_rows"),
        "built": ident.get("built"),
        "lookup_run_date": ident.get("lookup_run_date"),
    }
    discovery = {name: disc.get(name) for name in discover.FACTS}
    records = {
        "SCD": _without_wrapper(values.get("ingest_scd")),
        "CG": _without_wrapper(values.get("ingest_cg")),
        "staged_rows": merge.get("staged_rows"),
    }
    scheduled = {
        task: {
            "due": disc.get(f"{task}_due"),
            "triggered": (values.get(task) or {}).get("triggered"),
            "status": outcomes.get(task, (NOT_RUN, None))[0],
        }
        for task in SCHEDULED_TASKS
    }
    watermarks = {
        source: {
            "window_start": disc.get(f"{source.lower()}_window_start"),
            "window_end": disc.get(f"{source.lower()}_window_end"),
        }
        for source in ("SCD", "CG")
    }
    by_batch = {
        source: {
            kind: merge.get(f"{kind}_{source.lower()}")
            for kind in ("active", "new", "updated", "expired", "unchanged")
        }
        for source in ("SCD", "CG")
    }

    def dump(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    return {
        "patronage_table_detail": dump(table_detail),
        "identity_correlation_detail": dump(identity_detail),
        "file_discovery_detail": dump(discovery),
        "records_processed_detail": dump(records),
        "scheduled_tasks_detail": dump(scheduled),
        "input_watermarks": dump(watermarks),
        "output_row_counts_by_batch": dump(by_batch),
        "dmdc_export_stats": dump(_without_wrapper(values.get("dmdc_export"))),
        "edipi_backfill_stats": dump(_without_wrapper(values.get("edipi_backfill"))),
        "backup_stats": dump(_without_wrapper(values.get("backup"))),
    }


def run_start(state: RunState) -> dt.datetime | None:
    """Earliest task start of the run: publish time minus duration, any attempt."""
    starts = []
    for value, recorded_at in state.published_at(DURATION_VALUE, except_task=TASK_KEY):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = 0.0
        starts.append(recorded_at - dt.timedelta(seconds=seconds))
    return min(starts) if starts else None


def target_counts(tables: t.Tables) -> dict[str, Any] | None:
    """Total and active rows of the target, without creating it."""
    if not tables.exists(t.PATRONAGE_UNIFIED):
        return None
    row = (
        tables.read(t.PATRONAGE_UNIFIED)
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(F.col("RecordStatus"), 1).otherwise(0)).alias("active"),
        )
        .collect()[0]
    )
    return {"rows": int(row["rows"]), "active": int(row["active"] or 0)}


def build_row(
    run_id: str,
    mode: str,
    values: dict[str, dict[str, Any]],
    start: dt.datetime | None,
    now: dt.datetime,
    counts: dict[str, Any] | None,
    breaches: Sequence[str] = (),
) -> dict[str, Any]:
    """The run's log row; ``breaches`` (reject policy lines) fail it like a failed task."""
    outcomes = task_outcomes(values)
    status, error = run_status(outcomes)
    if breaches:
        status = FAILED
        error = "; ".join(e for e in (error, policy.message(breaches)) if e)
    started = start or now
    return {
        "run_id": run_id,
        "run_timestamp_utc": started,
        "processing_mode": (values.get("discover") or {}).get("processing_mode") or mode,
        "status": status,
        "error_message": error,
        "duration_seconds": round(max((now - started).total_seconds(), 0.0), 3),
        **detail_columns(values, outcomes, counts),
    }


def run(ctx: TaskContext) -> dict[str, Any]:
    s = ctx.settings
    values = {k: v for k, v in ctx.state.get_all().items() if k != TASK_KEY}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    limits = policy.Thresholds(s.reject_max_row_share, s.reject_max_unresolved_share)
    breaches = policy_breaches(values, limits)
    failing = breaches
    if breaches and s.reject_policy == "warn":
        log.warning("%s (reject_policy=warn: the run is not failed)", policy.message(breaches))
        failing = []
    row = build_row(
        s.run_id,
        s.processing_mode,
        values,
        run_start(ctx.state),
        now,
        target_counts(ctx.tables),
        failing,
    )
    ctx.pipeline_log.upsert(row)
    crash_point(CrashPoint.FINALIZE_AFTER_LOG_ROW)
    published = {
        "status": row["status"],
        "error_message": row["error_message"],
        policy.BREACHES: breaches,
    }
    log.info("run %s logged as %s", s.run_id, row["status"])
    views_failed: Exception | None = None
    if s.ops_schema:
        try:
            ops_views.refresh(ctx.tables, s.ops_schema)
        except Exception as exc:  # reported after the run's own failure, which comes first
            log.error("operators' views in %s not refreshed: %s", s.ops_schema,
                      type(exc).__name__)
            views_failed = exc
    if row["status"] != SUCCESS:
        # Our values first: the wrapper only records task_* values on failure.
        ctx.state.publish(TASK_KEY, published)
        raise RunFailed(f"run {s.run_id} failed: {row['error_message']}")
    if views_failed is not None:
        raise views_failed
    return published


main = entry_point(TASK_KEY, run)

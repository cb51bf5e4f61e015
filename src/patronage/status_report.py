"""What ``patronage status`` shows, built and formatted from plain values (no Spark, no I/O).

:func:`run_summary` turns one run's log row, task values, ledger events and
reject counts into a summary; :func:`schedule` says when the scheduled outputs
are next due, with the very gates discover applies (:mod:`patronage.rules`);
:func:`format_text` lays a report out as terminal tables. Only counts, states,
dates, file names and run ids appear: the inputs hold no record contents.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from patronage import rules
from patronage.repositories.ledger import LedgerStatus

#: The job's tasks in DAG order, as status shows them.
TASKS = (
    "discover", "identity", "ingest_scd", "ingest_cg", "merge",
    "edipi_backfill", "dmdc_export", "backup", "finalize",
)  # fmt: skip
SOURCES = rules.SOURCES
ROW_KINDS = ("new", "updated", "expired")

#: Scheduled task -> (gate, how the rule reads).
SCHEDULE: dict[str, tuple[Callable[[dt.date], bool], str]] = {
    "dmdc_export": (rules.dmdc_export_due, "Wednesdays and Fridays"),
    "edipi_backfill": (rules.edipi_backfill_due, "last Friday of the month"),
    "backup": (rules.backup_due, "first day of the month"),
}


def _json(text: Any) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _iso(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return None if value is None else str(value)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def task_entries(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: the status and duration it published (NOT_RUN when it published nothing)."""
    out = {}
    for task in TASKS:
        v = values.get(task) or {}
        duration = v.get("task_duration_seconds")
        out[task] = {
            "status": str(v.get("task_status") or ("NOT_RUN" if not v else "SUCCESS")),
            "duration_seconds": float(duration) if isinstance(duration, int | float) else None,
        }
    return out


def run_summary(
    log_row: Mapping[str, Any],
    values: Mapping[str, Mapping[str, Any]],
    ledger_counts: Mapping[str, Mapping[str, int]],
    rejects: Mapping[str, int],
) -> dict[str, Any]:
    """One run as status shows it; ``ledger_counts`` is {source: {status: files}}."""
    discovery = _json(log_row.get("file_discovery_detail"))
    by_batch = _json(log_row.get("output_row_counts_by_batch"))
    files = {
        source: {
            "discovered": _count((ledger_counts.get(source) or {}).get(LedgerStatus.DISCOVERED)),
            "merged": _count((ledger_counts.get(source) or {}).get(LedgerStatus.MERGED)),
            "refused": _count((ledger_counts.get(source) or {}).get(LedgerStatus.REJECTED)),
        }
        for source in SOURCES
    }
    rows = {
        source: {kind: _count((by_batch.get(source) or {}).get(kind)) for kind in ROW_KINDS}
        for source in SOURCES
    }
    return {
        "run_id": str(log_row.get("run_id")),
        "status": log_row.get("status"),
        "processing_mode": log_row.get("processing_mode"),
        "run_date": discovery.get("run_date"),
        "started_utc": _iso(log_row.get("run_timestamp_utc")),
        "duration_seconds": log_row.get("duration_seconds"),
        "error_message": log_row.get("error_message"),
        "tasks": task_entries(values),
        "files": files,
        "late_files": _count(discovery.get("late_files")),
        "rows": rows,
        "rejects_by_reason": dict(sorted(rejects.items())),
    }


def next_due(gate: Callable[[dt.date], bool], after: dt.date) -> dt.date:
    """The first day after ``after`` the gate opens (every gate opens within a month)."""
    day = after + dt.timedelta(days=1)
    while not gate(day):
        day += dt.timedelta(days=1)
    return day


def schedule(today: dt.date) -> dict[str, dict[str, Any]]:
    """Per scheduled output: due on ``today``'s run, and the next day it is due after that."""
    return {
        task: {"rule": rule, "due_today": gate(today), "next": next_due(gate, today).isoformat()}
        for task, (gate, rule) in SCHEDULE.items()
    }


def dmdc_summary(checkpoint: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The last export as its checkpoint records it (file name, records, window end)."""
    if checkpoint is None:
        return None
    return {
        "file": PurePosixPath(str(checkpoint.get("filename") or "")).name or None,
        "path": checkpoint.get("filename"),
        "record_count": checkpoint.get("record_count"),
        "window_end_utc": _iso(checkpoint.get("checkpoint_timestamp")),
        "written_utc": _iso(checkpoint.get("created_at")),
        "run_id": checkpoint.get("run_id"),
    }


# --------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Left-aligned columns separated by two spaces."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)]


def _seconds(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}s"


def _per_source(values: Mapping[str, Mapping[str, int]], keys: Sequence[str]) -> str:
    return " ".join(
        f"{source} " + "/".join(str(values[source][k]) for k in keys) for source in SOURCES
    )


def _rejects(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or "-"


def _task_cell(entry: Mapping[str, Any]) -> str:
    status = entry.get("status")
    if status == "NOT_RUN":
        return "-"
    shown = _seconds(entry.get("duration_seconds"))
    return shown if status == "SUCCESS" else f"{status} {shown}".strip()


def runs_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not runs:
        return ["no run in patronage_pipeline_log yet"]
    lines = table(
        ("run", "status", "mode", "run date", "started (UTC)", "took",
         "files merged/refused", "rows new/updated/expired", "rejects"),
        [
            (r["run_id"], r["status"], r["processing_mode"], r["run_date"], r["started_utc"],
             _seconds(r["duration_seconds"]),
             _per_source({s: r["files"][s] for s in SOURCES}, ("merged", "refused"))
             + (f" late {r['late_files']}" if r["late_files"] else ""),
             _per_source(r["rows"], ROW_KINDS), _rejects(r["rejects_by_reason"]))
            for r in runs
        ],
    )  # fmt: skip
    lines += ["", "Task durations ('-' = not run):"]
    lines += table(("run", *TASKS), [(r["run_id"], *(_task_cell(r["tasks"][t]) for t in TASKS))
                                     for r in runs])  # fmt: skip
    for r in runs:
        if r["error_message"]:
            lines.append(f"run {r['run_id']} {r['status']}: {r['error_message']}")
    return lines


def schedule_lines(sched: Mapping[str, Mapping[str, Any]], today: dt.date) -> list[str]:
    return table(
        ("output", "rule", f"due {today.isoformat()}", "next due after"),
        [(task, s["rule"], "yes" if s["due_today"] else "no", s["next"])
         for task, s in sched.items()],
    )  # fmt: skip


def dmdc_lines(dmdc: Mapping[str, Any] | None) -> list[str]:
    if dmdc is None:
        return ["Last DMDC export: none (dmdc_checkpoint is empty)"]
    return [
        f"Last DMDC export: {dmdc['file']} with {dmdc['record_count']} records, "
        f"checkpoint (window end) {dmdc['window_end_utc']}, written {dmdc['written_utc']} "
        f"by run {dmdc['run_id']}"
    ]


def format_text(report: Mapping[str, Any]) -> str:
    """The whole report for a terminal."""
    today = dt.date.fromisoformat(report["as_of"])
    lines = [f"Patronage status (target {report['target']}), as of {report['as_of']}", ""]
    tables_part = report.get("tables")
    if tables_part is None:
        lines.append(f"Pipeline log: {report.get('tables_skipped') or 'not read'}")
    else:
        lines.append(f"Last {len(tables_part['runs'])} run(s) in {tables_part['schema']}:")
        lines += runs_lines(tables_part["runs"])
        lines += ["", *dmdc_lines(tables_part["dmdc"])]
    lines += ["", "Scheduled outputs:", *schedule_lines(report["schedule"], today)]
    if report.get("workspace") is not None:
        lines += ["", *workspace_lines(report["workspace"])]
    return "\n".join(lines)


def workspace_lines(ws: Mapping[str, Any]) -> list[str]:
    """The deployed job's recent runs: state, repairs, and each task's state and attempt."""
    lines = [f"Workspace job '{ws['job_name']}' (job id {ws['job_id']}, schedule "
             f"{ws['schedule_pause_status']}):"]  # fmt: skip
    if not ws["runs"]:
        return [*lines, "no run yet"]
    lines += table(
        ("run", "state", "started (UTC)", "took", "repairs"),
        [(r["run_id"], r["state"], r["started_utc"], _seconds(r["duration_seconds"]),
          r["repairs"]) for r in ws["runs"]],
    )  # fmt: skip
    lines += ["", "Task states (attempt > 0 = re-run by a repair):"]

    def cell(task: Mapping[str, Any] | None) -> str:
        if task is None:
            return "-"
        return str(task["state"]) + (f" #{task['attempt']}" if task["attempt"] else "")

    keys = [t for t in TASKS if any(t in r["tasks"] for r in ws["runs"])]
    keys += sorted({k for r in ws["runs"] for k in r["tasks"]} - set(keys))
    lines += table(("run", *keys), [(r["run_id"], *(cell(r["tasks"].get(k)) for k in keys))
                                    for r in ws["runs"]])  # fmt: skip
    return lines

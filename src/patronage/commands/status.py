"""``patronage status``: did it work? The last runs, the last DMDC export, what is due next.

Reads the run's bookkeeping through its repositories (the pipeline log, the
task values, the file ledger, the rejects and the DMDC checkpoints) and shows,
for the last ``--runs`` runs: status, duration per task, files merged and
refused, rows new/updated/expired, rejects by reason; then the last DMDC export
and checkpoint, and the scheduled outputs (DMDC export days, the last-Friday
EDIPI backfill, the monthly backup) due on the ``--as-of`` day and next.

With a deployed ``--target`` (dev, staging, prod, prod_uc) it also shows the
deployed job's recent runs from the workspace (state, each task's state and
attempt, repairs), authenticated by ``--profile`` or the environment; the
tables are read only where the target's Spark can reach them (on its compute).
Only counts, states, dates, file names and run ids are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from patronage import deployment, status_report
from patronage import spark as spark_mod
from patronage import tables as t
from patronage.workspace import Workspace

DEFAULT_RUNS = 5


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "status",
        help="the last runs, the last DMDC export and what is due next",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, metavar="N",
                   help=f"how many runs to show (default {DEFAULT_RUNS})")  # fmt: skip
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--as-of", default=None, metavar="YYYY-MM-DD",
                   help="the day the schedule is read for (default: today, UTC)")  # fmt: skip
    p.add_argument("--profile", default=None,
                   help="~/.databrickscfg profile for a deployed --target (default: environment)")
    p.set_defaults(func=main)


def read_tables(tables: t.Tables, runs: int) -> dict[str, Any]:
    """Everything status shows from the product's tables: five reads, whatever ``runs``."""
    from patronage.repositories.dmdc_checkpoint import DmdcCheckpoints
    from patronage.repositories.ledger import FileLedger
    from patronage.repositories.pipeline_log import PipelineLog
    from patronage.repositories.rejects import Rejects
    from patronage.repositories.task_values import values_of_runs

    log_rows = PipelineLog(tables).recent(runs)
    run_ids = [str(r["run_id"]) for r in log_rows]
    values = values_of_runs(tables, run_ids)
    files = FileLedger(tables).event_counts_by_run(run_ids)
    rejects = Rejects(tables).counts_by_run(run_ids)
    return {
        "schema": f"{tables.catalog}.{tables.schema}",
        "runs": [
            status_report.run_summary(
                row, values.get(rid, {}), files.get(rid, {}), rejects.get(rid, {})
            )
            for row, rid in zip(log_rows, run_ids, strict=True)
        ],
        "dmdc": status_report.dmdc_summary(DmdcCheckpoints(tables).latest()),
    }


def as_of(args: argparse.Namespace) -> dt.date:
    if getattr(args, "as_of", None):
        return dt.date.fromisoformat(args.as_of)
    return dt.datetime.now(dt.UTC).date()


def build_report(args: argparse.Namespace) -> dict[str, Any]:
    from patronage import runner

    if args.runs < 1:
        raise runner.RunnerError(f"--runs {args.runs}: give a positive number of runs")
    today = as_of(args)
    report: dict[str, Any] = {
        "target": args.target,
        "as_of": today.isoformat(),
        "tables": None,
        "schedule": status_report.schedule(today),
        "workspace": None,
    }
    remote = deployment.is_workspace_target(args.target)
    if remote and not spark_mod.on_databricks():
        report["tables_skipped"] = (
            "the target's tables live in the workspace: run `patronage status` on its "
            "compute, or open the operations dashboard"
        )
    else:
        settings, spark = runner.resolve_settings(args, run_id="status")
        report["tables"] = read_tables(t.Tables(spark, settings.catalog, settings.schema),
                                       args.runs)  # fmt: skip
    if remote:
        bundle = runner.load_bundle(
            args.bundle_dir, args.target, runner.parse_assignments(args.var, "--var")
        )
        ws = Workspace.connect(args.profile)
        report["workspace"] = deployment.workspace_status(ws, bundle, args.job, args.runs)
    return report


def main(args: argparse.Namespace) -> int:
    report = build_report(args)
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(status_report.format_text(report))
    return 0

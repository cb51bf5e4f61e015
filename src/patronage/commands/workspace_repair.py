"""``patronage repair --target <deployed target>``: repair a workspace run and wait for it.

The tasks are chosen as the local repair chooses them: every failed, canceled,
timed-out or upstream-failed task and everything downstream of it, re-run on
the run's latest repair (``latest_repair_id``). Prints each task's outcome;
the exit status is 0 only when the repaired run succeeded.
"""

from __future__ import annotations

import argparse
import datetime as dt

from patronage import deployment, runner, status_report
from patronage.workspace import Workspace


def repair_workspace_run(args: argparse.Namespace) -> int:
    bundle = runner.load_bundle(
        args.bundle_dir, args.target, runner.parse_assignments(args.var, "--var")
    )
    run_id = None
    if args.run_id not in (None, "", "latest"):
        try:
            run_id = int(args.run_id)
        except ValueError:
            message = f"--run-id {args.run_id!r}: a workspace run id is a number"
            raise runner.RunnerError(message) from None
    ws = Workspace.connect(args.profile)
    timeout = dt.timedelta(minutes=args.timeout_minutes)
    done = deployment.repair(ws, bundle, args.job, run_id, timeout)
    after = deployment.run_summary(done.after or {})
    if not done.tasks:
        print(f"run {done.run_id} has no failed task; nothing to repair ({after['state']})")
        return 0 if after["state"] == "SUCCESS" else 1
    print(f"run {done.run_id}: re-ran {', '.join(done.tasks)} (repair {done.repair_id})")
    rows = [
        (key, task["state"], task["attempt"], "re-run" if key in done.tasks else "kept")
        for key, task in after["tasks"].items()
    ]
    order = {k: i for i, k in enumerate(status_report.TASKS)}
    rows.sort(key=lambda r: order.get(r[0], len(order)))
    for line in status_report.table(("task", "state", "attempt", ""), rows):
        print(line)
    print(f"run {done.run_id} {after['state']}")
    return 0 if after["state"] == "SUCCESS" else 1

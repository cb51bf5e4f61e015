"""``patronage restore --table NAME [--yes]``: replace a table from its backup.

SPEC §9.3: restore = replace the table from its monthly backup, then run an
update so the files since the backup are re-applied. For
``patronage_unified`` the file ledger must let those files through again: a
file whose latest ledger event is ``merged`` is never processed again, so the
restore appends a ``superseded`` event (the ledger is append-only) for every
merged file whose modification time is after the restored table's newest
``SDP_Event_Created_Timestamp`` of its source. The next update run's window
starts at that same timestamp (SPEC §5), so it picks exactly those files up
again, in order. Files at or before it are already in the backup.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from typing import Any

from patronage import config
from patronage import tables as t
from patronage.errors import BackupError
from patronage.repositories.ledger import FileLedger
from patronage.stages import backup, discover

log = logging.getLogger(__name__)

RESTORE_MODE = "restore"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "restore",
        help="replace a table from its monthly backup (destructive; asks for confirmation)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--table", required=True, choices=backup.BACKUP_TABLES,
                   help="the table to replace from <backup_dir>/<table>")
    p.add_argument("--yes", action="store_true",
                   help="do not ask; confirm the replacement (for scripts)")
    p.set_defaults(func=main)


# --- settings + Spark for the chosen target ---------------------------------


def resolve(args: argparse.Namespace, run_id: str) -> tuple[config.Settings, Any]:
    """Settings and Spark for ``--target`` exactly as the job's tasks get them."""
    from patronage import runner

    return runner.resolve_settings(args, run_id=run_id)


# --- the ledger side of a restore of the target -------------------------------


def reopen_files_after_restore(tables: t.Tables, run_id: str, backup_path: str) -> int:
    """Append ``superseded`` events so the next update run re-applies them.

    Merged files newer than the restored state (per source) are reopened; a
    source with no rows in the restored table reopens all of its merged files.
    """
    newest = discover.newest_loaded(tables.read(t.PATRONAGE_UNIFIED))
    reason = (
        f"{t.PATRONAGE_UNIFIED} restored from {backup_path}; merged after the backup, "
        "to be re-applied by the next update run"
    )
    return FileLedger(tables).supersede_merged(
        run_id, RESTORE_MODE, reason, newer_than=newest or None, keep_counts=False
    )


def restore(tables: t.Tables, backup_dir: str, name: str, run_id: str) -> dict[str, Any]:
    """Replace the table, verify it, and reopen the files merged since the backup."""
    result = backup.restore_table(tables, backup_dir, name)
    if name == t.PATRONAGE_UNIFIED:
        result["reopened_files"] = reopen_files_after_restore(tables, run_id, result["path"])
    return result


# --- the command ----------------------------------------------------------------


def _confirmed(name: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        print("restore: not confirmed (no terminal); pass --yes to confirm", file=sys.stderr)
        return False
    typed = input(f"This REPLACES table {name} with its backup. Type the table name to confirm: ")
    return typed.strip() == name


def next_steps(name: str, result: dict[str, Any]) -> list[str]:
    lines = ["Next:"]
    if name == t.PATRONAGE_UNIFIED:
        lines += [
            f"  {result.get('reopened_files', 0)} merged file(s) newer than the backup were "
            "marked superseded in the file ledger.",
            "  Run an update so they are re-applied in order:  patronage run",
            "  (for another target: the job with processing_mode=update).",
            "  Exports after the backup are not re-sent: dmdc_checkpoint is untouched.",
        ]
    elif name == t.DMDC_CHECKPOINT:
        lines += [
            "  The next DMDC export starts its window at the newest restored checkpoint:",
            "  export files written since the backup will be produced again on the next",
            "  Wednesday/Friday run; coordinate with DMDC before it runs.",
            "  Run an update as usual:  patronage run",
        ]
    else:
        lines += [
            "  Log rows of runs since the backup are gone; nothing else to re-run.",
            "  The next run logs as usual:  patronage run",
        ]
    return lines


def main(args: argparse.Namespace) -> int:
    name = args.table
    if name not in backup.BACKUP_TABLES:
        print(f"restore: no backup is kept for {name}", file=sys.stderr)
        return 2
    if not _confirmed(name, bool(getattr(args, "yes", False))):
        print("restore: aborted, nothing changed", file=sys.stderr)
        return 1
    run_id = "restore-" + dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    settings, spark = resolve(args, run_id)
    tables = t.Tables(spark, settings.catalog, settings.schema)
    try:
        result = restore(tables, settings.backup_dir, name, run_id)
    except (FileNotFoundError, BackupError, ValueError) as exc:
        print(f"restore: FAILED: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {name} from {result['path']}: {result['rows']} rows, "
        f"checksum {result['checksum']} (verified), table version {result['table_version']}"
    )
    for line in next_steps(name, result):
        print(line)
    return 0

"""Named crash points: where a lost driver would leave a run half done.

Every stage that writes calls :func:`crash_point` between two of its writes.
Armed by ``PATRONAGE_CRASH_AT=<point>[,<point>...]``, reaching an armed point
ends the process at once with :func:`os._exit`: no ``finally``, no ``atexit``,
no Spark shutdown, no task value, exactly what a killed driver leaves behind.
Unarmed (always, on Databricks) a point costs one environment lookup. The
crash tests arm one point per run and check that a repair, or a new run of
the same day, ends with the very tables and files of an uninterrupted run.
"""

from __future__ import annotations

import os
from enum import StrEnum

ENV = "PATRONAGE_CRASH_AT"
#: The exit status of a process killed by SIGKILL, as a shell reports it.
EXIT_CODE = 137


class CrashPoint(StrEnum):
    DISCOVER_AFTER_LEDGER = "discover.after_ledger"
    IDENTITY_AFTER_LOOKUP = "identity.after_lookup"
    INGEST_SCD_AFTER_STAGING = "ingest_scd.after_staging"
    INGEST_SCD_AFTER_REJECTS = "ingest_scd.after_rejects"
    INGEST_SCD_AFTER_LEDGER = "ingest_scd.after_ledger"
    INGEST_CG_AFTER_STAGING = "ingest_cg.after_staging"
    INGEST_CG_AFTER_REJECTS = "ingest_cg.after_rejects"
    INGEST_CG_AFTER_LEDGER = "ingest_cg.after_ledger"
    MERGE_AFTER_COMMIT = "merge.after_commit"
    MERGE_AFTER_LEDGER = "merge.after_ledger"
    EDIPI_BACKFILL_AFTER_UPDATE = "edipi_backfill.after_update"
    EDIPI_BACKFILL_AFTER_FILE = "edipi_backfill.after_file"
    DMDC_EXPORT_AFTER_FILE = "dmdc_export.after_file"
    DMDC_EXPORT_AFTER_CHECKPOINT = "dmdc_export.after_checkpoint"
    BACKUP_BETWEEN_COPIES = "backup.between_copies"
    BACKUP_AFTER_COPIES = "backup.after_copies"
    FINALIZE_AFTER_LOG_ROW = "finalize.after_log_row"


def armed() -> frozenset[str]:
    raw = os.environ.get(ENV, "")
    return frozenset(p.strip() for p in raw.split(",") if p.strip())


def crash_point(point: CrashPoint) -> None:
    """End the process here, abruptly, when ``point`` is armed."""
    if point in armed():
        os.write(2, f"patronage: crash point {point} reached; process ends now\n".encode())
        os._exit(EXIT_CODE)

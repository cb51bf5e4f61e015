"""What a Delta table's log says about it: its newest commit, the commit a stage
marked, its data files; and the local compaction those files decide.

Stages tag the commits a repair must recognise (a run's MERGE, its backfill)
with userMetadata; the merge task reads its commit's metrics instead of
counting the target again. :class:`patronage.tables.Tables` names and creates
the tables; this module only reads their history and layout (and compacts).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import NamedTuple

from pyspark.sql import functions as F

from patronage.tables import Tables

log = logging.getLogger(__name__)

#: Local compaction threshold: files beyond what the table's size needs.
COMPACT_EXCESS_FILES = 50
COMPACT_FILE_BYTES = 128 * 1024 * 1024


class Layout(NamedTuple):
    """A Delta table's data files in one version, and that version's commit time."""

    files: int
    bytes: int
    modified: dt.datetime | None = None


class Commit(NamedTuple):
    """One entry of a Delta table's history."""

    version: int
    timestamp: dt.datetime | None
    user_metadata: str | None
    metrics: dict[str, str]


def last_commit(tables: Tables, name: str) -> Commit:
    """The table's newest commit: its version, userMetadata and operationMetrics."""
    rows = (
        tables.delta(name).history(1)
        .select("version", "timestamp", "userMetadata", "operationMetrics")
        .collect()
    )  # fmt: skip
    if not rows:
        return Commit(-1, None, None, {})
    r = rows[0]
    return Commit(
        int(r["version"]), r["timestamp"], r["userMetadata"], dict(r["operationMetrics"] or {})
    )


def marked_commit(tables: Tables, name: str, marker: str) -> dict[str, str] | None:
    """operationMetrics of the newest commit whose userMetadata is ``marker``, or None."""
    if not tables.exists(name):
        return None
    rows = (
        tables.delta(name)
        .history()
        .where(F.col("userMetadata") == marker)
        .orderBy(F.desc("version"))
        .select("operationMetrics")
        .limit(1)
        .collect()
    )
    return dict(rows[0]["operationMetrics"] or {}) if rows else None


def layout(tables: Tables, name: str) -> Layout:
    """Data files and their bytes in the table's current version (``DESCRIBE DETAIL``)."""
    detail = tables.delta(name).detail().select("numFiles", "sizeInBytes", "lastModified")
    row = detail.first()
    assert row is not None
    return Layout(int(row["numFiles"] or 0), int(row["sizeInBytes"] or 0), row["lastModified"])


def compact_if_fragmented(tables: Tables, name: str, known: Layout | None = None) -> bool:
    """Locally, OPTIMIZE once small files have piled up; True when it ran.

    A daily MERGE adds a few small files; compacting after each one would put
    a rewrite of the table on the critical path for nothing. On Databricks the
    job never compacts: predictive optimization (Unity Catalog managed tables)
    or the workspace's maintenance does it off the critical path.

    ``known``: the table's files as the caller already knows them (merge adds
    its commit's metrics to what it read before); read here when not given.
    """
    if not tables.local or not tables.exists(name):
        return False
    files, size, _ = known or layout(tables, name)
    needed = -(-size // COMPACT_FILE_BYTES) + 4  # + one per partition
    if files - needed < COMPACT_EXCESS_FILES:
        return False
    tables.spark.sql(f"OPTIMIZE {tables.fqn(name)}")
    log.info("compacted %s: %d files for %d bytes", name, files, size)
    return True

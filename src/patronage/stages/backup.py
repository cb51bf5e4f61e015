"""backup: monthly full, independent copies of the product's tables (SPEC §9.3).

Copies ``patronage_unified``, ``dmdc_checkpoint`` and ``patronage_pipeline_log``
to ``<backup_dir>/<table name>`` (a path-based Delta table), replacing last
month's copy, and proves each copy equal to its source (row count and an
order-independent checksum) before reporting success.

- Databricks: ``CREATE OR REPLACE TABLE delta.`<path>` DEEP CLONE <table>
  VERSION AS OF <v>``; a deep clone copies the data files, so the copy does not
  depend on the source's files.
- Locally (open-source Delta has no DEEP CLONE): the source is read at that
  same version and written with ``mode("overwrite")`` to the backup path: new
  Parquet files, so the copy is independent as well. Like ``CREATE OR REPLACE``
  on Databricks, the overwrite keeps the backup table's own history (earlier
  months stay reachable by time travel until a VACUUM).

The source is pinned to the version read before copying, so a concurrent
writer cannot make the verification compare two different states.

``patronage_pipeline_log`` is copied before ``finalize`` writes this run's row,
so the copy holds the log up to the previous run; that row is in the next
month's backup.

Restore (``patronage restore``) uses :func:`restore_table`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from patronage import fs
from patronage import spark as spark_mod
from patronage import tables as t
from patronage.errors import BackupError, ConfigError, MissingInputError
from patronage.faults import CrashPoint, crash_point
from patronage.sqlnames import quote_identifier
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

PUBLISHES = ("triggered", "tables", "reason")

#: The tables SPEC §9.3 backs up, in copy order.
BACKUP_TABLES = (t.PATRONAGE_UNIFIED, t.DMDC_CHECKPOINT, t.PIPELINE_LOG)


@dataclass(frozen=True)
class Fingerprint:
    """Row count and order-independent content checksum of one table state."""

    rows: int
    checksum: str

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum}


def fingerprint(df: DataFrame) -> Fingerprint:
    """Count and sum of a per-row xxhash64, in one Spark action.

    A sum (not XOR) so duplicate rows count; ``isnull`` flags are hashed too
    because xxhash64 skips null inputs (so ``(null, "x")`` and ``("x", null)``
    would otherwise hash alike); the sum is taken as decimal(38,0) so it
    cannot overflow under ANSI mode. Columns are hashed in name order so a
    copy whose columns are ordered differently still compares equal.
    """
    cols = sorted(df.columns)
    row_hash = F.xxhash64(*[F.col(c) for c in cols], *[F.isnull(F.col(c)) for c in cols])
    row = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(row_hash.cast("decimal(38,0)")).alias("checksum"),
    ).collect()[0]
    checksum = row["checksum"]
    return Fingerprint(int(row["rows"]), "0" if checksum is None else str(checksum))


def backup_path(backup_dir: str, name: str) -> str:
    """Where a table's backup lives: ``<backup_dir>/<table name>``."""
    if "`" in backup_dir:
        raise ConfigError(f"setting 'backup_dir' must not contain a backtick: {backup_dir!r}")
    return backup_dir.rstrip("/") + "/" + name


def _spark_path(path: str) -> str:
    return fs.to_spark_path(path)


def read_version(tables: t.Tables, name: str, version: int) -> DataFrame:
    """The table as of ``version`` (Delta time travel)."""
    return tables.spark.read.format("delta").option("versionAsOf", version).table(tables.fqn(name))


def read_backup(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(_spark_path(path))


def backup_marker(run_date: str, run_id: str = "", version: int | None = None) -> str:
    """Commit metadata of a copy: the run date it was made for, by which run, of which version.

    ``patronage-backup:<run date>`` alone is the prefix every copy of that run date has.
    """
    marker = f"patronage-backup:{run_date}"
    return marker if version is None else f"{marker}:{run_id}:{version}"


def copied_for(spark: SparkSession, path: str) -> str | None:
    """The marker of the backup copy at ``path`` (None when there is no copy)."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, _spark_path(path)):
        return None
    rows = DeltaTable.forPath(spark, _spark_path(path)).history(1).select("userMetadata").collect()
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def made_for(marker: str | None, run_date: str) -> bool:
    return marker is not None and (marker + ":").startswith(backup_marker(run_date) + ":")


def copies_of_this_run(
    spark: SparkSession, markers: dict[str, str | None], paths: dict[str, str], run_id: str
) -> dict[str, Any] | None:
    """The figures of copies an earlier attempt of this run made (None if another run did).

    A repair after a crash past the last copy publishes what that attempt would have.
    """
    out = {}
    for name, marker in markers.items():
        parts = (marker or "").split(":")
        if len(parts) != 4 or parts[2] != run_id:
            return None
        copy = fingerprint(read_backup(spark, paths[name]))
        out[name] = {**copy.as_dict(), "source_version": int(parts[3]), "path": paths[name]}
    return out


def copy_table(tables: t.Tables, name: str, path: str, version: int, marker: str) -> None:
    """Replace the copy at ``path`` with the table's state at ``version``.

    The copy's commit carries ``marker`` so that a rerun of the same run date
    knows the backup is already done.
    """
    with spark_mod.session_conf(tables.spark, {spark_mod.USER_METADATA_CONF: marker}):
        _copy(tables, name, path, version)


def _copy(tables: t.Tables, name: str, path: str, version: int) -> None:
    spark = tables.spark
    if spark_mod.is_local(spark):
        (
            read_version(tables, name, version)
            .write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .save(_spark_path(path))
        )
    else:
        # Path from configuration (checked for backticks), name from Tables,
        # version from the Delta log: no data values in this statement.
        spark.sql(
            f"CREATE OR REPLACE TABLE delta.{quote_identifier(path)} DEEP CLONE {tables.fqn(name)} "
            f"VERSION AS OF {int(version)}"
        )


def backup_table(
    tables: t.Tables, backup_dir: str, name: str, run_date: str = "", run_id: str = ""
) -> dict[str, Any]:
    """Copy one table and verify the copy; the figures are published."""
    tables.ensure(name)
    version = tables.version(name)
    path = backup_path(backup_dir, name)
    source = fingerprint(read_version(tables, name, version))
    copy_table(tables, name, path, version, backup_marker(run_date, run_id, version))
    copy = fingerprint(read_backup(tables.spark, path))
    if copy != source:
        raise BackupError(
            f"backup of {name} at {path} does not match its source version {version}: "
            f"rows {copy.rows} vs {source.rows}, checksum {copy.checksum} vs {source.checksum}"
        )
    log.info("backed up %s version %d (%d rows) to %s", name, version, source.rows, path)
    return {**source.as_dict(), "source_version": version, "path": path}


def run(ctx: TaskContext) -> dict[str, Any]:
    facts = ctx.upstream("discover")
    if not facts.get("backup_due"):
        log.info("backup not due on %s", facts.get("run_date"))
        return {"triggered": False}
    run_date, run_id = str(facts["run_date"]), ctx.settings.run_id
    paths = {name: backup_path(ctx.settings.backup_dir, name) for name in BACKUP_TABLES}
    markers = {name: copied_for(ctx.spark, path) for name, path in paths.items()}
    if not ctx.settings.force_backup and all(made_for(m, run_date) for m in markers.values()):
        earlier = copies_of_this_run(ctx.spark, markers, paths, run_id)
        if earlier is not None:
            log.info("backups for %s made by an earlier attempt of this run", run_date)
            return {"triggered": True, "tables": earlier}
        # A rerun of the same run date: this month's copies are made.
        log.info("backups for %s already made; nothing copied", run_date)
        return {"triggered": False, "reason": "already backed up"}
    copied: dict[str, dict[str, Any]] = {}
    for name in BACKUP_TABLES:
        if copied:
            crash_point(CrashPoint.BACKUP_BETWEEN_COPIES)
        copied[name] = backup_table(ctx.tables, ctx.settings.backup_dir, name, run_date, run_id)
    crash_point(CrashPoint.BACKUP_AFTER_COPIES)
    return {"triggered": True, "tables": copied}


# --- restore (used by `patronage restore`) ----------------------------------


def restore_table(tables: t.Tables, backup_dir: str, name: str) -> dict[str, Any]:
    """Replace ``name`` with its backup and verify the result equals the backup.

    Databricks: ``CREATE OR REPLACE TABLE <table> DEEP CLONE delta.`<path>```
    (runbook 3.5.1). Locally: the backup overwrites the table's files in one
    commit with the declared partitioning, then the declared clustering is re-applied
    (an overwrite by path drops it in open-source Delta). Both keep the table's history, so the
    restore itself can be undone by time travel.
    """
    if name not in BACKUP_TABLES:
        raise ConfigError(f"no backup is kept for table {name!r}; choose one of {BACKUP_TABLES}")
    spark = tables.spark
    path = backup_path(backup_dir, name)
    if not fs.filesystem_for(spark).exists(path + "/_delta_log") and spark_mod.is_local(spark):
        raise MissingInputError(f"no backup of {name} at {path}")
    expected = fingerprint(read_backup(spark, path))
    if spark_mod.is_local(spark):
        tables.ensure(name)
        location = tables.location(name)
        assert location is not None
        (
            read_backup(spark, path)
            .write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .partitionBy(*t.SPECS[name].partition_by)
            .save(location)
        )
        cluster_by = t.SPECS[name].cluster_by
        if cluster_by:
            cols = ", ".join(quote_identifier(c) for c in cluster_by)
            spark.sql(f"ALTER TABLE {tables.fqn(name)} CLUSTER BY ({cols})")
    else:
        source = f"delta.{quote_identifier(path)}"
        spark.sql(f"CREATE OR REPLACE TABLE {tables.fqn(name)} DEEP CLONE {source}")
    restored = fingerprint(tables.spark.table(tables.fqn(name)))
    if restored != expected:
        raise BackupError(
            f"restored {name} does not match its backup at {path}: rows {restored.rows} vs "
            f"{expected.rows}, checksum {restored.checksum} vs {expected.checksum}"
        )
    log.info("restored %s from %s (%d rows)", name, path, restored.rows)
    return {**restored.as_dict(), "path": path, "table_version": tables.version(name)}


main = entry_point("backup", run)

"""``patronage preflight``: the runbook's preflight checks (section 1) in one go.

Against the chosen ``--target``: settings resolve, the export directory (and
the backup directory) is writable (a probe file is written, read back and
removed), the PT sources (table names or Delta paths) are readable, and
``dmdc_checkpoint``, ``patronage_unified`` and ``patronage_pipeline_log`` are
readable, or absent and creatable (a probe table is created and dropped in the
schema, which the first run would create anyway). One PASS/FAIL line per
check; the exit status is 1 when any fails. Only counts and timestamps are
printed, never record contents.

With a deployed ``--target`` (dev, staging, prod, prod_uc) it checks the
workspace through its API (``--profile`` or the environment): the job is
deployed, its schedule's pause state is the target's, it runs as the target's
identity (the service principal, or the deployer in development), and each
configured location exists (Volumes, Workspace Files, DBFS). A check that
cannot be made from here is a SKIP with the reason. The probes above need
the target's Spark, so they run only on the workspace's compute.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from patronage import config, fs, pt_sources
from patronage import spark as spark_mod
from patronage import tables as t
from patronage.checks import Check, CheckStatus, passed, verdict


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "preflight",
        help="check settings, export directory and tables before a production run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--profile", default=None,
                   help="~/.databrickscfg profile for a deployed --target (default: environment)")
    p.set_defaults(func=main)


def _guard(name: str, check: Callable[[], str]) -> Check:
    """Run one check; any exception is that check's FAIL, the others still run."""
    try:
        return passed(name, True, check())
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return passed(name, False, f"{type(exc).__name__}: {first}")


def probe_directory(filesystem: fs.FileSystem, directory: str) -> str:
    """Create the directory, write a probe, read it back, remove it."""
    filesystem.mkdirs(directory)
    probe = directory.rstrip("/") + f"/_write_probe_{uuid.uuid4().hex}.txt"
    payload = b"ok\n"
    filesystem.write_atomic(probe, payload)
    try:
        if filesystem.read_bytes(probe) != payload:
            raise OSError(f"probe file {probe} read back different content")
    finally:
        filesystem.delete(probe)
    if filesystem.exists(probe):
        raise OSError(f"probe file {probe} could not be removed")
    return f"{directory} is writable (probe written and removed)"


def probe_create(tables: t.Tables) -> str:
    """Prove an absent table could be created: create and drop a probe table."""
    name = f"_preflight_probe_{uuid.uuid4().hex[:12]}"
    tables.ensure_schema()
    ddl = f"CREATE TABLE {tables.fqn(name)} (probe string) USING DELTA"
    if spark_mod.is_local(tables.spark):
        location = spark_mod.warehouse_dir(tables.spark) / tables.schema / name
        ddl += f" LOCATION '{location.as_posix()}'"
    tables.spark.sql(ddl)
    tables.drop(name)
    return "absent; will be created on the first run (create permission probed)"


def _table_check(
    tables: t.Tables, name: str, summary: Callable[[Any], str], creatable: Callable[[], str]
) -> Callable[[], str]:
    def check() -> str:
        if not tables.exists(name):
            return creatable()
        return summary(tables.spark.table(tables.fqn(name)))

    return check


def _once(fn: Callable[[], str]) -> Callable[[], str]:
    """One create probe serves every absent table (same schema, same rights)."""
    memo: list[str] = []

    def wrapper() -> str:
        if not memo:
            memo.append(fn())
        return memo[0]

    return wrapper


def _checkpoint_summary(df: DataFrame) -> str:
    r = df.agg(
        F.max("checkpoint_timestamp").alias("last"), F.count(F.lit(1)).alias("n")
    ).collect()[0]
    return f"readable: {r['n']} rows, last checkpoint {r['last']}"


def _target_summary(df: DataFrame) -> str:
    r = df.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.when(F.col("RecordStatus"), 1).otherwise(0)).alias("active"),
    ).collect()[0]
    return f"readable: {r['n']} rows, {r['active'] or 0} active"


def _log_summary(df: DataFrame) -> str:
    r = df.agg(F.count(F.lit(1)).alias("n"), F.max("run_timestamp_utc").alias("last")).collect()[0]
    return f"readable: {r['n']} rows, last run {r['last']}"


def pt_source_check(spark: SparkSession, setting: str, value: str) -> Callable[[], str]:
    """The PT source (table name or Delta path) is readable: its row count and last commit."""

    def check() -> str:
        src = pt_sources.source(setting, value)
        n = pt_sources.read(spark, src).count()
        last = pt_sources.delta_table(spark, src).history(1).collect()[0]["timestamp"]
        return f"{src.describe()} readable: {n} rows, last commit {last}"

    return check


def run_checks(settings: config.Settings, spark: SparkSession) -> list[Check]:
    """Every check after settings resolved, in the runbook's order."""
    tables = t.Tables(spark, settings.catalog, settings.schema)
    filesystem = fs.filesystem_for(spark)
    creatable = _once(lambda: probe_create(tables))
    return [
        passed(
            "settings",
            True,
            f"{settings.catalog}.{settings.schema}; export_dir {settings.export_dir}; "
            f"backup_dir {settings.backup_dir}; checkpoint table {t.DMDC_CHECKPOINT}",
        ),
        _guard("export directory", lambda: probe_directory(filesystem, settings.export_dir)),
        _guard("backup directory", lambda: probe_directory(filesystem, settings.backup_dir)),
        *(
            _guard(setting, pt_source_check(spark, setting, value))
            for setting, value in (
                ("pt_seed_table", settings.pt_seed_table),
                ("pt_delta_table", settings.pt_delta_table),
            )
        ),
        *(
            _guard(name, _table_check(tables, name, summary, creatable))
            for name, summary in (
                (t.DMDC_CHECKPOINT, _checkpoint_summary),
                (t.PATRONAGE_UNIFIED, _target_summary),
                (t.PIPELINE_LOG, _log_summary),
            )
        ),
    ]


def workspace_main(args: argparse.Namespace) -> int:
    """The deployed target's checks; the Spark probes too when running on its compute."""
    from patronage import deployment, runner
    from patronage import spark as spark_mod
    from patronage.workspace import Workspace

    bundle = runner.load_bundle(
        args.bundle_dir, args.target, runner.parse_assignments(args.var, "--var")
    )
    checks = deployment.preflight_checks(
        Workspace.connect(getattr(args, "profile", None)), bundle, args.job)  # fmt: skip
    if spark_mod.on_databricks():
        settings, spark = runner.resolve_settings(args, run_id="preflight")
        checks += run_checks(settings, spark)
    else:
        checks.append(Check(
            "tables and directories", CheckStatus.SKIP,
            "the write and table probes need the target's Spark: run this on its compute",
        ))  # fmt: skip
    return _report(checks)


def _report(checks: list[Check]) -> int:
    for c in checks:
        print(c.line())
    print(verdict(checks))
    return 0 if all(c.ok for c in checks) else 1


def main(args: argparse.Namespace) -> int:
    from patronage import deployment, runner

    if deployment.is_workspace_target(getattr(args, "target", None) or runner.DEFAULT_TARGET):
        return workspace_main(args)
    try:
        settings, spark = runner.resolve_settings(args, run_id="preflight")
    except Exception as exc:
        print(passed("settings", False, f"{type(exc).__name__}: {exc}").line())
        return 1
    return _report(run_checks(settings, spark))

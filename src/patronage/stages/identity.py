"""Task ``identity``: build ``correlation_lookup`` from the MVI Parquet sources (SPEC §3).

Runs in parallel with ``discover`` from the same job parameters, so the run
date comes from the settings, not from discover. The lookup is built at most
once per run date: each build appends a row to ``correlation_lookup_builds``,
and a run whose date is not newer than the current lookup's build reuses it.

Writes, in this order, so a crash anywhere is repaired by running again:
``correlation_lookup`` (overwritten), ``duplicate_correlations`` (overwritten:
it is the quarantine of the current lookup, its ``run_date`` says which build;
Delta history keeps earlier ones), then the build row, which marks the build
done.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from patronage import fs
from patronage import identity_rules as rules
from patronage import tables as t
from patronage.errors import IdentitySourceError, MissingColumnsError
from patronage.faults import CrashPoint, crash_point
from patronage.task import TaskContext, entry_point

log = logging.getLogger(__name__)

PUBLISHES: tuple[str, ...] = ("lookup_rows", "quarantined_rows", "built", "lookup_run_date")

#: MVI source -> the setting naming its Parquet directory.
SOURCE_SETTINGS = {
    "psa": "mvi_psa_dir",
    "person": "mvi_person_dir",
    "institution": "mvi_institution_dir",
}


def read_source(ctx: TaskContext, source: str) -> DataFrame:
    """One MVI source, conformed to its SPEC §2.4 columns, or a clear error."""
    setting = SOURCE_SETTINGS[source]
    path = getattr(ctx.settings, setting)
    try:
        df = ctx.spark.read.parquet(fs.to_spark_path(path))
    except AnalysisException as exc:
        condition = exc.getCondition() or ""
        if condition.startswith("PATH_NOT_FOUND"):
            raise IdentitySourceError(
                f"setting '{setting}': MVI {source} directory does not exist: {path}"
            ) from None
        if condition.startswith("UNABLE_TO_INFER_SCHEMA"):
            raise IdentitySourceError(
                f"setting '{setting}': MVI {source} directory holds no Parquet data: {path}"
            ) from None
        raise IdentitySourceError(
            f"setting '{setting}': MVI {source} directory cannot be read: {path} ({condition})"
        ) from None
    try:
        return rules.conform(df, source)
    except MissingColumnsError as exc:
        raise MissingColumnsError(f"{exc} (setting '{setting}': {path})") from None


def current_build(ctx: TaskContext) -> Row | None:
    """The build row behind the current lookup (newest by ``built_at``), or None."""
    if not ctx.tables.exists(t.CORRELATION_LOOKUP):
        return None
    rows = (
        ctx.tables.read(t.CORRELATION_LOOKUP_BUILDS)
        .orderBy(F.col("built_at").desc())
        .limit(1)
        .collect()
    )
    return rows[0] if rows else None


def overwrite(ctx: TaskContext, name: str, df: DataFrame) -> None:
    """Replace the table's rows in one Delta commit, keeping its definition."""
    ctx.tables.ensure(name)
    columns = [f.name for f in t.SPECS[name].schema.fields]
    df.select(*columns).write.format("delta").mode("overwrite").insertInto(ctx.tables.fqn(name))


def _values(
    lookup_rows: int, quarantined_rows: int, built: bool, run_date: dt.date
) -> dict[str, Any]:
    return {
        "lookup_rows": int(lookup_rows),
        "quarantined_rows": int(quarantined_rows),
        "built": built,
        "lookup_run_date": run_date.isoformat(),
    }


def run(ctx: TaskContext) -> dict[str, Any]:
    run_date = ctx.settings.effective_run_date()
    previous = current_build(ctx)
    if previous is not None and previous["run_date"] >= run_date:
        log.info(
            "correlation_lookup already built for %s (run date %s): not rebuilt",
            previous["run_date"],
            run_date,
        )
        return _values(
            previous["lookup_rows"], previous["quarantined_rows"], False, previous["run_date"]
        )

    psa, person, institution = [read_source(ctx, s) for s in SOURCE_SETTINGS]
    lookup, quarantine = rules.build(psa, person, institution, run_date)
    overwrite(ctx, t.CORRELATION_LOOKUP, lookup)
    crash_point(CrashPoint.IDENTITY_AFTER_LOOKUP)
    overwrite(ctx, t.DUPLICATE_CORRELATIONS, quarantine)
    lookup_rows = ctx.tables.read(t.CORRELATION_LOOKUP).count()
    quarantined_rows = ctx.tables.read(t.DUPLICATE_CORRELATIONS).count()
    built_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    ctx.tables.append(
        t.CORRELATION_LOOKUP_BUILDS,
        ctx.spark.createDataFrame(
            [(run_date, ctx.settings.run_id, lookup_rows, quarantined_rows, built_at)],
            t.LOOKUP_BUILDS_SCHEMA,
        ),
    )
    log.info(
        "correlation_lookup built for %s: %d lookup rows, %d quarantined correlations",
        run_date,
        lookup_rows,
        quarantined_rows,
    )
    return _values(lookup_rows, quarantined_rows, True, run_date)


main = entry_point("identity", run)

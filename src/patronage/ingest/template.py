"""The ingest template: what every source's ingest does around its own rules.

A stage describes its source in an :class:`IngestSpec` (header, row rules,
how valid rows become versions); :func:`run_ingest` does the rest, the same
for every source: take the run's files from the ledger, refuse unreadable
files, read the rows, stage the versions and the rejects (replacing an
earlier attempt's), record ``ingested``/``rejected`` ledger events and
return the published counts.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from patronage import reject_policy as policy
from patronage import tables as t
from patronage.faults import CrashPoint, crash_point
from patronage.ingest import csv_files as csv
from patronage.ingest.row_rules import REASON, RESOLVED, RULE, reject_rows
from patronage.phases import Phases
from patronage.repositories.ledger import FileEvent, LedgerStatus, RunFile
from patronage.repositories.rejects import RejectReason
from patronage.task import TaskContext

log = logging.getLogger(__name__)

#: Values every ingest publishes (SPEC task values; see PUBLISHES in the stages).
COMMON_PUBLISHES = (
    "files_read",
    "files_rejected",
    "raw_rows",
    "valid_rows",
    "rejected_rows",
    "rejected_by_reason",
    "staged_rows",
    policy.FILE_REJECTS,
    policy.REFUSED_FILES,
)
_COUNTS = ("raw_rows", "valid_rows", "rejected_rows", "staged_rows")
#: The count_rows kind of changes whose identity stayed unresolved.
_UNRESOLVED = "reject:" + RejectReason.IDENTITY_UNRESOLVED


@dataclasses.dataclass(frozen=True)
class IngestInputs:
    """What a source's versions are computed from."""

    ctx: TaskContext
    #: Rows that passed the row rules: the spec's cached columns, else every column.
    valid: DataFrame
    #: The source's active rows in patronage_unified (none in rebuild: merge resets it).
    active: DataFrame
    #: correlation_lookup (empty when identity never built it).
    lookup: DataFrame
    #: (file_order, _path, _file_ts) of the run's readable files.
    files: DataFrame
    rebuild: bool
    #: At least the number of ``valid`` rows (the lines read), or None when unknown.
    most_rows: int | None = None
    #: What the spec's ``early`` reads returned (None when it has none).
    early: Any = None
    #: Frames cached for this task (released when the ingest ends); see :meth:`keep`.
    cached: list[DataFrame] = dataclasses.field(default_factory=list)

    def keep(self, df: DataFrame) -> DataFrame:
        """Cache a small frame that several joins read, for the rest of the task."""
        return keep_in(self.cached, df)


def keep_in(cached: list[DataFrame], df: DataFrame) -> DataFrame:
    """Cache ``df`` and list it in ``cached``, the frames the ingest releases at its end."""
    kept = df.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(kept)
    return kept


@dataclasses.dataclass(frozen=True)
class IngestSpec:
    """What is special about one source."""

    source: str
    columns: tuple[str, ...]
    #: Parsed rows -> rows with ``_reason``/``_rule`` (null = valid) and target columns.
    validate: Callable[[DataFrame], DataFrame]
    #: Every change of the run: target columns, file_order and ``_resolved``.
    versions: Callable[[IngestInputs], DataFrame]
    #: Checked rows read besides the run's files (the CG seed on rebuild), or None.
    extra_rows: Callable[[TaskContext, bool], DataFrame | None] = lambda ctx, rebuild: None
    #: (versions, checked rows, run_id) -> rejects of the changes whose ``_resolved``
    #: is false; None for a source whose changes always resolve.
    unresolved_rejects: Callable[[DataFrame, DataFrame, str], DataFrame] | None = None
    #: file_order of extra rows whose staged count is published as seed_staged_rows.
    seed_order: int | None = None
    #: Reads the versions need that do not depend on the run's files (SCD: the PT
    #: sources); they run beside the ledger and file reads. (ctx, rebuild, keep) ->
    #: ``IngestInputs.early``; ``keep`` caches a frame for the rest of the task.
    early: Callable[[TaskContext, bool, Callable[[DataFrame], DataFrame]], Any] | None = None
    #: The checked rows' columns the versions read, besides file_order, row_number and
    #: ``_reason``: only these are cached. None caches every column. The rest (raw_row,
    #: the rule text, the file's path) is read again from the files for the rejects only.
    cached_columns: tuple[str, ...] | None = None


def target_active(tables: t.Tables, batch: str, rebuild: bool) -> DataFrame:
    """Active rows of one source in patronage_unified (none in rebuild: merge resets it)."""
    if rebuild:
        return tables.spark.createDataFrame([], t.TARGET_SCHEMA)
    return tables.read(t.PATRONAGE_UNIFIED).where(
        F.col("RecordStatus") & (F.col("Batch_CD") == batch)
    )


def count_rows(checked: DataFrame, versions: DataFrame) -> dict[int, dict[str, int]]:
    """Per file_order: valid, staged and rejects per reason (one Spark action).

    ``checked`` has one row per data line with ``_reason`` (null = valid);
    ``versions`` one row per change with ``_resolved`` (false = identity unresolved).
    """
    kinds = checked.select(
        csv.FILE_ORDER,
        F.when(F.col(REASON).isNull(), F.lit("valid"))
        .otherwise(F.concat(F.lit("reject:"), F.col(REASON)))
        .alias("kind"),
    ).unionByName(
        versions.select(
            csv.FILE_ORDER,
            F.when(F.col(RESOLVED), F.lit("staged")).otherwise(F.lit(_UNRESOLVED)).alias("kind"),
        )
    )
    out: dict[int, dict[str, int]] = {}
    for r in kinds.groupBy(csv.FILE_ORDER, "kind").count().collect():
        out.setdefault(int(r[csv.FILE_ORDER]), {})[r["kind"]] = int(r["count"])
    return out


def file_counts(per: dict[str, int]) -> dict[str, int]:
    rejected = sum(n for k, n in per.items() if k.startswith("reject:"))
    rule_rejected = rejected - per.get(_UNRESOLVED, 0)
    return {
        "raw_rows": per.get("valid", 0) + rule_rejected,
        "valid_rows": per.get("valid", 0),
        "rejected_rows": rejected,
        "staged_rows": per.get("staged", 0),
    }


def finish(
    ctx: TaskContext,
    spec: IngestSpec,
    accepted: Sequence[csv.AcceptedFile],
    refused: Sequence[tuple[RunFile, str]],
    checked: DataFrame,
    kept: DataFrame,
    versions: DataFrame,
    phases: Phases,
) -> dict[str, Any]:
    """Count, replace the run's staging and rejects, record ledger events, return values.

    ``checked``: every column of the checked rows; ``kept``: the cached columns of
    them (see :attr:`IngestSpec.cached_columns`), which the counts read.

    ``valid_rows`` counts rows that passed the row rules; ``rejected_rows`` counts
    every reject of the file, including changes whose identity stayed unresolved.
    """
    s = ctx.settings
    staged = versions.where(F.col(RESOLVED)).select(
        *t.TARGET_COLUMNS, F.lit(s.run_id).alias("run_id"), F.col(csv.FILE_ORDER).cast("int")
    )
    # The staging write computes the versions (and fills their cache): the counts
    # after it read the two cached frames, not the whole lineage once more.
    ctx.staging.replace_for_run(spec.source, s.run_id, staged)
    phases.lap("validate+versions+write staging")
    crash_point(CrashPoint(f"ingest_{spec.source.lower()}.after_staging"))
    counts = count_rows(kept, versions)
    phases.lap("count")
    rule_rejects = any(
        k.startswith("reject:") and k != _UNRESOLVED for c in counts.values() for k in c
    )
    # Without a rule reject, the files are not read again for none: the empty
    # frame still replaces what an earlier attempt of the run wrote.
    bad = checked.where(F.col(REASON).isNotNull() if rule_rejects else F.lit(False))
    rejects = reject_rows(bad, s.run_id, spec.source, F.col(REASON), F.col(RULE))
    if spec.unresolved_rejects is not None and any(_UNRESOLVED in c for c in counts.values()):
        rejects = rejects.unionByName(spec.unresolved_rejects(versions, checked, s.run_id))
    ctx.rejects.replace_for_run(s.run_id, spec.source, rejects.drop(csv.FILE_ORDER))
    phases.lap("write rejects")
    crash_point(CrashPoint(f"ingest_{spec.source.lower()}.after_rejects"))
    events = [
        FileEvent(
            a.file, LedgerStatus.INGESTED, None, file_counts(counts.get(a.file.file_order, {}))
        )
        for a in accepted
    ]  # fmt: skip
    events += [FileEvent(f, LedgerStatus.REJECTED, reason) for f, reason in refused]
    ctx.ledger.record_ingest(s.run_id, s.processing_mode, spec.source, events)
    phases.lap("ledger")
    crash_point(CrashPoint(f"ingest_{spec.source.lower()}.after_ledger"))

    by_reason: dict[str, int] = {}
    totals = dict.fromkeys(_COUNTS, 0)
    for per in counts.values():
        for k, n in per.items():
            if k.startswith("reject:"):
                code = k.removeprefix("reject:")
                by_reason[code] = by_reason.get(code, 0) + n
        for k, n in file_counts(per).items():
            totals[k] += n
    values: dict[str, Any] = {
        "files_read": len(accepted),
        "files_rejected": len(refused),
        **totals,
        "rejected_by_reason": dict(sorted(by_reason.items())),
    }
    if spec.seed_order is not None:
        values["seed_staged_rows"] = counts.get(spec.seed_order, {}).get("staged", 0)
    paths = {a.file.file_order: a.file.path for a in accepted}
    if spec.seed_order is not None:
        paths[spec.seed_order] = s.cg_seed_file
    values[policy.FILE_REJECTS] = policy.file_rejects(
        (paths[order], {**per, **file_counts(per)})
        for order, per in sorted(counts.items())
        if order in paths
    )
    values[policy.REFUSED_FILES] = policy.refused_files((f.path, why) for f, why in refused)
    log.info(
        "%s ingest: %d file(s) read, %d rejected; rows raw=%d valid=%d rejected=%d staged=%d",
        spec.source,
        values["files_read"],
        values["files_rejected"],
        *(totals[c] for c in _COUNTS),
    )
    return values


def republish(ctx: TaskContext, spec: IngestSpec) -> dict[str, Any]:
    """Values of an ingest whose run merge already committed: nothing is restaged."""
    run_id = ctx.settings.run_id
    log.warning("%s: run %s is already merged; staging left as it is", spec.source, run_id)
    events = ctx.ledger.ingest_outcomes(run_id, spec.source)
    ingested = [e for e in events if e["status"] == LedgerStatus.INGESTED]
    values: dict[str, Any] = {
        "files_read": len(ingested),
        "files_rejected": sum(1 for e in events if e["status"] == LedgerStatus.REJECTED),
        "raw_rows": sum(e["raw_rows"] or 0 for e in ingested),
        "valid_rows": sum(e["valid_rows"] or 0 for e in ingested),
        "rejected_rows": sum(e["rejected_rows"] or 0 for e in ingested),
        "rejected_by_reason": ctx.rejects.counts_by_reason(run_id, spec.source),
        "staged_rows": sum(e["staged_rows"] or 0 for e in ingested),
    }
    if spec.seed_order is not None:
        values["seed_staged_rows"] = 0
    by_file = ctx.rejects.counts_by_file(run_id, spec.source)
    values[policy.FILE_REJECTS] = policy.file_rejects(
        (
            e["path"],
            {"raw_rows": e["raw_rows"] or 0}
            | {f"reject:{code}": n for code, n in by_file.get(e["path"], {}).items()},
        )
        for e in ingested
    )
    values[policy.REFUSED_FILES] = policy.refused_files(
        (e["path"], e["reason"]) for e in events if e["status"] == LedgerStatus.REJECTED
    )
    return values


def read_state(
    ctx: TaskContext, spec: IngestSpec, rebuild: bool, keep: Callable[[DataFrame], DataFrame]
) -> tuple[DataFrame, DataFrame, Any]:
    """The source's active rows, the lookup and the spec's early reads.

    None of it depends on the run's files, so it is read beside them: each
    Delta table's snapshot is loaded (and the PT sources counted) while the
    task waits for the ledger and the files.
    """
    active = target_active(ctx.tables, spec.source, rebuild)
    lookup = ctx.tables.read(t.CORRELATION_LOOKUP)
    early = spec.early(ctx, rebuild, keep) if spec.early is not None else None
    return active, lookup, early


def run_ingest(ctx: TaskContext, spec: IngestSpec) -> dict[str, Any]:
    """The whole ingest of one source for the run; returns the values it publishes."""
    s = ctx.settings
    phases = Phases(ctx.task_key)
    rebuild = s.processing_mode == "rebuild"
    cached: list[DataFrame] = []
    kept = None
    versions = None
    try:
        # Leaving the block waits for the state reads, so nothing is cached after
        # the ``finally`` below has released the task's frames.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=ctx.task_key) as pool:
            state = pool.submit(read_state, ctx, spec, rebuild, functools.partial(keep_in, cached))
            files = ctx.ledger.run_files(s.run_id, spec.source)
            phases.lap("ledger")
            if files.already_merged:
                return republish(ctx, spec)
            reading = csv.read_files(ctx.spark, ctx.fs, files.files, spec.columns)
            accepted, refused = reading.accepted, reading.refused
            log.info("%s: %d file(s) to read, %d refused", spec.source, len(accepted), len(refused))
            phases.lap("read")

            checked = spec.validate(reading.rows)
            extra = spec.extra_rows(ctx, rebuild)
            if extra is not None:
                checked = extra.unionByName(checked)
            if spec.cached_columns is None:
                checked = kept = checked.persist(StorageLevel.MEMORY_AND_DISK)
            else:
                kept = checked.select(
                    csv.FILE_ORDER, csv.ROW_NUMBER, REASON, *spec.cached_columns
                ).persist(StorageLevel.MEMORY_AND_DISK)
            active, lookup, early = state.result()
            inputs = IngestInputs(
                ctx=ctx,
                valid=kept.where(F.col(REASON).isNull()),
                active=active,
                lookup=lookup,
                files=csv.files_frame(ctx.spark, [a.file for a in accepted]),
                rebuild=rebuild,
                most_rows=reading.line_count if extra is None else None,
                early=early,
                cached=cached,
            )
            versions = spec.versions(inputs).persist(StorageLevel.MEMORY_AND_DISK)
            return finish(ctx, spec, accepted, refused, checked, kept, versions, phases)
    finally:
        if kept is not None:
            kept.unpersist()
        if versions is not None:
            versions.unpersist()
        for df in cached:
            df.unpersist()
        phases.done()

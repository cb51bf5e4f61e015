"""Task ``merge``: apply the run's staged versions to patronage_unified (SPEC §8, §11).

One Delta MERGE per run expires the active rows and inserts every new version
(intermediate versions already expired), so expire and insert commit together.
The commit carries ``patronage-merge:<run_id>`` as userMetadata: a merge that
finds its marker in the target's history has already happened and leaves the
target alone (repairs and reruns are no-ops), but still completes the ledger.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from patronage import delta_log, scd2
from patronage import tables as t
from patronage.errors import RebuildNotConfirmed
from patronage.faults import CrashPoint, crash_point
from patronage.ingest.row_rules import NARROW_MAX_KEYS
from patronage.phases import Phases
from patronage.spark import USER_METADATA_CONF, session_conf
from patronage.task import STATUS_VALUE, TaskContext, entry_point

log = logging.getLogger(__name__)

TARGET = t.PATRONAGE_UNIFIED
BROADCAST_THRESHOLD_CONF = "spark.sql.autoBroadcastJoinThreshold"
SOURCES = (scd2.SCD, scd2.CG)
#: The ingest task of each source; its values say how many versions it staged.
INGEST_TASKS = {scd2.SCD: "ingest_scd", scd2.CG: "ingest_cg"}

PUBLISHES: tuple[str, ...] = (
    "new_scd",
    "new_cg",
    "updated_scd",
    "updated_cg",
    "expired_scd",
    "expired_cg",
    "unchanged_scd",
    "unchanged_cg",
    "active_scd",
    "active_cg",
    "staged_rows",
    "target_version",
    "merged",
    "superseded_files",
    "merged_files",
)


def merge_marker(run_id: str) -> str:
    return f"patronage-merge:{run_id}"


def already_merged(tables: t.Tables, run_id: str) -> bool:
    """True when the target's history holds this run's MERGE commit."""
    return delta_log.marked_commit(tables, TARGET, merge_marker(run_id)) is not None


def check_rebuild_confirmed(processing_mode: str, confirm_rebuild: str) -> None:
    if processing_mode == "rebuild" and confirm_rebuild != TARGET:
        raise RebuildNotConfirmed(
            f"processing_mode=rebuild drops {TARGET}: set confirm_rebuild={TARGET} to confirm"
        )


# --- the stage ---------------------------------------------------------------
def reset_target(ctx: TaskContext, run_id: str, mode: str) -> int:
    """Rebuild: mark merged files superseded, then drop and recreate the target."""
    tables = ctx.tables
    superseded = ctx.ledger.supersede_merged(run_id, mode, "rebuild")
    tables.drop(TARGET)
    tables.ensure(TARGET)
    log.warning("rebuild: %s reset; %d merged files marked superseded", TARGET, superseded)
    return superseded


def apply_merge(
    tables: t.Tables, planned: DataFrame, run_id: str, staged_rows: int
) -> dict[str, int]:
    """The single MERGE of the run, tagged with the run's marker; returns its metrics.

    A day of up to ``NARROW_MAX_KEYS`` versions is joined to the active target by
    broadcasting the run's keys, as Spark's size estimate of the staged rows
    decides. A larger day (a re-delivered population) is always shuffled: the
    estimate comes from compressed files and could broadcast millions of keys.
    """
    source = scd2.merge_source(planned)
    settings = {USER_METADATA_CONF: merge_marker(run_id)}
    if staged_rows > NARROW_MAX_KEYS:
        settings[BROADCAST_THRESHOLD_CONF] = "-1"
    with session_conf(tables.spark, settings):
        result = (
            tables.delta(TARGET).alias("t")
            .merge(source.alias("s"), scd2.merge_condition("t", "s"))
            .whenMatchedUpdate(set=scd2.expire_assignments("s"))
            .whenNotMatchedInsert(
                condition=F.col(f"s.{scd2.MERGE_KEY}").isNull(), values=scd2.insert_values("s")
            )
            .execute()
        )
    row = result.first() if result is not None else None
    return {k: int(v or 0) for k, v in (row.asDict() if row is not None else {}).items()}


def run_values(ctx: TaskContext) -> dict[str, dict[str, Any]]:
    """The run's task values; none when the run state cannot be read."""
    try:
        return ctx.state.get_all()
    except Exception:  # they only inform and size the join: merge does without them
        log.warning("run state unavailable; staged and unchanged row counts come from staging")
        return {}


def published_staged_rows(values: dict[str, dict[str, Any]]) -> int | None:
    """Versions the ingests say they staged, or None when one of them does not say.

    Only sizes the MERGE's join: the MERGE reads staging itself, so a stale
    value can cost time but never changes what is applied.
    """
    total = 0
    for task_key in INGEST_TASKS.values():
        v = values.get(task_key, {})
        if v.get(STATUS_VALUE) != "SUCCESS" or not isinstance(v.get("staged_rows"), int):
            return None
        total += v["staged_rows"]
    return total


def unchanged_rows(values: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Valid rows that produced no version, from the ingest tasks' values when present."""
    out: dict[str, int] = {}
    for source, task_key in INGEST_TASKS.items():
        v = values.get(task_key, {})
        if isinstance(v.get("unchanged_rows"), int):  # ingest knows it exactly, when it says
            out[f"unchanged_{source.lower()}"] = v["unchanged_rows"]
            continue
        # Estimate: PT-driven versions have no input row, so this may undercount.
        valid, staged = v.get("valid_rows"), v.get("staged_rows")
        if isinstance(valid, int) and isinstance(staged, int):
            out[f"unchanged_{source.lower()}"] = max(valid - staged, 0)
    return out


def plan_counts(planned: DataFrame) -> dict[str, dict[str, int]]:
    """scd2.plan_counts per Batch_CD, as plain numbers."""
    return {
        r["Batch_CD"]: {k: int(r[k] or 0) for k in scd2.PLAN_COUNTS}
        for r in scd2.plan_counts(planned).collect()
    }


def active_counts(tables: t.Tables, version: int | None = None) -> dict[str, int]:
    """Active rows per Batch_CD; the RecordStatus partition filter leaves the history unread."""
    return {
        r["Batch_CD"]: int(r["n"])
        for r in tables.read(TARGET, version)
        .where(F.col("RecordStatus"))
        .groupBy("Batch_CD")
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }


def active_after(before: dict[str, int], counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Active rows per Batch_CD after a MERGE that applied ``counts`` to ``before``.

    Every version is inserted and every expire hits one active row: a source
    gains its inserted rows and loses the expired ones (intermediate versions
    are inserted already expired; ``expires_active`` rows were active before).
    """
    out = dict(before)
    for batch, c in counts.items():
        out[batch] = out.get(batch, 0) + c["rows"] - c["expired"]
    return out


def layout_after(before: delta_log.Layout, metrics: dict[str, str]) -> delta_log.Layout:
    """The target's files after a MERGE, from its files before and the commit's metrics."""

    def n(key: str) -> int:
        return int(metrics.get(key) or 0)

    return delta_log.Layout(
        before.files + n("numTargetFilesAdded") - n("numTargetFilesRemoved"),
        before.bytes + n("numTargetBytesAdded") - n("numTargetBytesRemoved"),
    )


def layout_before(tables: t.Tables, before: delta_log.Commit) -> delta_log.Layout | None:
    """The target's files in the version ``before`` (read beside the MERGE), or None.

    ``DESCRIBE DETAIL`` reads the current version; it is that of ``before``
    only when its commit time is ``before``'s. Only compaction reads it, locally.
    """
    if not tables.local:
        return None
    layout = delta_log.layout(tables, TARGET)
    return layout if layout.modified == before.timestamp else None


def mark_merged(ctx: TaskContext, run_id: str, mode: str, ingested: list[Row]) -> int:
    merged_files = ctx.ledger.mark_merged(run_id, mode, ingested)
    crash_point(CrashPoint.MERGE_AFTER_LEDGER)
    return merged_files


def run(ctx: TaskContext) -> dict[str, Any]:
    s = ctx.settings
    tables = ctx.tables
    mode = s.processing_mode
    check_rebuild_confirmed(mode, s.confirm_rebuild)
    phases = Phases(ctx.task_key)
    lap = phases.lap

    # The bookkeeping reads other tables than the MERGE, or the target as it was
    # before it: it runs beside the MERGE, so the task waits for Delta's commits
    # and Spark's jobs once, not one after the other. After the MERGE only the
    # ledger's commit is left, and one history read that confirms the MERGE's
    # commit is the next one (merge is the target's only writer; when another
    # commit came between, what the MERGE changed is read again). Nothing runs
    # beside the MERGE's commit that commits itself (its marker is a session setting).
    with ThreadPoolExecutor(max_workers=5, thread_name_prefix="merge") as pool:
        reading = pool.submit(run_values, ctx)
        done_before = already_merged(tables, s.run_id)
        superseded = 0
        if mode == "rebuild" and not done_before:
            superseded = reset_target(ctx, s.run_id, mode)
        # Merge owns the target: it exists after every merge, even one with nothing to apply.
        tables.ensure(TARGET)
        before = delta_log.last_commit(tables, TARGET)
        layout_of = pool.submit(layout_before, tables, before)
        ingested = pool.submit(ctx.ledger.ingested_by, s.run_id)
        active_before = pool.submit(active_counts, tables, before.version)
        lap("check")
        # Not cached: the MERGE materializes its source itself, and a source read from
        # a cache is sized by its in-memory bytes, so the MERGE shuffles the whole active
        # target instead of broadcasting the run's keys (a day of ten files: 30 s).
        planned = scd2.plan_versions(ctx.staging.read_run(s.run_id))
        counting = pool.submit(plan_counts, planned)
        values_of_run = reading.result()
        expected_rows = published_staged_rows(values_of_run)
        if not expected_rows:  # unknown, or none to apply: staging decides
            expected_rows = sum(c["rows"] for c in counting.result().values())
        lap("plan")
        metrics: dict[str, int] | None = None  # set when this task ran the MERGE
        if done_before:
            log.info("run %s already merged into %s: target left unchanged", s.run_id, TARGET)
        elif expected_rows == 0:
            log.info("run %s staged no versions: no MERGE", s.run_id)
        else:
            metrics = apply_merge(tables, planned, s.run_id, expected_rows)
            crash_point(CrashPoint.MERGE_AFTER_COMMIT)
        lap("merge")
        marking = pool.submit(mark_merged, ctx, s.run_id, mode, ingested.result())
        counts = counting.result()
        staged_rows = sum(c["rows"] for c in counts.values())
        active = active_before.result()
        after = before
        if metrics is not None:
            expected = sum(c["expires_active"] for c in counts.values())
            updated = metrics.get("num_updated_rows", 0)
            inserted = metrics.get("num_inserted_rows", 0)
            after = delta_log.last_commit(tables, TARGET)
            next_commit = (
                after.version == before.version + 1
                and after.user_metadata == merge_marker(s.run_id)
            )
            if updated != expected or inserted != staged_rows:
                # Ingest said otherwise about which keys were active: the MERGE
                # still kept one active row per key; flag the difference loudly.
                log.warning(
                    "merge expired %d active rows (ingest expected %d), inserted %d of %d",
                    updated,
                    expected,
                    inserted,
                    staged_rows,
                )
            layout = layout_of.result()
            if next_commit and updated == expected and inserted == staged_rows:
                active = active_after(active, counts)
                layout = layout_after(layout, after.metrics) if layout is not None else None
            else:
                active, layout = active_counts(tables), None
            log.info("merged run %s: %d rows inserted, %d expired", s.run_id, inserted, updated)
            if updated + inserted > 0 and delta_log.compact_if_fragmented(tables, TARGET, layout):
                after = delta_log.last_commit(tables, TARGET)
        lap("counts+compact")
        merged_files = marking.result()
        lap("ledger")
    values: dict[str, Any] = {}
    for source in SOURCES:
        low = source.lower()
        row = counts.get(source)
        for name in ("new", "updated", "expired"):
            values[f"{name}_{low}"] = row[name] if row is not None else 0
        values[f"active_{low}"] = active.get(source, 0)
    values.update(unchanged_rows(values_of_run))
    phases.done()
    values.update(
        staged_rows=staged_rows,
        target_version=after.version,
        merged=not done_before,
        superseded_files=superseded,
        merged_files=merged_files,
    )
    log.info(
        "merge values: %s",
        {k: v for k, v in values.items() if isinstance(v, int | bool)},
    )
    return values


main = entry_point("merge", run)

"""The file ledger ``patronage_file_ledger``: the only code that reads or writes it.

Append-only events, one per (file, step): a file's identity is (path, size,
modification time) and its state is its latest event by ``recorded_at``.
Every step asks this module for that state (:meth:`FileLedger.latest`) and
records what it did through the typed event builders here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from pyspark.sql import DataFrame, Row, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from patronage import tables as t
from patronage.fs import FileInfo

log = logging.getLogger(__name__)


class LedgerStatus(StrEnum):
    DISCOVERED = "discovered"  # discover chose it for this run
    LATE = "late"  # at or before the window start and never merged: reported, not applied
    UNREADABLE = "unreadable"  # matched by name but could not be stat-ed
    INGESTED = "ingested"  # ingest read it (counts filled); not yet merged
    REJECTED = "rejected"  # the whole file was refused (bad header, cannot decode): final
    MERGED = "merged"  # its changes are in patronage_unified: final
    SUPERSEDED = "superseded"  # was merged, then a rebuild or restore reset the target


#: A file whose latest event has one of these is never processed again.
FINAL_STATUSES = frozenset({LedgerStatus.MERGED, LedgerStatus.REJECTED})
#: Events discover owns for its run; a re-run of discover replaces them.
DISCOVERY_STATUSES = (LedgerStatus.DISCOVERED, LedgerStatus.LATE, LedgerStatus.UNREADABLE)

#: The columns of a file's identity, and the identity as a value.
FILE_IDENTITY = ("path", "size", "modification_time")
FileKey = tuple[str, int, dt.datetime]

_TS_TEXT = "yyyy-MM-dd HH:mm:ss.SSSSSS"
_COUNTS = ("raw_rows", "valid_rows", "rejected_rows", "staged_rows")


def file_key(info: FileInfo) -> FileKey:
    """A listed file's identity for exactly-once: path, size and modification time."""
    return (info.path, info.size, info.modification_time)


@dataclasses.dataclass(frozen=True)
class RunFile:
    """One file the run's discover chose, as the ledger recorded it."""

    path: str
    file_name: str
    size: int | None
    modification_time: str  # "yyyy-MM-dd HH:mm:ss.SSSSSS" (UTC), kept as text: no TZ round trip
    file_order: int


@dataclasses.dataclass
class RunFiles:
    """The run's files for one source and what the ledger says about them."""

    files: list[RunFile]
    #: merge already committed this run: ingest must not restage anything.
    already_merged: bool = False
    #: files whose latest event is final and was written by another run.
    skipped: list[RunFile] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class FileEvent:
    """What an ingest did with one file: ``ingested`` with counts, or ``rejected`` with why."""

    file: RunFile
    status: LedgerStatus
    reason: str | None = None
    counts: Mapping[str, int] | None = None


def discovery_event(
    info: FileInfo,
    *,
    source: str,
    status: LedgerStatus,
    reason: str | None,
    order: int | None,
    run_id: str,
    mode: str,
    now: dt.datetime,
) -> tuple[Any, ...]:
    """One ledger row (in LEDGER_SCHEMA order) for a file discover listed."""
    return (
        info.path, info.name, source, info.size, info.modification_time, run_id, mode,
        str(status), reason, order, None, None, None, None, now,
    )  # fmt: skip


def latest_events(events: DataFrame) -> DataFrame:
    """The state of each file identity: its latest event by recorded_at."""
    w = Window.partitionBy(*FILE_IDENTITY).orderBy(F.col("recorded_at").desc())
    return events.withColumn("_rn", F.row_number().over(w)).where(F.col("_rn") == 1).drop("_rn")


def restamped(
    events: DataFrame,
    status: LedgerStatus,
    run_id: str,
    mode: str,
    reason: str | None,
    now: dt.datetime | None = None,
) -> DataFrame:
    """New events of this run for the same files: identity and counts copied."""
    at = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return (
        events.withColumn("status", F.lit(str(status)))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("processing_mode", F.lit(mode))
        .withColumn("reason", F.lit(reason).cast("string"))
        .withColumn("recorded_at", F.lit(at).cast("timestamp"))
        .select(*t.LEDGER_SCHEMA.fieldNames())
    )


class FileLedger:
    """Reads and appends ledger events in the product's schema."""

    def __init__(self, tables: t.Tables) -> None:
        self.tables = tables

    def events(self) -> DataFrame:
        return self.tables.read(t.FILE_LEDGER)

    def latest(self) -> DataFrame:
        return latest_events(self.events())

    def latest_status(self) -> dict[FileKey, str]:
        rows = self.latest().select(*FILE_IDENTITY, "status").collect()
        return {(r["path"], r["size"], r["modification_time"]): r["status"] for r in rows}

    def append(self, events: DataFrame) -> int:
        """Append events computed from the ledger itself; returns how many (one per file)."""
        rows = events.collect()  # small, and cuts the lineage to the table being appended to
        if rows:
            self.tables.append(
                t.FILE_LEDGER, self.tables.spark.createDataFrame(rows, t.LEDGER_SCHEMA)
            )
        return len(rows)

    def replace_discovery(self, run_id: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """A repeated discover of the run replaces what an earlier attempt recorded."""
        self.tables.delta(t.FILE_LEDGER).delete(
            (F.col("run_id") == run_id) & F.col("status").isin(*map(str, DISCOVERY_STATUSES))
        )
        if rows:
            df = self.tables.spark.createDataFrame(list(rows), t.LEDGER_SCHEMA)
            self.tables.append(t.FILE_LEDGER, df)

    def run_files(self, run_id: str, source: str) -> RunFiles:
        """This run's ``discovered`` files of ``source`` in file order.

        The latest event of each file tells whether another run finalised it,
        or merge already did this run.
        """
        rows = (
            self.events()
            .where(F.col("source") == source)
            .select(
                "path",
                "file_name",
                "size",
                "run_id",
                "status",
                "file_order",
                F.date_format("modification_time", _TS_TEXT).alias("mtime"),
                F.date_format("recorded_at", _TS_TEXT).alias("recorded"),
            )
            .collect()
        )
        discovered: dict[tuple[str, int | None, str], RunFile] = {}
        latest: dict[tuple[str, int | None, str], tuple[str, str]] = {}
        for r in sorted(rows, key=lambda r: r["recorded"] or ""):
            key = (r["path"], r["size"], r["mtime"])
            latest[key] = (r["status"], r["run_id"])
            if r["run_id"] == run_id and r["status"] == LedgerStatus.DISCOVERED:
                # A repeated discover of the same run: its newest event wins.
                discovered[key] = RunFile(
                    r["path"], r["file_name"], r["size"], r["mtime"], int(r["file_order"])
                )
        out = RunFiles(files=[])
        for key, f in sorted(discovered.items(), key=lambda kv: (kv[1].file_order, kv[1].path)):
            status, by_run = latest[key]
            if status == LedgerStatus.MERGED and by_run == run_id:
                out.already_merged = True
            if status in FINAL_STATUSES and by_run != run_id:
                out.skipped.append(f)
                log.warning(
                    "%s: %s was finalised by another run; not ingested", source, f.file_name
                )
                continue
            out.files.append(f)
        return out

    def record_ingest(
        self, run_id: str, mode: str, source: str, events: Iterable[FileEvent]
    ) -> None:
        """Append ``ingested``/``rejected`` events; timestamps made by Spark in UTC."""
        data = [
            (
                e.file.path,
                e.file.file_name,
                e.file.size,
                e.file.modification_time,
                str(e.status),
                e.reason,
                e.file.file_order,
                *((e.counts or {}).get(c) for c in _COUNTS),
            )
            for e in events
        ]
        if not data:
            return
        schema = T.StructType(
            [
                T.StructField("path", T.StringType()),
                T.StructField("file_name", T.StringType()),
                T.StructField("size", T.LongType()),
                T.StructField("mtime", T.StringType()),
                T.StructField("status", T.StringType()),
                T.StructField("reason", T.StringType()),
                T.StructField("file_order", T.IntegerType()),
                *[T.StructField(c, T.LongType()) for c in _COUNTS],
            ]
        )
        df = self.tables.spark.createDataFrame(data, schema).select(
            "path",
            "file_name",
            F.lit(source).alias("source"),
            "size",
            F.col("mtime").cast("timestamp").alias("modification_time"),
            F.lit(run_id).alias("run_id"),
            F.lit(mode).alias("processing_mode"),
            "status",
            "reason",
            "file_order",
            *_COUNTS,
            F.current_timestamp().alias("recorded_at"),
        )
        self.tables.append(t.FILE_LEDGER, df)

    def ingest_outcomes(self, run_id: str, source: str) -> list[Row]:
        """Latest ``ingested``/``rejected`` event per file of this run (for a no-op rerun)."""
        done = (str(LedgerStatus.INGESTED), str(LedgerStatus.REJECTED))
        rows = (
            self.events()
            .where(
                (F.col("source") == source)
                & (F.col("run_id") == run_id)
                & F.col("status").isin(*done)
            )
            .select("path", "status", "reason", *_COUNTS, "recorded_at")
            .collect()
        )
        latest: dict[str, Row] = {}
        for r in sorted(rows, key=lambda r: r["recorded_at"]):
            latest[r["path"]] = r
        return list(latest.values())

    def ingested_by(self, run_id: str) -> list[Row]:
        """This run's ingested files whose latest event is still that ``ingested`` event."""
        return self.latest().where(
            (F.col("status") == str(LedgerStatus.INGESTED)) & (F.col("run_id") == run_id)
        ).collect()

    def mark_merged(self, run_id: str, mode: str, ingested: list[Row] | None = None) -> int:
        """Record ``merged`` for the run's ingested files; returns how many.

        ``ingested``: what :meth:`ingested_by` returned, when the caller read it
        ahead (merge reads it beside its MERGE, and records after the commit).
        """
        rows = self.ingested_by(run_id) if ingested is None else ingested
        if not rows:
            return 0
        names = t.LEDGER_SCHEMA.fieldNames()
        mine = self.tables.spark.createDataFrame(
            [tuple(r[n] for n in names) for r in rows], t.LEDGER_SCHEMA
        )
        return self.append(restamped(mine, LedgerStatus.MERGED, run_id, mode, None))

    def ingested_runs(self) -> list[tuple[str, str]]:
        """(run_id, processing_mode) of runs with files whose latest event is ``ingested``."""
        rows = (
            self.latest()
            .where(F.col("status") == str(LedgerStatus.INGESTED))
            .select("run_id", "processing_mode")
            .distinct()
            .collect()
        )
        return sorted((str(r["run_id"]), str(r["processing_mode"])) for r in rows)

    def supersede_merged(
        self,
        run_id: str,
        mode: str,
        reason: str,
        newer_than: Mapping[str, dt.datetime] | None = None,
        now: dt.datetime | None = None,
        keep_counts: bool = True,
    ) -> int:
        """Mark merged files ``superseded`` so a later update run applies them again.

        ``newer_than`` (source -> modification time) keeps files at or before a
        restored state; a source absent from it supersedes all its merged files.
        Without it (rebuild) every merged file is superseded.
        """
        merged = self.latest().where(F.col("status") == str(LedgerStatus.MERGED))
        if newer_than:
            after = ~F.upper(F.col("source")).isin(*newer_than)
            for source, ts in newer_than.items():
                after = after | (
                    (F.upper(F.col("source")) == source) & (F.col("modification_time") > F.lit(ts))
                )
            merged = merged.where(after)
        events = restamped(merged, LedgerStatus.SUPERSEDED, run_id, mode, reason, now)
        if not keep_counts:
            events = events.withColumn("file_order", F.lit(None).cast("int"))
            for c in _COUNTS:
                events = events.withColumn(c, F.lit(None).cast("long"))
        return self.append(events)

    def newest_merged(self) -> dict[str, dt.datetime]:
        """Per source, the newest modification time of a file whose changes are merged."""
        rows = (
            self.events()
            .where(F.col("status") == str(LedgerStatus.MERGED))
            .groupBy(F.upper("source").alias("source"))
            .agg(F.max("modification_time").alias("newest"))
            .collect()
        )
        return {r["source"]: r["newest"] for r in rows if r["newest"] is not None}

    def event_counts_by_run(self, run_ids: list[str]) -> dict[str, dict[str, dict[str, int]]]:
        """``{run_id: {source: {status: files}}}``: the events each run recorded, one read.

        A file counts once per (run, status) even when a repeated attempt recorded it again.
        """
        if not run_ids:
            return {}
        rows = (
            self.events()
            .where(F.col("run_id").isin(*run_ids))
            .groupBy("run_id", F.upper("source").alias("source"), "status")
            .agg(F.countDistinct(*FILE_IDENTITY).alias("files"))
            .collect()
        )
        out: dict[str, dict[str, dict[str, int]]] = {}
        for r in rows:
            by_source = out.setdefault(r["run_id"], {}).setdefault(r["source"], {})
            by_source[r["status"]] = int(r["files"])
        return out

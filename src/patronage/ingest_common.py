"""What both ingest stages share: the run's files, CSV reading, rejects, ledger events.

Reading rules (SPEC §2.1/§2.2, decided here where the SPEC is silent):

- The header must hold exactly the expected column names, each once. Names are
  compared case-insensitively after trimming (and a UTF-8 BOM is ignored);
  column ORDER does not matter (fields are taken by name). A file with a missing,
  unexpected or repeated column, no header, or bytes that are not UTF-8 is
  rejected as a whole.
- One record per physical line (``\\n``, ``\\r\\n`` or ``\\r``); fields are
  RFC 4180 quoted (``""`` escapes a quote). Blank lines are skipped.
  ``row_number`` n is the n-th line after the header (line n+1 of the file).
- Field values are trimmed; an empty value is null. A line with more fields than
  the header is rejected as ``malformed_row``.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import logging
import re
from collections.abc import Iterable, Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from patronage import fs as fs_mod
from patronage import tables as t

log = logging.getLogger(__name__)

# Reason codes of patronage_rejects.
MISSING_KEY = "missing_key"
BAD_DATE = "bad_date"
BAD_PERCENT = "bad_percent"
IDENTITY_UNRESOLVED = "identity_unresolved"
MALFORMED_ROW = "malformed_row"
REASON_CODES = (MISSING_KEY, BAD_DATE, BAD_PERCENT, IDENTITY_UNRESOLVED, MALFORMED_ROW)

#: Columns every parsed row carries besides its source fields.
FILE_ORDER, PATH, FILE_TS, ROW_NUMBER, RAW_ROW, EXTRA = (
    "file_order",
    "_path",
    "_file_ts",
    "row_number",
    "raw_row",
    "_extra",
)

_LINE_BREAK = r"\r\n|\n|\r"
_TS_TEXT = "yyyy-MM-dd HH:mm:ss.SSSSSS"


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
class AcceptedFile:
    """A file whose header and encoding passed; ``header`` is canonical names in file order."""

    file: RunFile
    header: tuple[str, ...]


# --------------------------------------------------------------------------- ledger


def run_files(tables: t.Tables, run_id: str, source: str) -> RunFiles:
    """This run's ``discovered`` files of ``source`` in file order.

    One scan of the source's ledger events (a small table): the latest event of
    each file tells whether another run finalised it, or merge already did this run.
    """
    rows = (
        tables.read(t.FILE_LEDGER)
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
    discovered: dict[str, RunFile] = {}
    latest: dict[str, tuple[str, str, str]] = {}
    for r in sorted(rows, key=lambda r: r["recorded"] or ""):
        latest[r["path"]] = (r["status"], r["run_id"], r["recorded"])
        if r["run_id"] == run_id and r["status"] == "discovered":
            # A repeated discover of the same run: its newest event wins.
            discovered[r["path"]] = RunFile(
                r["path"], r["file_name"], r["size"], r["mtime"], int(r["file_order"])
            )
    out = RunFiles(files=[])
    for f in sorted(discovered.values(), key=lambda f: (f.file_order, f.path)):
        status, by_run, _ = latest[f.path]
        if status == "merged" and by_run == run_id:
            out.already_merged = True
        if status in t.LEDGER_FINAL_STATUSES and by_run != run_id:
            out.skipped.append(f)
            log.warning("%s: %s was finalised by another run; not ingested", source, f.file_name)
            continue
        out.files.append(f)
    return out


def ledger_events(
    spark: SparkSession,
    run_id: str,
    mode: str,
    source: str,
    events: Sequence[tuple[RunFile, str, str | None, dict[str, int] | None]],
) -> DataFrame:
    """Ledger rows for (file, status, reason, counts); timestamps made by Spark in UTC."""
    schema = T.StructType(
        [
            T.StructField("path", T.StringType()),
            T.StructField("file_name", T.StringType()),
            T.StructField("size", T.LongType()),
            T.StructField("mtime", T.StringType()),
            T.StructField("status", T.StringType()),
            T.StructField("reason", T.StringType()),
            T.StructField("file_order", T.IntegerType()),
            T.StructField("raw_rows", T.LongType()),
            T.StructField("valid_rows", T.LongType()),
            T.StructField("rejected_rows", T.LongType()),
            T.StructField("staged_rows", T.LongType()),
        ]
    )
    data = []
    for f, status, reason, counts in events:
        c = counts or {}
        data.append(
            (
                f.path,
                f.file_name,
                f.size,
                f.modification_time,
                status,
                reason,
                f.file_order,
                c.get("raw_rows"),
                c.get("valid_rows"),
                c.get("rejected_rows"),
                c.get("staged_rows"),
            )
        )
    return spark.createDataFrame(data, schema).select(
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
        "raw_rows",
        "valid_rows",
        "rejected_rows",
        "staged_rows",
        F.current_timestamp().alias("recorded_at"),
    )


def ingested_counts_from_ledger(tables: t.Tables, run_id: str, source: str) -> list:
    """Latest ``ingested``/``rejected`` event per file of this run (for a no-op rerun)."""
    ledger = tables.read(t.FILE_LEDGER).where(
        (F.col("source") == source)
        & (F.col("run_id") == run_id)
        & F.col("status").isin("ingested", "rejected")
    )
    rows = ledger.select(
        "path", "status", "raw_rows", "valid_rows", "rejected_rows", "staged_rows", "recorded_at"
    ).collect()
    latest: dict[str, object] = {}
    for r in sorted(rows, key=lambda r: r["recorded_at"]):
        latest[r["path"]] = r
    return list(latest.values())


# --------------------------------------------------------------------------- header


def check_header(
    header: Sequence[str], expected: Sequence[str]
) -> tuple[tuple[str, ...], str | None]:
    """Canonical names in the file's order, or a reason naming missing/unexpected columns."""
    canon = {c.lower(): c for c in expected}
    names = [h.strip().lstrip("\ufeff").strip() for h in header]
    seen: list[str] = []
    unexpected: list[str] = []
    repeated: list[str] = []
    for n in names:
        c = canon.get(n.lower())
        if c is None:
            unexpected.append(n)
        elif c in seen:
            repeated.append(c)
        else:
            seen.append(c)
    missing = [c for c in expected if c not in seen]
    problems = []
    if missing:
        problems.append("missing column(s) " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected column(s) " + ", ".join(repr(u) for u in unexpected))
    if repeated:
        problems.append("repeated column(s) " + ", ".join(repeated))
    return tuple(seen), ("; ".join(problems) if problems else None)


def inspect_file(data: bytes, expected: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """Decode strictly as UTF-8 and check the header; the reason if the file is refused."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(data, final=True)
    except UnicodeDecodeError as exc:
        return (), f"cannot be decoded as UTF-8 (invalid byte at offset {exc.start})"
    first = re.split(_LINE_BREAK, text, maxsplit=1)[0].lstrip("\ufeff")
    if not first.strip():
        return (), "has no header line"
    header = next(csv.reader([first]))
    return check_header(header, expected)


def accept_files(
    fs: fs_mod.FileSystem, files: Iterable[RunFile], expected: Sequence[str]
) -> tuple[list[AcceptedFile], list[tuple[RunFile, str]]]:
    """Split the run's files into readable ones and whole-file rejects (with reasons)."""
    accepted: list[AcceptedFile] = []
    refused: list[tuple[RunFile, str]] = []
    for f in files:
        header, problem = inspect_file(fs.read_bytes(f.path), expected)
        if problem is None:
            accepted.append(AcceptedFile(f, header))
        else:
            reason = f"file {f.path} rejected: {problem}"
            log.warning("whole file rejected: %s (%s)", f.file_name, problem)
            refused.append((f, reason))
    return accepted, refused


# --------------------------------------------------------------------------- rows


def read_rows(
    spark: SparkSession, files: Sequence[AcceptedFile], columns: Sequence[str]
) -> DataFrame:
    """All data lines of the files: file_order, _path, _file_ts, row_number, fields, raw_row.

    Fields are trimmed (empty -> null); raw_row is the JSON of the untrimmed fields.
    ``_extra`` is true when a line has more fields than the header.
    """
    if not files:
        return empty_rows(spark, columns)
    parts = []
    for af in files:
        f = af.file
        ddl = ", ".join(f"`{c}` STRING" for c in af.header) + f", `{EXTRA}` STRING"
        lines = spark.read.text(fs_mod.to_spark_path(f.path), wholetext=True).select(
            F.posexplode(F.split("value", _LINE_BREAK)).alias("pos", "line")
        )
        parsed = lines.where((F.col("pos") > 0) & (F.trim("line") != "")).select(
            F.lit(f.file_order).cast("int").alias(FILE_ORDER),
            F.lit(f.path).alias(PATH),
            F.lit(f.modification_time).cast("timestamp").alias(FILE_TS),
            F.col("pos").cast("long").alias(ROW_NUMBER),
            F.from_csv("line", ddl, {"escape": '"'}).alias("r"),
        )
        parts.append(parsed)
    rows = reduce(DataFrame.unionByName, parts)
    raw = F.to_json(
        F.struct(*[F.col(f"r.{c}").alias(c) for c in columns]), {"ignoreNullFields": "false"}
    )
    return rows.select(
        FILE_ORDER,
        PATH,
        FILE_TS,
        ROW_NUMBER,
        *[F.nullif(F.trim(F.col(f"r.{c}")), F.lit("")).alias(c) for c in columns],
        F.col(f"r.{EXTRA}").isNotNull().alias(EXTRA),
        raw.alias(RAW_ROW),
    )


def empty_rows(spark: SparkSession, columns: Sequence[str]) -> DataFrame:
    schema = T.StructType(
        [
            T.StructField(FILE_ORDER, T.IntegerType()),
            T.StructField(PATH, T.StringType()),
            T.StructField(FILE_TS, T.TimestampType()),
            T.StructField(ROW_NUMBER, T.LongType()),
            *[T.StructField(c, T.StringType()) for c in columns],
            T.StructField(EXTRA, T.BooleanType()),
            T.StructField(RAW_ROW, T.StringType()),
        ]
    )
    return spark.createDataFrame([], schema)


def first_failure(rules: Sequence[tuple[Column, str, str]]) -> tuple[Column, Column]:
    """(reason_code, rule text) of the first failing rule, null when the row is valid."""
    code: Column | None = None
    text: Column | None = None
    for failed, reason, rule in rules:
        code = (F.when if code is None else code.when)(failed, F.lit(reason))
        text = (F.when if text is None else text.when)(failed, F.lit(rule))
    assert code is not None and text is not None
    return code, text


def strict_date(value: Column, pattern: str, fmt: str) -> Column:
    """The date, or null when ``value`` does not match ``pattern`` or is no real date."""
    parsed = F.to_date(F.try_to_timestamp(value, F.lit(fmt)))
    return F.when(value.rlike(pattern), parsed)


def reject_rows(df: DataFrame, run_id: str, source: str, code: Column, rule: Column) -> DataFrame:
    """Rows for patronage_rejects (+ file_order); the message names file, row and rule.

    The message never holds field values: those are in ``raw_row`` only.
    """
    message = F.concat(
        F.lit("file "),
        F.col(PATH),
        F.lit(", row "),
        F.coalesce(F.col(ROW_NUMBER).cast("string"), F.lit("-")),
        F.lit(": "),
        rule,
    )
    return df.select(
        F.lit(run_id).alias("run_id"),
        F.lit(source).alias("source"),
        F.col(PATH).alias("file"),
        F.col(ROW_NUMBER).alias("row_number"),
        F.col(RAW_ROW).alias("raw_row"),
        code.alias("reason_code"),
        message.alias("message"),
        F.current_timestamp().alias("recorded_at"),
        F.col(FILE_ORDER),
    )


# --------------------------------------------------------------------------- writes


def ensure_table(tables: t.Tables, name: str) -> None:
    """Create a table both ingests share; tolerate the other one creating it first."""
    try:
        tables.ensure(name)
    except Exception:
        if not tables.exists(name):
            raise


def replace_run_rows(tables: t.Tables, name: str, df: DataFrame, **where: str) -> None:
    """Atomically replace the rows matching ``where`` (column = value, ANDed) with ``df``.

    INSERT ... REPLACE WHERE with parameter markers: one Delta commit, so a rerun of
    the task replaces what an earlier attempt wrote and never duplicates it.
    """
    ensure_table(tables, name)
    columns = [f.name for f in t.SPECS[name].schema.fields]
    predicate = " AND ".join(f"`{c}` = :{c}" for c in where)
    tables.spark.sql(
        f"INSERT INTO {tables.fqn(name)} REPLACE WHERE {predicate} SELECT * FROM {{rows}}",
        args=dict(where),
        rows=df.select(*columns),
    )


def target_active(tables: t.Tables, batch: str, rebuild: bool) -> DataFrame:
    """Active rows of one source in patronage_unified (none in rebuild: merge resets it)."""
    spark = tables.spark
    if rebuild or not tables.exists(t.PATRONAGE_UNIFIED):
        return spark.createDataFrame([], t.TARGET_SCHEMA)
    return tables.read(t.PATRONAGE_UNIFIED).where(
        F.col("RecordStatus") & (F.col("Batch_CD") == batch)
    )


def lookup(tables: t.Tables) -> DataFrame:
    """correlation_lookup (empty if identity never built it)."""
    if not tables.exists(t.CORRELATION_LOOKUP):
        return tables.spark.createDataFrame([], t.LOOKUP_SCHEMA)
    return tables.read(t.CORRELATION_LOOKUP)


def new_version_columns(change_log: Column, key_had_active_row: Column) -> list[Column]:
    """The bookkeeping columns of a staged version, as if it were the newest (BRIEF/SPEC §8).

    Merge expires all but a key's last version of the run; ingest stages every
    version active, stamped with its file's name and modification time.
    """
    return [
        F.col(FILE_TS).alias("SDP_Event_Created_Timestamp"),
        F.col(PATH).alias("filename"),
        F.to_date(F.col(FILE_TS)).alias("RecordLastUpdated"),
        F.lit(True).alias("RecordStatus"),
        F.lit(False).alias("sentToDoD"),
        change_log.alias("change_log"),
        F.when(key_had_active_row, "Updated Record")
        .otherwise("New Record")
        .alias("RecordChangeStatus"),
    ]


def yyyymmdd(d: Column) -> Column:
    return F.date_format(d, "yyyyMMdd")


# --------------------------------------------------------------------------- finish

#: Values both ingest stages publish (SPEC task values; see PUBLISHES in the stages).
COMMON_PUBLISHES = (
    "files_read",
    "files_rejected",
    "raw_rows",
    "valid_rows",
    "rejected_rows",
    "rejected_by_reason",
    "staged_rows",
)
REASON, RULE = "_reason", "_rule"
#: On change rows: false when the change has no ICN (rejected as identity_unresolved).
RESOLVED = "_resolved"


def count_rows(checked: DataFrame, versions: DataFrame) -> dict[int, dict[str, int]]:
    """Per file_order: valid, staged and rejects per reason (one Spark action).

    ``checked`` has one row per data line with ``_reason`` (null = valid);
    ``versions`` one row per change with ``_resolved`` (false = identity unresolved).
    """
    kinds = checked.select(
        FILE_ORDER,
        F.when(F.col(REASON).isNull(), F.lit("valid"))
        .otherwise(F.concat(F.lit("reject:"), F.col(REASON)))
        .alias("kind"),
    ).unionByName(
        versions.select(
            FILE_ORDER,
            F.when(F.col(RESOLVED), F.lit("staged"))
            .otherwise(F.lit("reject:" + IDENTITY_UNRESOLVED))
            .alias("kind"),
        )
    )
    out: dict[int, dict[str, int]] = {}
    for r in kinds.groupBy(FILE_ORDER, "kind").count().collect():
        out.setdefault(int(r[FILE_ORDER]), {})[r["kind"]] = int(r["count"])
    return out


def file_counts(per: dict[str, int]) -> dict[str, int]:
    rejected = sum(n for k, n in per.items() if k.startswith("reject:"))
    rule_rejected = rejected - per.get("reject:" + IDENTITY_UNRESOLVED, 0)
    return {
        "raw_rows": per.get("valid", 0) + rule_rejected,
        "valid_rows": per.get("valid", 0),
        "rejected_rows": rejected,
        "staged_rows": per.get("staged", 0),
    }


def finish(
    tables: t.Tables,
    *,
    run_id: str,
    mode: str,
    source: str,
    staging_table: str,
    accepted: Sequence[AcceptedFile],
    refused: Sequence[tuple[RunFile, str]],
    checked: DataFrame,
    versions: DataFrame,
    staged: DataFrame,
    late_rejects: DataFrame | None = None,
    seed_order: int | None = None,
) -> dict:
    """Count, replace the run's staging and rejects, record ledger events, return values.

    ``valid_rows`` counts rows that passed the row rules; ``rejected_rows`` counts
    every reject of the file, including changes whose identity stayed unresolved.
    """
    counts = count_rows(checked, versions)
    rule_rejects = reject_rows(
        checked.where(F.col(REASON).isNotNull()), run_id, source, F.col(REASON), F.col(RULE)
    )
    replace_run_rows(tables, staging_table, staged, run_id=run_id)
    all_rejects = rule_rejects if late_rejects is None else rule_rejects.unionByName(late_rejects)
    replace_run_rows(
        tables,
        t.REJECTS,
        all_rejects.drop(FILE_ORDER),
        run_id=run_id,
        source=source,
    )
    events: list[tuple[RunFile, str, str | None, dict[str, int] | None]] = []
    for af in accepted:
        events.append((af.file, "ingested", None, file_counts(counts.get(af.file.file_order, {}))))
    for f, reason in refused:
        events.append((f, "rejected", reason, None))
    if events:
        tables.append(t.FILE_LEDGER, ledger_events(tables.spark, run_id, mode, source, events))

    by_reason: dict[str, int] = {}
    totals = {"raw_rows": 0, "valid_rows": 0, "rejected_rows": 0, "staged_rows": 0}
    for per in counts.values():
        for k, n in per.items():
            if k.startswith("reject:"):
                code = k.removeprefix("reject:")
                by_reason[code] = by_reason.get(code, 0) + n
        for k, n in file_counts(per).items():
            totals[k] += n
    values = {
        "files_read": len(accepted),
        "files_rejected": len(refused),
        **totals,
        "rejected_by_reason": dict(sorted(by_reason.items())),
    }
    if seed_order is not None:
        values["seed_staged_rows"] = counts.get(seed_order, {}).get("staged", 0)
    log.info(
        "%s ingest: %d file(s) read, %d rejected; rows raw=%d valid=%d rejected=%d staged=%d",
        source,
        values["files_read"],
        values["files_rejected"],
        totals["raw_rows"],
        totals["valid_rows"],
        totals["rejected_rows"],
        totals["staged_rows"],
    )
    return values


def republish(tables: t.Tables, run_id: str, source: str) -> dict:
    """Values of an ingest whose run merge already committed: nothing is restaged."""
    log.warning("%s: run %s is already merged; staging left as it is", source, run_id)
    events = ingested_counts_from_ledger(tables, run_id, source)
    reasons = (
        tables.read(t.REJECTS)
        .where((F.col("run_id") == run_id) & (F.col("source") == source))
        .groupBy("reason_code")
        .count()
        .collect()
    )
    ingested = [e for e in events if e["status"] == "ingested"]
    return {
        "files_read": len(ingested),
        "files_rejected": sum(1 for e in events if e["status"] == "rejected"),
        "raw_rows": sum(e["raw_rows"] or 0 for e in ingested),
        "valid_rows": sum(e["valid_rows"] or 0 for e in ingested),
        "rejected_rows": sum(e["rejected_rows"] or 0 for e in ingested),
        "rejected_by_reason": {r["reason_code"]: int(r["count"]) for r in sorted(reasons)},
        "staged_rows": sum(e["staged_rows"] or 0 for e in ingested),
    }


def files_frame(spark: SparkSession, files: Sequence[RunFile]) -> DataFrame:
    """(file_order, _path, _file_ts) of the given files, for joins by file_order."""
    schema = "file_order INT, _path STRING, _mtime STRING"
    df = spark.createDataFrame([(f.file_order, f.path, f.modification_time) for f in files], schema)
    return df.select(FILE_ORDER, PATH, F.col("_mtime").cast("timestamp").alias(FILE_TS))

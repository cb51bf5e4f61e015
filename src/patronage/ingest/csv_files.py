"""Reading the inbound CSV files: header checks, strict decoding, one row per line.

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

import csv
import dataclasses
import logging
import re
from collections.abc import Iterable, Sequence
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from patronage import fs as fs_mod
from patronage.repositories.ledger import RunFile
from patronage.spark import local_frame
from patronage.sqlnames import quote_identifier

log = logging.getLogger(__name__)

#: Columns every parsed row carries besides its source fields.
FILE_ORDER, PATH, FILE_TS, ROW_NUMBER, RAW_ROW, EXTRA = (
    "file_order",
    "_path",
    "_file_ts",
    "row_number",
    "raw_row",
    "_extra",
)


@dataclasses.dataclass(frozen=True)
class AcceptedFile:
    """A file whose header and encoding passed; ``header`` is canonical names in file order."""

    file: RunFile
    header: tuple[str, ...]


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


#: How much of a file the driver reads: enough for any header line.
HEAD_BYTES = 64 * 1024
_BLOCK, _MID, _LINE = "_block", "_mid", "_line"


def inspect_file(head: bytes, expected: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
    """Check the header line from the file's first bytes; the reason if the file is refused.

    Only the header line is decoded here; every other line is checked for strict
    UTF-8 by Spark (:func:`read_files`), so no file is loaded on the driver.
    """
    brk = re.search(rb"\r|\n", head)
    if brk is None and len(head) >= HEAD_BYTES:
        return (), f"has no line break in its first {HEAD_BYTES} bytes"
    line = head[: brk.start()] if brk else head
    try:
        text = line.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        return (), f"cannot be decoded as UTF-8 (invalid byte at offset {exc.start})"
    first = text.lstrip("\ufeff")
    if not first.strip():
        return (), "has no header line"
    header = next(csv.reader([first]))
    return check_header(header, expected)


@dataclasses.dataclass
class Reading:
    """The run's files as read by Spark: readable files, refused ones and parsed rows."""

    accepted: list[AcceptedFile]
    refused: list[tuple[RunFile, str]]
    #: file_order, _path, _file_ts, row_number, fields, _extra, raw_row (see :func:`parse`).
    rows: DataFrame
    #: Lines of the accepted files, header and blank lines included: at least their rows.
    line_count: int = 0


def _refuse(f: RunFile, problem: str) -> tuple[RunFile, str]:
    log.warning("whole file rejected: %s (%s)", f.file_name, problem)
    return f, f"file {f.path} rejected: {problem}"


def read_files(
    spark: SparkSession,
    fs: fs_mod.FileSystem,
    files: Iterable[RunFile],
    columns: Sequence[str],
) -> Reading:
    """Read the files in parallel, as lines: header from the first bytes, then Spark.

    Each file is split by Spark like any text file. A line's number is its split's
    offset (the line counts of the file's earlier splits) plus its position in the
    split; one small aggregate gives both the counts and the first line that is not
    UTF-8, which refuses its whole file. The parse then reads the same splits
    again: Spark scans the text faster than it fills a cache of its lines (the
    stage caches the checked rows it builds from them).
    """
    heads: list[AcceptedFile] = []
    refused: list[tuple[RunFile, str]] = []
    for f in files:
        header, problem = inspect_file(fs.read_head(f.path, HEAD_BYTES), columns)
        if problem is None:
            heads.append(AcceptedFile(f, header))
        else:
            refused.append(_refuse(f, problem))
    if not heads:
        return Reading([], refused, empty_rows(spark, columns))

    lines = reduce(
        DataFrame.unionByName,
        [
            spark.read.text(fs_mod.to_spark_path(a.file.path)).select(
                F.lit(a.file.file_order).cast("int").alias(FILE_ORDER),
                F.col("_metadata.file_block_start").alias(_BLOCK),
                F.monotonically_increasing_id().alias(_MID),
                F.col("value").alias(_LINE),
            )
            for a in heads
        ],
    )
    splits = (
        lines.groupBy(FILE_ORDER, _BLOCK)
        .agg(
            F.min(_MID).alias("first"),
            F.count(F.lit(1)).alias("n"),
            F.min(F.when(~F.is_valid_utf8(_LINE), F.col(_MID))).alias("bad"),
        )
        .collect()
    )
    offsets: list[tuple[int, int, int, int]] = []
    bad_line: dict[int, int] = {}
    seen: dict[int, int] = {}
    for r in sorted(splits, key=lambda r: (r[FILE_ORDER], r[_BLOCK])):
        order = int(r[FILE_ORDER])
        before = seen.get(order, 0)
        offsets.append((order, int(r[_BLOCK]), int(r["first"]), before))
        if r["bad"] is not None and order not in bad_line:
            bad_line[order] = before + int(r["bad"]) - int(r["first"]) + 1
        seen[order] = before + int(r["n"])
    accepted = []
    for a in heads:
        line = bad_line.get(a.file.file_order)
        if line is None:
            accepted.append(a)
        else:
            problem = f"cannot be decoded as UTF-8 (invalid byte on line {line})"
            refused.append(_refuse(a.file, problem))
    rows = parse(spark, lines, offsets, accepted, columns)
    line_count = sum(seen.get(a.file.file_order, 0) for a in accepted)
    return Reading(accepted, refused, rows, line_count)


def parse(
    spark: SparkSession,
    lines: DataFrame,
    offsets: Sequence[tuple[int, int, int, int]],
    files: Sequence[AcceptedFile],
    columns: Sequence[str],
) -> DataFrame:
    """Data lines of the accepted files: file_order, _path, _file_ts, row_number, fields, raw_row.

    Fields are trimmed (empty -> null); raw_row is the JSON of the untrimmed fields.
    ``_extra`` is true when a line has more fields than the header. ``row_number``
    n is line n+1 of the file; blank lines keep their number but give no row.
    """
    if not files:
        return empty_rows(spark, columns)
    split_schema = f"{FILE_ORDER} INT, {_BLOCK} LONG, _first LONG, _before LONG"
    known = local_frame(spark, split_schema, offsets)
    meta = files_frame(spark, [a.file for a in files])
    numbered = lines.join(F.broadcast(known), [FILE_ORDER, _BLOCK]).join(
        F.broadcast(meta), FILE_ORDER
    )
    row_number = F.col("_before") + F.col(_MID) - F.col("_first")
    by_header: dict[tuple[str, ...], list[int]] = {}
    for a in files:
        by_header.setdefault(a.header, []).append(a.file.file_order)
    parts = []
    for header, orders in by_header.items():
        ddl = ", ".join(f"{quote_identifier(c)} STRING" for c in (*header, EXTRA))
        parts.append(
            numbered.where(
                F.col(FILE_ORDER).isin(orders) & (row_number > 0) & (F.trim(_LINE) != "")
            ).select(
                FILE_ORDER,
                PATH,
                FILE_TS,
                row_number.alias(ROW_NUMBER),
                F.from_csv(F.col(_LINE), ddl, {"escape": '"'}).alias("r"),
            )
        )
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


def files_frame(spark: SparkSession, files: Sequence[RunFile]) -> DataFrame:
    """(file_order, _path, _file_ts) of the given files, for joins by file_order."""
    schema = "file_order INT, _path STRING, _mtime STRING"
    df = local_frame(spark, schema, [(f.file_order, f.path, f.modification_time) for f in files])
    return df.select(FILE_ORDER, PATH, F.col("_mtime").cast("timestamp").alias(FILE_TS))

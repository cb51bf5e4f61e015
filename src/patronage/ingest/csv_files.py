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

import codecs
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

_LINE_BREAK = r"\r\n|\n|\r"


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
    for accepted in files:
        f = accepted.file
        ddl = ", ".join(f"{quote_identifier(c)} STRING" for c in (*accepted.header, EXTRA))
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


def files_frame(spark: SparkSession, files: Sequence[RunFile]) -> DataFrame:
    """(file_order, _path, _file_ts) of the given files, for joins by file_order."""
    schema = "file_order INT, _path STRING, _mtime STRING"
    df = spark.createDataFrame([(f.file_order, f.path, f.modification_time) for f in files], schema)
    return df.select(FILE_ORDER, PATH, F.col("_mtime").cast("timestamp").alias(FILE_TS))

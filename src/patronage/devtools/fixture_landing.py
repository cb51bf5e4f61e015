"""Land the bundled fixtures into a local state directory.

Checked-in files lose their modification times on clone, and discovery
(SPEC §5) orders and windows files by modification time. So landing copies the
inbound files and stamps each with the date (and optional time) in its name.
MVI sources are Parquet and PT sources are Delta tables upstream; the fixtures
keep them as CSV text, and landing converts them with the SPEC §2.3/§2.4
column names and types.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from patronage.errors import LandingError
from patronage.fs import FileSystem
from patronage.sqlnames import quote_identifier, string_literal

log = logging.getLogger(__name__)

MARKER = ".landed"
#: Modification time of a landed file whose name carries no date.
UNDATED_MTIME = dt.datetime(2024, 1, 1, 0, 0, 0)
#: Time of day of a file whose name has a date but no ``_HHmmss`` part.
DEFAULT_TIME = dt.time(6, 0, 0)
INBOUND_SOURCES = ("scd", "cg", "seed")
PT_SCHEMA_NAME = "patronage_sources"
PT_TABLES = ("pt_seed", "pt_delta")

_NAME_DATE = re.compile(r"_(\d{8})(?:_(\d{6}))?\.[^.]+$")

# --- SPEC §2.3 / §2.4 schemas ---------------------------------------------------
PT_SCHEMA = T.StructType(
    [
        T.StructField("PTCPNT_VET_ID", T.StringType(), True),
        T.StructField("PT_35_FLAG", T.StringType(), True),
    ]
)
MVI_SCHEMAS: dict[str, T.StructType] = {
    "psa": T.StructType(
        [
            T.StructField("MVIPersonICN", T.StringType(), True),
            T.StructField("MVITreatingFacilityInstitutionSID", T.IntegerType(), True),
            T.StructField("TreatingFacilityPersonIdentifier", T.StringType(), True),
            T.StructField("ActiveMergedIdentifier", T.StringType(), True),
            T.StructField("CorrelationModifiedDateTime", T.TimestampType(), True),
        ]
    ),
    "person": T.StructType(
        [
            T.StructField("MVIPersonICN", T.StringType(), True),
            T.StructField("ICNStatus", T.StringType(), True),
            T.StructField("calc_IngestionTimestamp", T.TimestampType(), True),
        ]
    ),
    "institution": T.StructType(
        [
            T.StructField("MVIInstitutionSID", T.IntegerType(), True),
            T.StructField("InstitutionCode", T.StringType(), True),
        ]
    ),
}


def mtime_from_name(name: str) -> dt.datetime:
    """UTC modification time encoded in ``..._yyyyMMdd[_HHmmss].ext``.

    Names without a date get :data:`UNDATED_MTIME` so landing stays repeatable.
    """
    m = _NAME_DATE.search(name)
    if not m:
        return UNDATED_MTIME
    day = dt.datetime.strptime(m.group(1), "%Y%m%d").date()
    tod = dt.datetime.strptime(m.group(2), "%H%M%S").time() if m.group(2) else DEFAULT_TIME
    return dt.datetime.combine(day, tod)


def land_fixtures(fixtures_dir: Path, state_dir: Path, spark: SparkSession) -> None:
    """Land every fixture source under ``<state_dir>/landing`` once.

    The marker file makes a second call a no-op (apart from registering the PT
    tables in a new Spark session, which costs no data work).
    """
    fixtures_dir, state_dir = Path(fixtures_dir), Path(state_dir)
    landing = state_dir / "landing"
    marker = landing / MARKER
    if marker.exists():
        register_pt_tables(spark, state_dir)
        log.info("fixtures already landed in %s", landing)
        return
    if not fixtures_dir.is_dir():
        raise LandingError(f"fixtures directory does not exist: {fixtures_dir}")
    for source in INBOUND_SOURCES:
        src = fixtures_dir / source
        if src.is_dir():
            copy_inbound(sorted(p for p in src.iterdir() if p.is_file()), landing / source)
    land_mvi(fixtures_dir / "mvi", state_dir, spark)
    pt_dir = fixtures_dir / "pt"
    for name in PT_TABLES:
        write_pt_table(spark, state_dir, name, read_csv_rows(pt_dir / f"{name}.csv", PT_SCHEMA),
                       mode="overwrite")
    marker.write_text("fixtures\n")
    log.info("landed fixtures from %s into %s", fixtures_dir, landing)


def land_later(fixtures_dir: Path, state_dir: Path, spark: SparkSession) -> None:
    """Second phase of the fixture story (fixtures/README.md, "later").

    Adds the later inbound files, appends the later PT delta rows and replaces
    the MVI sources with ``fixtures/mvi_later``. Idempotent via its own marker.
    """
    fixtures_dir, state_dir = Path(fixtures_dir), Path(state_dir)
    marker = state_dir / "landing" / ".landed_later"
    if marker.exists():
        return
    later = fixtures_dir / "later"
    for source in INBOUND_SOURCES:
        src = later / source
        if src.is_dir():
            copy_inbound(sorted(p for p in src.iterdir() if p.is_file()),
                         state_dir / "landing" / source)
    append_csv = later / "pt" / "pt_delta_append.csv"
    if append_csv.exists():
        write_pt_table(spark, state_dir, "pt_delta", read_csv_rows(append_csv, PT_SCHEMA),
                       mode="append")
    land_mvi(fixtures_dir / "mvi_later", state_dir, spark)
    marker.write_text("later\n")
    log.info("landed later fixtures into %s", state_dir / "landing")


def copy_inbound(files: Iterable[Path], dest: Path) -> int:
    """Copy files into ``dest`` and stamp each with the time in its name."""
    fs = FileSystem()
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for src in files:
        target = dest / src.name
        shutil.copyfile(src, target)
        fs.set_mtime(str(target), mtime_from_name(src.name))
        count += 1
    log.info("landed %d files into %s", count, dest)
    return count


def land_mvi(mvi_dir: Path, state_dir: Path, spark: SparkSession) -> None:
    """(Re)write ``<state_dir>/landing/mvi/{psa,person,institution}`` as Parquet."""
    mvi_dir = Path(mvi_dir)
    for name, schema in MVI_SCHEMAS.items():
        rows = read_csv_rows(mvi_dir / f"{name}.csv", schema)
        out = Path(state_dir) / "landing" / "mvi" / name
        spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet(
            out.resolve().as_posix()
        )
        log.info("wrote MVI %s parquet (%d rows)", name, len(rows))


def read_csv_rows(path: Path, schema: T.StructType) -> list[tuple[Any, ...]]:
    """Typed rows of a fixture CSV whose header must be exactly the schema's columns."""
    if not path.exists():
        raise LandingError(f"fixture file is missing: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        expected = [f.name for f in schema.fields]
        if header != expected:
            raise LandingError(f"{path}: header must be {','.join(expected)}")
        return [
            tuple(_convert(v, f.dataType, path, i, f.name) for v, f in zip(row, schema.fields,
                                                                          strict=True))
            for i, row in enumerate(reader, start=2)
        ]


def _convert(raw: str, dtype: T.DataType, path: Path, line: int, column: str) -> Any:
    if raw == "":
        return None
    try:
        if isinstance(dtype, T.IntegerType | T.LongType):
            return int(raw)
        if isinstance(dtype, T.TimestampType):
            # Aware UTC datetimes: PySpark converts naive ones with the Python
            # process time zone, which need not be UTC.
            return dt.datetime.fromisoformat(raw).replace(tzinfo=dt.UTC)
    except ValueError:
        raise LandingError(f"{path}, line {line}: bad value in column {column}") from None
    return raw


# --- PT tables (SPEC §2.3) ----------------------------------------------------
def pt_location(state_dir: Path, name: str) -> Path:
    return (Path(state_dir) / "warehouse" / PT_SCHEMA_NAME / name).resolve()


def pt_fqn(name: str) -> str:
    return quote_identifier("spark_catalog", PT_SCHEMA_NAME, name)


def create_delta_table(
    spark: SparkSession, schema_name: str, name: str, columns: T.StructType, location: Path
) -> str:
    """(Re)register ``spark_catalog.<schema>.<name>`` as an external Delta table at ``location``.

    Any table of that name is unregistered first (it may point at another state
    directory used by the same session); files elsewhere are left alone.
    """
    fqn = quote_identifier("spark_catalog", schema_name, name)
    spark.sql(
        f"CREATE SCHEMA IF NOT EXISTS {quote_identifier('spark_catalog', schema_name)}"
        f" LOCATION {string_literal(location.parent.as_posix())}"
    )
    spark.sql(f"DROP TABLE IF EXISTS {fqn}")
    # DDL from declared column names and a configured path; no data values.
    cols = ", ".join(f"{quote_identifier(c.name)} {c.dataType.simpleString()}" for c in columns)
    where = string_literal(location.as_posix())
    spark.sql(f"CREATE TABLE {fqn} ({cols}) USING DELTA LOCATION {where}")
    _REGISTERED[(_session_key(spark), name)] = location
    return fqn


#: Where this process registered each source table, per Spark application.
_REGISTERED: dict[tuple[str, str], Path] = {}


def _session_key(spark: SparkSession) -> str:
    return spark.sparkContext.applicationId


def _own_warehouse(spark: SparkSession, location: Path) -> bool:
    """True when ``location`` lies in the session's warehouse (registered at start-up)."""
    from patronage import spark as spark_mod

    return spark_mod.warehouse_dir(spark).resolve() == location.parent.parent


def register_pt_tables(spark: SparkSession, state_dir: Path) -> None:
    """Point the PT table names at this state directory's Delta tables, when present.

    Cheap when nothing changes (no Spark job): a name already registered at this
    location, by us or by the session's start-up scan of its own warehouse, stays.
    """
    for name in PT_TABLES:
        loc = pt_location(state_dir, name)
        if not (loc / "_delta_log").is_dir():
            continue
        if spark.catalog.tableExists(f"spark_catalog.{PT_SCHEMA_NAME}.{name}"):
            known = _REGISTERED.get((_session_key(spark), name))
            if known == loc or (known is None and _own_warehouse(spark, loc)):
                continue
        create_delta_table(spark, PT_SCHEMA_NAME, name, PT_SCHEMA, loc)


def write_pt_table(
    spark: SparkSession, state_dir: Path, name: str, rows: Sequence[tuple[Any, ...]], mode: str
) -> str:
    """Create from scratch (``overwrite``) or append to one PT Delta table."""
    fqn = write_pt_df(spark, state_dir, name, spark.createDataFrame(list(rows), PT_SCHEMA), mode)
    log.info("wrote %d rows to PT table %s (%s)", len(rows), name, mode)
    return fqn


def write_pt_df(
    spark: SparkSession, state_dir: Path, name: str, df: DataFrame, mode: str
) -> str:
    """Write a PT DataFrame (``PTCPNT_VET_ID``, ``PT_35_FLAG``) to its Delta table.

    Data goes to the path, so an append never lands in a same-named table of
    another state directory.
    """
    loc = pt_location(state_dir, name)
    if mode == "overwrite":
        shutil.rmtree(loc, ignore_errors=True)
        create_delta_table(spark, PT_SCHEMA_NAME, name, PT_SCHEMA, loc)
    elif mode != "append":
        raise ValueError(f"mode must be overwrite or append, got {mode!r}")
    df.select(*PT_SCHEMA.fieldNames()).coalesce(1).write.format("delta").mode("append").save(
        loc.as_posix()
    )
    if mode == "append":
        register_pt_tables(spark, state_dir)
    return pt_fqn(name)

"""One way to get a SparkSession, on Databricks and on a laptop.

On Databricks the runtime owns the session and we only borrow it. Locally we
build ``local[*]`` Spark with Delta, UTC, few shuffle partitions and no UI, and
keep the local warehouse under the state directory. The local catalog is
in-memory, so on start every Delta table already under the warehouse is
registered again: tables survive between processes like a metastore would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from patronage.sqlnames import quote_identifier, string_literal

log = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOCAL_FLAG = "spark.patronage.local"
WAREHOUSE_CONF = "spark.sql.warehouse.dir"
#: Delta writes this setting's value as the userMetadata of the session's commits.
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


@contextlib.contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Spark settings for the commands inside the block only, then as they were."""
    before: dict[str, str | None] = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, old in before.items():
            if old is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, old)


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def _cache_dir() -> Path:
    """Where Spark's Ivy keeps the Delta jars (never committed)."""
    env = os.environ.get("PATRONAGE_JAR_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "patronage" / "ivy"


def get_spark(state_dir: str | os.PathLike[str] | None = None) -> SparkSession:
    """Return the active session, or build the local Delta session.

    ``state_dir`` only matters for the first local call: it fixes where the
    warehouse lives (``<state_dir>/warehouse``).
    """

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    return _build_local(Path(state_dir or os.environ.get("PATRONAGE_STATE_DIR", ".patronage")))


def _build_local(state_dir: Path) -> SparkSession:
    from delta import configure_spark_with_delta_pip

    warehouse = (state_dir / "warehouse").resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    tmp = (state_dir / "tmp").resolve()
    tmp.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master(os.environ.get("PATRONAGE_SPARK_MASTER", "local[*]"))
        .appName("patronage-local")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config(
            "spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", os.environ.get("PATRONAGE_SHUFFLE_PARTITIONS", "2"))
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.databricks.delta.properties.defaults.checkpointInterval", "50")
        .config("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")
        .config("spark.driver.memory", os.environ.get("PATRONAGE_DRIVER_MEMORY", "4g"))
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone=UTC -Djava.io.tmpdir={tmp}")
        .config("spark.local.dir", str(tmp))
        .config("spark.jars.ivy", str(_cache_dir()))
        .config(WAREHOUSE_CONF, str(warehouse))
        .config(LOCAL_FLAG, "true")
    )
    spark = configure_spark_with_delta_pip(builder).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    register_local_tables(spark)
    return spark


def is_local(spark: SparkSession) -> bool:
    return bool(spark.conf.get(LOCAL_FLAG, "false") == "true")


def warehouse_dir(spark: SparkSession) -> Path:
    raw = str(spark.conf.get(WAREHOUSE_CONF))
    return Path(raw.removeprefix("file:"))


def register_local_tables(spark: SparkSession) -> int:
    """Re-register every Delta table found under the local warehouse.

    Layout is ``<warehouse>/<schema>/<table>/_delta_log``; returns the count.
    """
    root = warehouse_dir(spark)
    count = 0
    if not root.exists():
        return 0
    for schema_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if not _IDENT.match(schema_dir.name):
            continue
        spark.sql(
            f"CREATE SCHEMA IF NOT EXISTS {quote_identifier('spark_catalog', schema_dir.name)}"
            f" LOCATION {string_literal(schema_dir.as_posix())}"
        )
        for table_dir in sorted(p for p in schema_dir.iterdir() if p.is_dir()):
            if _IDENT.match(table_dir.name) and (table_dir / "_delta_log").is_dir():
                # Names and paths come from the warehouse layout, not from data.
                name = quote_identifier("spark_catalog", schema_dir.name, table_dir.name)
                where = string_literal(table_dir.as_posix())
                spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION {where}")
                count += 1
    log.debug("registered %d local Delta tables", count)
    return count


#: Most rows :func:`local_frame` sends as parameter markers; more go through an RDD.
LOCAL_FRAME_MAX_ROWS = 500


def local_frame(
    spark: SparkSession, schema: T.StructType | str, rows: Sequence[Sequence[Any]]
) -> DataFrame:
    """A few driver-side rows as a local relation, typed by ``schema`` (a struct or DDL).

    A frame made from a Python list is an RDD: every join that broadcasts it
    runs a Spark job to collect it again. ``VALUES`` with parameter markers (the
    values never enter the SQL text) is a local relation, which Spark
    broadcasts and joins without a job.
    """
    if isinstance(schema, str):
        parsed = T.StructType.fromDDL(schema)
        assert isinstance(parsed, T.StructType)
        schema = parsed
    if not rows or len(rows) > LOCAL_FRAME_MAX_ROWS:
        return spark.createDataFrame([tuple(r) for r in rows], schema)
    names = schema.fieldNames()
    args: dict[str, Any] = {}
    tuples = []
    for i, row in enumerate(rows):
        marks = []
        for j, value in enumerate(row):
            args[f"v{i}_{j}"] = value
            marks.append(f":v{i}_{j}")
        tuples.append("(" + ", ".join(marks) + ")")
    alias = ", ".join(quote_identifier(n) for n in names)
    df = spark.sql(f"SELECT * FROM VALUES {', '.join(tuples)} AS t({alias})", args=args)
    return df.select(*[df[quote_identifier(f.name)].cast(f.dataType).alias(f.name) for f in schema])

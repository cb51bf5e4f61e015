"""Table names, schemas and creation: one place for every Delta table we own.

On Databricks tables are Unity Catalog (or hive_metastore) managed tables
named ``catalog.schema.table``. Locally they are external Delta tables under
``<warehouse>/<schema>/<table>`` so that they survive the process (see
:mod:`patronage.spark`). Stages ask :class:`Tables` for names and never build
locations themselves. Reading a table never creates it (a missing table reads
as empty with its declared schema); writers create it through the DeltaTable
builder. The bookkeeping tables are reached through
:mod:`patronage.repositories`, one module per table.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from patronage import spark as spark_mod
from patronage.sqlnames import quote_identifier, string_literal

if TYPE_CHECKING:
    from delta.tables import DeltaTable

log = logging.getLogger(__name__)

STRING, TIMESTAMP, DATE, BOOLEAN, LONG, INT = (
    T.StringType(),
    T.TimestampType(),
    T.DateType(),
    T.BooleanType(),
    T.LongType(),
    T.IntegerType(),
)


def _schema(*cols: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(n, t, True) for n, t in cols])


# --- SPEC §4: the target ---------------------------------------------------
PATRONAGE_UNIFIED = "patronage_unified"
TARGET_SCHEMA = _schema(
    ("edipi", STRING),
    ("ICN", STRING),
    ("Veteran_ICN", STRING),
    ("participant_id", STRING),
    ("Batch_CD", STRING),
    ("Applicant_Type", STRING),
    ("Caregiver_Status", STRING),
    ("SC_Combined_Disability_Percentage", STRING),
    ("PT_Indicator", STRING),
    ("Individual_Unemployability", STRING),
    ("Status_Begin_Date", STRING),
    ("Status_Last_Update", STRING),
    ("Status_Termination_Date", STRING),
    ("SDP_Event_Created_Timestamp", TIMESTAMP),
    ("filename", STRING),
    ("RecordLastUpdated", DATE),
    ("RecordStatus", BOOLEAN),
    ("sentToDoD", BOOLEAN),
    ("change_log", STRING),
    ("RecordChangeStatus", STRING),
)
TARGET_COLUMNS = [f.name for f in TARGET_SCHEMA.fields]

# --- SPEC §3: identity -----------------------------------------------------
CORRELATION_LOOKUP = "correlation_lookup"
LOOKUP_SCHEMA = _schema(
    ("MVIPersonICN", STRING),
    ("participant_id", STRING),
    ("edipi", STRING),
    ("va_profile_id", STRING),
    ("ICNStatus", STRING),
    ("Last_Modified_Date", TIMESTAMP),
)
DUPLICATE_CORRELATIONS = "duplicate_correlations"
DUPLICATES_SCHEMA = _schema(
    ("MVIPersonICN", STRING),
    ("InstitutionCode", STRING),
    ("TreatingFacilityPersonIdentifier", STRING),
    ("CorrelationModifiedDateTime", TIMESTAMP),
    ("ambiguity", STRING),
    ("run_date", DATE),
)
#: One row per build of the lookup: the identity stage skips a second build per day.
CORRELATION_LOOKUP_BUILDS = "correlation_lookup_builds"
LOOKUP_BUILDS_SCHEMA = _schema(
    ("run_date", DATE),
    ("run_id", STRING),
    ("lookup_rows", LONG),
    ("quarantined_rows", LONG),
    ("built_at", TIMESTAMP),
)

# --- SPEC §5: discovery ledger (append-only events; latest event wins) -----
FILE_LEDGER = "patronage_file_ledger"
LEDGER_SCHEMA = _schema(
    ("path", STRING),
    ("file_name", STRING),
    ("source", STRING),
    ("size", LONG),
    ("modification_time", TIMESTAMP),
    ("run_id", STRING),
    ("processing_mode", STRING),
    ("status", STRING),
    ("reason", STRING),
    ("file_order", INT),
    ("raw_rows", LONG),
    ("valid_rows", LONG),
    ("rejected_rows", LONG),
    ("staged_rows", LONG),
    ("recorded_at", TIMESTAMP),
)
# Statuses and their meaning: patronage.repositories.ledger.LedgerStatus.

# --- rejects / quarantine of bad rows --------------------------------------
REJECTS = "patronage_rejects"
REJECTS_SCHEMA = _schema(
    ("run_id", STRING),
    ("source", STRING),
    ("file", STRING),
    ("row_number", LONG),
    ("raw_row", STRING),
    ("reason_code", STRING),
    ("message", STRING),
    ("recorded_at", TIMESTAMP),
)

# --- staging between ingest and merge --------------------------------------
STAGING_SCD = "patronage_staging_scd"
STAGING_CG = "patronage_staging_cg"
STAGING_SCHEMA = T.StructType(
    TARGET_SCHEMA.fields
    + [
        T.StructField("run_id", STRING, True),
        T.StructField("file_order", INT, True),
    ]
)

# --- SPEC §9, §10 ------------------------------------------------------------
DMDC_CHECKPOINT = "dmdc_checkpoint"
CHECKPOINT_SCHEMA = _schema(
    ("checkpoint_timestamp", TIMESTAMP),
    ("filename", STRING),
    ("record_count", LONG),
    ("generate_query", STRING),
    ("file_sha256", STRING),
    ("run_id", STRING),
    ("created_at", TIMESTAMP),
)
PIPELINE_LOG = "patronage_pipeline_log"
PIPELINE_LOG_SCHEMA = _schema(
    ("run_id", STRING),
    ("run_timestamp_utc", TIMESTAMP),
    ("processing_mode", STRING),
    ("status", STRING),
    ("error_message", STRING),
    ("duration_seconds", T.DoubleType()),
    ("patronage_table_detail", STRING),
    ("identity_correlation_detail", STRING),
    ("file_discovery_detail", STRING),
    ("records_processed_detail", STRING),
    ("scheduled_tasks_detail", STRING),
    ("input_watermarks", STRING),
    ("output_row_counts_by_batch", STRING),
    ("dmdc_export_stats", STRING),
    ("edipi_backfill_stats", STRING),
    ("backup_stats", STRING),
)

# --- run state (ARCHITECTURE: task values) ---------------------------------
TASK_VALUES = "patronage_task_values"
TASK_VALUES_SCHEMA = _schema(
    ("run_id", STRING),
    ("task_key", STRING),
    ("name", STRING),
    ("value_json", STRING),
    ("recorded_at", TIMESTAMP),
)


@dataclass(frozen=True)
class TableSpec:
    schema: T.StructType
    cluster_by: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()


_RUN_STATS = (("delta.dataSkippingStatsColumns", "run_id"),)

#: Every table this product creates. Partitioning only where parallel tasks
#: write disjoint parts (so their Delta commits never conflict), or where the
#: daily path reads one small part of a large table.
SPECS: dict[str, TableSpec] = {
    # Partitioned by RecordStatus and Batch_CD (four parts): the MERGE, the counts
    # and the exports read active rows only, so the history (which grows every
    # day) is pruned, and the caregivers' few active rows are read without the
    # millions of SCD ones. Deletion vectors: MERGE marks expired rows instead of
    # rewriting whole files. Together the daily cost follows the day's changes
    # and the active population, not the history (patronage bench).
    PATRONAGE_UNIFIED: TableSpec(
        TARGET_SCHEMA,
        partition_by=("RecordStatus", "Batch_CD"),
        properties=(("delta.enableDeletionVectors", "true"),),
    ),
    CORRELATION_LOOKUP: TableSpec(LOOKUP_SCHEMA),
    DUPLICATE_CORRELATIONS: TableSpec(DUPLICATES_SCHEMA),
    CORRELATION_LOOKUP_BUILDS: TableSpec(LOOKUP_BUILDS_SCHEMA),
    FILE_LEDGER: TableSpec(LEDGER_SCHEMA),
    # Read only by run (and source, the partition): file statistics on run_id
    # alone, so a write does not collect min/max/null counts of every column.
    REJECTS: TableSpec(REJECTS_SCHEMA, partition_by=("source",), properties=_RUN_STATS),
    STAGING_SCD: TableSpec(STAGING_SCHEMA, properties=_RUN_STATS),
    STAGING_CG: TableSpec(STAGING_SCHEMA, properties=_RUN_STATS),
    DMDC_CHECKPOINT: TableSpec(CHECKPOINT_SCHEMA),
    PIPELINE_LOG: TableSpec(PIPELINE_LOG_SCHEMA),
    TASK_VALUES: TableSpec(TASK_VALUES_SCHEMA),
}


class Tables:
    """Names and life cycle of the product's tables in one catalog/schema.

    Reads never create: a table that does not exist yet reads as empty with
    its declared schema. Writers (``append``, ``replace_where``, ``delta``)
    create it first, through the DeltaTable builder.
    """

    def __init__(self, spark: SparkSession, catalog: str, schema: str) -> None:
        self.spark = spark
        self.catalog = catalog
        self.schema = schema
        self._local = spark_mod.is_local(spark)

    def fqn(self, name: str) -> str:
        """Fully qualified, quoted name for SQL and ``spark.table``."""
        return quote_identifier(self.catalog, self.schema, name)

    def location(self, name: str) -> str | None:
        """Local only: where the external table's files live."""
        if not self._local:
            return None
        return (spark_mod.warehouse_dir(self.spark) / self.schema / name).as_posix()

    def exists(self, name: str) -> bool:
        return bool(self.spark.catalog.tableExists(f"{self.catalog}.{self.schema}.{name}"))

    def ensure_schema(self) -> None:
        ddl = f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(self.catalog, self.schema)}"
        if self._local:
            where = (spark_mod.warehouse_dir(self.spark) / self.schema).as_posix()
            ddl += f" LOCATION {string_literal(where)}"
        self.spark.sql(ddl)

    def _builder_name(self, name: str) -> str:
        # Delta OSS's builder takes at most schema.table; locally the catalog is
        # the session catalog, on Databricks the builder takes all three parts.
        if self._local:
            return quote_identifier(self.schema, name)
        return self.fqn(name)

    def ensure(self, name: str) -> None:
        """Create the table with its declared schema if it does not exist."""
        if self.exists(name):
            return
        from delta.tables import DeltaTable

        spec = SPECS[name]
        self.ensure_schema()
        builder = (
            DeltaTable.createIfNotExists(self.spark)
            .tableName(self._builder_name(name))
            .addColumns(spec.schema)
        )
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        if spec.cluster_by:
            builder = builder.clusterBy(*spec.cluster_by)
        location = self.location(name)
        if location is not None:
            builder = builder.location(location)
        for key, value in spec.properties:
            builder = builder.property(key, value)
        try:
            builder.execute()
        except AnalysisException:
            # Another task created it between our check and our create.
            if not self.exists(name):
                raise
        log.info("created table %s", name)

    @property
    def local(self) -> bool:
        """True on local Spark, where nothing compacts the tables but the job itself."""
        return self._local

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """The table's contents (at ``version``, else current); empty if it does not exist."""
        if not self.exists(name):
            return self.spark.createDataFrame([], SPECS[name].schema)
        if version is None:
            return self.spark.table(self.fqn(name))
        return self.spark.read.option("versionAsOf", version).table(self.fqn(name))

    def delta(self, name: str) -> DeltaTable:
        """The table for DeltaTable operations (created first: callers write to it)."""
        from delta.tables import DeltaTable

        self.ensure(name)
        return DeltaTable.forName(self.spark, self.fqn(name))

    def append(self, name: str, df: DataFrame) -> None:
        self.ensure(name)
        df.select(*SPECS[name].schema.fieldNames()).write.format("delta").mode(
            "append"
        ).saveAsTable(self.fqn(name))

    def replace_where(self, name: str, df: DataFrame, **where: str) -> None:
        """Atomically replace the rows matching ``where`` (column = value, ANDed) with ``df``.

        INSERT ... REPLACE WHERE with parameter markers: one Delta commit, so a rerun
        replaces what an earlier attempt wrote and never duplicates it.
        """
        self.ensure(name)
        predicate = " AND ".join(f"{quote_identifier(c)} = :{c}" for c in where)
        self.spark.sql(
            f"INSERT INTO {self.fqn(name)} REPLACE WHERE {predicate} SELECT * FROM {{rows}}",
            args=dict(where),
            rows=df.select(*SPECS[name].schema.fieldNames()),
        )

    def drop(self, name: str) -> None:
        """Drop the table and its files (destructive: callers confirm first)."""
        location = self.location(name)
        self.spark.sql(f"DROP TABLE IF EXISTS {self.fqn(name)}")
        if location is not None:
            shutil.rmtree(location, ignore_errors=True)
        log.warning("dropped table %s", name)

    def version(self, name: str) -> int:
        """Current Delta table version (-1 when the table does not exist)."""
        if not self.exists(name):
            return -1
        hist = self.delta(name).history(1).select("version").collect()
        return int(hist[0][0]) if hist else -1

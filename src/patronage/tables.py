"""Table names, schemas and creation: one place for every Delta table we own.

On Databricks tables are Unity Catalog (or hive_metastore) managed tables
named ``catalog.schema.table``. Locally they are external Delta tables under
``<warehouse>/<schema>/<table>`` so that they survive the process (see
:mod:`patronage.spark`). Stages ask :class:`Tables` for names and never build
locations themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from patronage import spark as spark_mod

log = logging.getLogger(__name__)

S, TS, D, B, L, INT = (
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
    ("edipi", S),
    ("ICN", S),
    ("Veteran_ICN", S),
    ("participant_id", S),
    ("Batch_CD", S),
    ("Applicant_Type", S),
    ("Caregiver_Status", S),
    ("SC_Combined_Disability_Percentage", S),
    ("PT_Indicator", S),
    ("Individual_Unemployability", S),
    ("Status_Begin_Date", S),
    ("Status_Last_Update", S),
    ("Status_Termination_Date", S),
    ("SDP_Event_Created_Timestamp", TS),
    ("filename", S),
    ("RecordLastUpdated", D),
    ("RecordStatus", B),
    ("sentToDoD", B),
    ("change_log", S),
    ("RecordChangeStatus", S),
)
TARGET_COLUMNS = [f.name for f in TARGET_SCHEMA.fields]

# --- SPEC §3: identity -----------------------------------------------------
CORRELATION_LOOKUP = "correlation_lookup"
LOOKUP_SCHEMA = _schema(
    ("MVIPersonICN", S),
    ("participant_id", S),
    ("edipi", S),
    ("va_profile_id", S),
    ("ICNStatus", S),
    ("Last_Modified_Date", TS),
)
DUPLICATE_CORRELATIONS = "duplicate_correlations"
DUPLICATES_SCHEMA = _schema(
    ("MVIPersonICN", S),
    ("InstitutionCode", S),
    ("TreatingFacilityPersonIdentifier", S),
    ("CorrelationModifiedDateTime", TS),
    ("ambiguity", S),
    ("run_date", D),
)
#: One row per build of the lookup: the identity stage skips a second build per day.
CORRELATION_LOOKUP_BUILDS = "correlation_lookup_builds"
LOOKUP_BUILDS_SCHEMA = _schema(
    ("run_date", D),
    ("run_id", S),
    ("lookup_rows", L),
    ("quarantined_rows", L),
    ("built_at", TS),
)

# --- SPEC §5: discovery ledger (append-only events; latest event wins) -----
FILE_LEDGER = "patronage_file_ledger"
LEDGER_SCHEMA = _schema(
    ("path", S),
    ("file_name", S),
    ("source", S),
    ("size", L),
    ("modification_time", TS),
    ("run_id", S),
    ("processing_mode", S),
    ("status", S),
    ("reason", S),
    ("file_order", INT),
    ("raw_rows", L),
    ("valid_rows", L),
    ("rejected_rows", L),
    ("staged_rows", L),
    ("recorded_at", TS),
)
LEDGER_STATUSES = (
    "discovered",  # discover chose it for this run
    "late",  # at or before the window start and never merged: reported, not applied
    "unreadable",  # matched by name but could not be stat-ed
    "ingested",  # ingest read it (counts filled); not yet merged
    "rejected",  # the whole file was refused (bad header, cannot decode): final
    "merged",  # its changes are in patronage_unified: final
    "superseded",  # was merged, then a rebuild reset the target
)
#: A file whose latest event has one of these is never processed again.
LEDGER_FINAL_STATUSES = ("merged", "rejected")

# --- rejects / quarantine of bad rows --------------------------------------
REJECTS = "patronage_rejects"
REJECTS_SCHEMA = _schema(
    ("run_id", S),
    ("source", S),
    ("file", S),
    ("row_number", L),
    ("raw_row", S),
    ("reason_code", S),
    ("message", S),
    ("recorded_at", TS),
)

# --- staging between ingest and merge --------------------------------------
STAGING_SCD = "patronage_staging_scd"
STAGING_CG = "patronage_staging_cg"
STAGING_SCHEMA = T.StructType(
    TARGET_SCHEMA.fields
    + [
        T.StructField("run_id", S, True),
        T.StructField("file_order", INT, True),
    ]
)

# --- SPEC §9, §10 ------------------------------------------------------------
DMDC_CHECKPOINT = "dmdc_checkpoint"
CHECKPOINT_SCHEMA = _schema(
    ("checkpoint_timestamp", TS),
    ("filename", S),
    ("record_count", L),
    ("generate_query", S),
    ("file_sha256", S),
    ("run_id", S),
    ("created_at", TS),
)
PIPELINE_LOG = "patronage_pipeline_log"
PIPELINE_LOG_SCHEMA = _schema(
    ("run_id", S),
    ("run_timestamp_utc", TS),
    ("processing_mode", S),
    ("status", S),
    ("error_message", S),
    ("duration_seconds", T.DoubleType()),
    ("patronage_table_detail", S),
    ("identity_correlation_detail", S),
    ("file_discovery_detail", S),
    ("records_processed_detail", S),
    ("scheduled_tasks_detail", S),
    ("input_watermarks", S),
    ("output_row_counts_by_batch", S),
    ("dmdc_export_stats", S),
    ("edipi_backfill_stats", S),
    ("backup_stats", S),
)

# --- run state (ARCHITECTURE: task values) ---------------------------------
TASK_VALUES = "patronage_task_values"
TASK_VALUES_SCHEMA = _schema(
    ("run_id", S),
    ("task_key", S),
    ("name", S),
    ("value_json", S),
    ("recorded_at", TS),
)


@dataclass(frozen=True)
class TableSpec:
    schema: T.StructType
    cluster_by: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()


#: Every table this product creates. Partitioning only where parallel tasks
#: write disjoint parts (so their Delta commits never conflict).
SPECS: dict[str, TableSpec] = {
    # Deletion vectors: MERGE marks expired rows instead of rewriting whole files,
    # so the daily cost follows the day's changes, not the history (patronage bench).
    PATRONAGE_UNIFIED: TableSpec(
        TARGET_SCHEMA, cluster_by=("ICN",), properties=(("delta.enableDeletionVectors", "true"),)
    ),
    CORRELATION_LOOKUP: TableSpec(LOOKUP_SCHEMA),
    DUPLICATE_CORRELATIONS: TableSpec(DUPLICATES_SCHEMA),
    CORRELATION_LOOKUP_BUILDS: TableSpec(LOOKUP_BUILDS_SCHEMA),
    FILE_LEDGER: TableSpec(LEDGER_SCHEMA),
    REJECTS: TableSpec(REJECTS_SCHEMA, partition_by=("source",)),
    STAGING_SCD: TableSpec(STAGING_SCHEMA),
    STAGING_CG: TableSpec(STAGING_SCHEMA),
    DMDC_CHECKPOINT: TableSpec(CHECKPOINT_SCHEMA),
    PIPELINE_LOG: TableSpec(PIPELINE_LOG_SCHEMA),
    TASK_VALUES: TableSpec(TASK_VALUES_SCHEMA),
}


class Tables:
    """Names and life cycle of the product's tables in one catalog/schema."""

    def __init__(self, spark: SparkSession, catalog: str, schema: str) -> None:
        self.spark = spark
        self.catalog = catalog
        self.schema = schema
        self._local = spark_mod.is_local(spark)

    def fqn(self, name: str) -> str:
        """Fully qualified, quoted name for SQL and ``spark.table``."""
        return f"`{self.catalog}`.`{self.schema}`.`{name}`"

    def location(self, name: str) -> str | None:
        """Local only: where the external table's files live."""
        if not self._local:
            return None
        return (spark_mod.warehouse_dir(self.spark) / self.schema / name).as_posix()

    def exists(self, name: str) -> bool:
        return self.spark.catalog.tableExists(f"{self.catalog}.{self.schema}.{name}")

    def ensure_schema(self) -> None:
        ddl = f"CREATE SCHEMA IF NOT EXISTS `{self.catalog}`.`{self.schema}`"
        if self._local:
            ddl += f" LOCATION '{(spark_mod.warehouse_dir(self.spark) / self.schema).as_posix()}'"
        self.spark.sql(ddl)

    def ensure(self, name: str) -> None:
        """Create the table with its declared schema if it does not exist."""
        if self.exists(name):
            return
        spec = SPECS[name]
        self.ensure_schema()
        # DDL from our own declared schema and names; no data values involved.
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.schema.fields)
        ddl = f"CREATE TABLE IF NOT EXISTS {self.fqn(name)} ({columns}) USING DELTA"
        if spec.partition_by:
            ddl += " PARTITIONED BY (" + ", ".join(f"`{c}`" for c in spec.partition_by) + ")"
        if spec.cluster_by:
            ddl += " CLUSTER BY (" + ", ".join(f"`{c}`" for c in spec.cluster_by) + ")"
        loc = self.location(name)
        if loc is not None:
            ddl += f" LOCATION '{loc}'"
        if spec.properties:
            props = ", ".join(f"'{k}' = '{v}'" for k, v in spec.properties)
            ddl += f" TBLPROPERTIES ({props})"
        self.spark.sql(ddl)
        log.info("created table %s", name)

    def read(self, name: str) -> DataFrame:
        """The table's current contents (created empty if absent)."""
        self.ensure(name)
        return self.spark.table(self.fqn(name))

    def delta(self, name: str):
        from delta.tables import DeltaTable

        self.ensure(name)
        return DeltaTable.forName(self.spark, self.fqn(name))

    def append(self, name: str, df: DataFrame) -> None:
        self.ensure(name)
        df.select(*[f.name for f in SPECS[name].schema.fields]).write.format("delta").mode(
            "append"
        ).saveAsTable(self.fqn(name))

    def drop(self, name: str) -> None:
        """Drop the table and its files (destructive: callers confirm first)."""
        loc = self.location(name)
        self.spark.sql(f"DROP TABLE IF EXISTS {self.fqn(name)}")
        if loc is not None:
            import shutil

            shutil.rmtree(loc, ignore_errors=True)
        log.warning("dropped table %s", name)

    def version(self, name: str) -> int:
        """Current Delta table version."""
        hist = self.delta(name).history(1).select("version").collect()
        return int(hist[0][0]) if hist else -1

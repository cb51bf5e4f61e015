"""The operators' schema: views over the run log and the checkpoint, refreshed by finalize."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from conftest import task_argv
from patronage import ops_views
from patronage import tables as t
from patronage.errors import ConfigError
from patronage.stages import finalize
from patronage.task import run_stage

pytestmark = pytest.mark.spark

OK = {"task_status": "SUCCESS", "task_duration_seconds": 1.0}
CHECKPOINT = dt.datetime(2026, 12, 2, 6, 30)

#: The runbook's checks on these two tables (sections 1.3, 1.5, 3.3 and 3.6), verbatim.
RUNBOOK_QUERIES = {
    "last checkpoint": "SELECT max(checkpoint_timestamp) AS last_checkpoint, count(*) AS "
                       "total_rows FROM dmdc_checkpoint",
    "last run": "SELECT count(*) AS total_rows, max(run_timestamp_utc) AS last_run "
                "FROM patronage_pipeline_log",
    "checkpoints": "SELECT * FROM dmdc_checkpoint ORDER BY checkpoint_timestamp DESC LIMIT 10",
    "log rows": "SELECT * FROM patronage_pipeline_log ORDER BY run_timestamp_utc DESC LIMIT 5",
}


@pytest.fixture(scope="module")
def product(spark, tmp_path_factory):
    """A product schema after two finalize runs (the second a rerun) with ops_schema set."""
    from patronage.repositories.task_values import RunState
    from patronage.tables import Tables

    tables = Tables(spark, "spark_catalog", "ops_" + uuid.uuid4().hex[:10])
    tables.ensure_schema()
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(
        [(CHECKPOINT, "PATRONAGE_20261202.txt", 5, "q", "h", "r1", CHECKPOINT)],
        t.CHECKPOINT_SCHEMA))
    tables.ensure(t.PATRONAGE_UNIFIED)
    ops = tables.schema + "_ops"
    base = tmp_path_factory.mktemp("ops")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finalize, "PIPELINE_TASKS", ("discover",))
        state = RunState(tables, "3001")
        state.publish("discover", {**OK, "run_date": "2026-12-02", "processing_mode": "update"})
        argv = task_argv(tables.schema, base, run_id="3001", run_date="2026-12-02",
                         ops_schema=ops)
        for _ in range(2):
            run_stage("finalize", finalize.run, argv, spark=spark)
    return tables, ops


def _names(spark, schema: str) -> dict[str, str]:
    return {tb.name: tb.tableType for tb in spark.catalog.listTables(schema)}


def test_finalize_creates_a_view_per_operator_table_and_nothing_else(spark, product):
    tables, ops = product
    assert _names(spark, ops) == {t.PIPELINE_LOG: "VIEW", t.DMDC_CHECKPOINT: "VIEW"}
    for name in ops_views.OPS_TABLES:
        view = spark.table(f"spark_catalog.{ops}.{name}")
        assert view.schema.fieldNames() == t.SPECS[name].schema.fieldNames()


def test_the_views_answer_the_runbook_queries_as_the_tables_do(spark, product):
    tables, ops = product
    answers = {}
    for schema in (tables.schema, ops):
        spark.catalog.setCurrentDatabase(schema)
        answers[schema] = {k: spark.sql(q).collect() for k, q in RUNBOOK_QUERIES.items()}
    assert answers[ops] == answers[tables.schema]
    assert answers[ops]["last checkpoint"][0]["last_checkpoint"] == CHECKPOINT
    assert answers[ops]["last run"][0]["total_rows"] == 1  # the rerun replaced its row
    assert [r["status"] for r in answers[ops]["log rows"]] == ["SUCCESS"]


def test_refreshing_again_is_idempotent_and_follows_new_rows(spark, product):
    tables, ops = product
    assert ops_views.refresh(tables, ops) == list(ops_views.OPS_TABLES)
    later = CHECKPOINT + dt.timedelta(days=2)
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(
        [(later, "PATRONAGE_20261204.txt", 2, "q", "h", "r2", later)], t.CHECKPOINT_SCHEMA))

    ops_views.refresh(tables, ops)

    assert _names(spark, ops) == {t.PIPELINE_LOG: "VIEW", t.DMDC_CHECKPOINT: "VIEW"}
    rows = spark.table(f"spark_catalog.{ops}.{t.DMDC_CHECKPOINT}").collect()
    assert sorted(r["checkpoint_timestamp"] for r in rows) == [CHECKPOINT, later]


def test_the_operators_schema_cannot_be_the_product_schema(product):
    tables, _ = product
    with pytest.raises(ConfigError, match="'ops_schema' must name a schema other than"):
        ops_views.refresh(tables, tables.schema)


def test_a_view_lists_declared_columns_from_quoted_names(product):
    tables, ops = product
    ddl = ops_views.view_ddl(tables, ops, t.DMDC_CHECKPOINT)
    assert ddl.startswith(f"CREATE OR REPLACE VIEW `spark_catalog`.`{ops}`.`dmdc_checkpoint`")
    assert ddl.endswith(f"FROM `spark_catalog`.`{tables.schema}`.`dmdc_checkpoint`")
    assert "`checkpoint_timestamp`, `filename`, `record_count`" in ddl

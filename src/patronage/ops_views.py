"""The operators' views: the run log and the DMDC checkpoint, and nothing with identifiers.

The product schema holds personal identifiers (the target, the lookup, the
rejects' raw rows) and is readable by the engineers only. Operators read a
schema of their own (setting ``ops_schema``) that holds one view per table
they may see, under the table's own name, so the runbook's queries run there
unchanged. The views list the tables' declared columns; a Unity Catalog view
is read with its owner's rights (the pipeline's principal), so operators need
no grant on the product schema. Finalize (re)creates them on every run;
``CREATE OR REPLACE VIEW`` makes that idempotent.
"""

from __future__ import annotations

import logging

from patronage import spark as spark_mod
from patronage import tables as t
from patronage.errors import ConfigError
from patronage.sqlnames import quote_identifier, string_literal

log = logging.getLogger(__name__)

#: The tables operators read (no personal identifiers), each exposed as a view.
OPS_TABLES = (t.PIPELINE_LOG, t.DMDC_CHECKPOINT)


def view_ddl(tables: t.Tables, ops_schema: str, name: str) -> str:
    """``CREATE OR REPLACE VIEW`` of one table: names and declared columns only."""
    columns = ", ".join(quote_identifier(c) for c in t.SPECS[name].schema.fieldNames())
    view = quote_identifier(tables.catalog, ops_schema, name)
    comment = string_literal(f"Operators' view of {tables.schema}.{name} (no personal identifiers)")
    source = tables.fqn(name)
    return f"CREATE OR REPLACE VIEW {view} COMMENT {comment} AS SELECT {columns} FROM {source}"


def ensure_ops_schema(tables: t.Tables, ops_schema: str) -> None:
    """Locally, create the schema; on Databricks the bundle declares it (with its grants)."""
    if not spark_mod.is_local(tables.spark):
        return
    where = (spark_mod.warehouse_dir(tables.spark) / ops_schema).as_posix()
    tables.spark.sql(
        f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(tables.catalog, ops_schema)}"
        f" LOCATION {string_literal(where)}"
    )


def refresh(tables: t.Tables, ops_schema: str) -> list[str]:
    """(Re)create every operators' view in ``ops_schema``; returns their names.

    The base tables are created first when absent (empty, with their declared
    schema), so the views exist from the first run on.
    """
    if ops_schema == tables.schema:
        raise ConfigError(
            f"setting 'ops_schema' must name a schema other than the product's ({tables.schema})"
        )
    ensure_ops_schema(tables, ops_schema)
    for name in OPS_TABLES:
        tables.ensure(name)
        tables.spark.sql(view_ddl(tables, ops_schema, name))
    log.info("operators' views refreshed in %s: %s", ops_schema, ", ".join(OPS_TABLES))
    return list(OPS_TABLES)

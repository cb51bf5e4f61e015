"""Task values ``patronage_task_values``: what one task tells the tasks after it.

The Delta table ``patronage_task_values`` keyed by (job run id, task key,
name) is the source of truth: it survives a task-level repair because a
repair keeps the job run id. Rows are only ever appended (parallel tasks never
conflict) and the newest row per key wins, so a repaired task simply
republishes. ``dbutils.jobs.taskValues.set`` is called as well where the
runtime allows it, so values show in the Jobs UI and ``{{tasks...}}``
references.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from patronage import tables as t
from patronage.errors import IntegrityError

log = logging.getLogger(__name__)

MAX_VALUE_BYTES = 48 * 1024


class RunState:
    """Publish and read task values for one job run."""

    def __init__(self, tables: t.Tables, run_id: str, dbutils: Any = None) -> None:
        self.tables = tables
        self.run_id = run_id
        self._dbutils = dbutils

    def publish(self, task_key: str, values: dict[str, Any]) -> None:
        """Record ``values`` for ``task_key`` (JSON, each at most 48 KiB)."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = []
        for name, value in values.items():
            encoded = json.dumps(value, default=_json_default, sort_keys=True)
            if len(encoded.encode()) > MAX_VALUE_BYTES:
                raise ValueError(f"task value {task_key}.{name} exceeds 48 KiB")
            rows.append((self.run_id, task_key, name, encoded, now))
        if not rows:
            return
        df = self.tables.spark.createDataFrame(rows, t.TASK_VALUES_SCHEMA)
        self.tables.append(t.TASK_VALUES, df)
        self._set_in_databricks(values)

    def _set_in_databricks(self, values: dict[str, Any]) -> None:
        if self._dbutils is None:
            return
        for name, value in values.items():
            try:
                self._dbutils.jobs.taskValues.set(
                    key=name, value=json.loads(json.dumps(value, default=_json_default))
                )
            except Exception:  # not available in this task type/runtime
                log.debug("dbutils task values unavailable; run-state table holds them")
                return

    def get_all(self) -> dict[str, dict[str, Any]]:
        """``{task_key: {name: value}}`` for this run, newest value per name."""
        return newest(self.tables, F.col("run_id") == self.run_id).get(self.run_id, {})

    def published_at(self, name: str, except_task: str) -> list[tuple[Any, dt.datetime]]:
        """(value, recorded_at) of every value ``name`` of this run, any attempt, any task
        but ``except_task``."""
        rows = (
            self.tables.read(t.TASK_VALUES)
            .where(
                (F.col("run_id") == self.run_id)
                & (F.col("name") == name)
                & (F.col("task_key") != except_task)
            )
            .select("value_json", "recorded_at")
            .collect()
        )
        out = []
        for r in rows:
            try:
                value = json.loads(r["value_json"])
            except (TypeError, ValueError):
                value = None
            out.append((value, r["recorded_at"]))
        return out

    def get(self, task_key: str) -> dict[str, Any]:
        """Values one upstream task published; error if it published none."""
        where = (F.col("run_id") == self.run_id) & (F.col("task_key") == task_key)
        values = newest(self.tables, where).get(self.run_id, {}).get(task_key)
        if not values:
            raise IntegrityError(
                f"task '{task_key}' has published no values for run {self.run_id}; "
                "run or repair it first"
            )
        return values


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def newest(tables: t.Tables, where: Column) -> dict[str, dict[str, dict[str, Any]]]:
    """``{run_id: {task_key: {name: value}}}`` of the rows matching ``where``, newest per name.

    A run holds a few hundred rows at most (tasks x values x attempts), so the
    newest per name is picked here rather than by a window, which would cost a
    shuffle in every task that reads its upstream values.
    """
    rows = (
        tables.read(t.TASK_VALUES)
        .where(where)
        .select("run_id", "task_key", "name", "value_json", "recorded_at")
        .collect()
    )
    latest: dict[tuple[str, str, str], Any] = {}
    for r in rows:
        key = (r["run_id"], r["task_key"], r["name"])
        if key not in latest or r["recorded_at"] > latest[key]["recorded_at"]:
            latest[key] = r
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (run_id, task_key, name), r in sorted(latest.items()):
        out.setdefault(run_id, {}).setdefault(task_key, {})[name] = json.loads(r["value_json"])
    return out


def values_of_runs(tables: t.Tables, run_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{run_id: {task_key: {name: value}}}`` for several runs in one read, newest per name."""
    if not run_ids:
        return {}
    return newest(tables, F.col("run_id").isin(*run_ids))

"""The shape every wheel entry point shares.

A stage module defines ``run(ctx) -> dict`` (the values it publishes) and
``main = entry_point("<task_key>", run)``. ``main`` parses the task
parameters, gets Spark, runs the stage, publishes its values, and logs counts
only: never record contents. A failure leaves the task as its class and a
scrubbed first line (:mod:`patronage.redaction`), in task values, logs and the
error the job shows alike.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from patronage import config, fs
from patronage import tables as t
from patronage.redaction import describe, scrubbed, stack_summary
from patronage.repositories.dmdc_checkpoint import DmdcCheckpoints
from patronage.repositories.ledger import FileLedger
from patronage.repositories.pipeline_log import PipelineLog
from patronage.repositories.rejects import Rejects
from patronage.repositories.staging import Staging
from patronage.repositories.task_values import RunState

log = logging.getLogger("patronage")


@dataclass
class TaskContext:
    """What a stage gets: settings, Spark, tables, files and one repository per table it keeps."""

    task_key: str
    settings: config.Settings
    spark: Any

    @cached_property
    def tables(self) -> t.Tables:
        return t.Tables(self.spark, self.settings.catalog, self.settings.schema)

    @cached_property
    def fs(self) -> fs.FileSystem:
        return fs.filesystem_for(self.spark)

    @cached_property
    def state(self) -> RunState:
        return RunState(self.tables, self.settings.run_id, fs.get_dbutils(self.spark))

    @cached_property
    def ledger(self) -> FileLedger:
        return FileLedger(self.tables)

    @cached_property
    def rejects(self) -> Rejects:
        return Rejects(self.tables)

    @cached_property
    def staging(self) -> Staging:
        return Staging(self.tables)

    @cached_property
    def checkpoints(self) -> DmdcCheckpoints:
        return DmdcCheckpoints(self.tables)

    @cached_property
    def pipeline_log(self) -> PipelineLog:
        return PipelineLog(self.tables)

    def upstream(self, task_key: str) -> dict[str, Any]:
        return self.state.get(task_key)


#: Published by the wrapper for every task, so finalize can tell what happened.
STATUS_VALUE = "task_status"
ERROR_VALUE = "task_error"
DURATION_VALUE = "task_duration_seconds"

Stage = Callable[[TaskContext], dict[str, Any]]


def configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    for noisy in ("py4j", "pyspark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_stage(
    task_key: str, stage: Stage, argv: Sequence[str], spark: Any = None
) -> dict[str, Any]:
    """Run one stage with parsed settings; publish and return its values."""
    from patronage.spark import get_spark

    settings = config.settings_from_argv(argv)
    ctx = TaskContext(task_key, settings, spark or get_spark())
    started = time.monotonic()
    log.info("task %s starting (run %s)", task_key, settings.run_id)
    try:
        values = dict(stage(ctx) or {})
    except Exception as exc:
        # Recorded so finalize can name the failing task; Spark's own text can
        # quote row values, so only the class and a scrubbed first line go.
        try:
            ctx.state.publish(
                task_key,
                {
                    STATUS_VALUE: "FAILED",
                    ERROR_VALUE: describe(exc),
                    DURATION_VALUE: round(time.monotonic() - started, 3),
                },
            )
        except Exception as publish_error:
            log.error(
                "could not record the failure of task %s: %s", task_key, describe(publish_error)
            )
        raise
    values[STATUS_VALUE] = "SUCCESS"
    values[DURATION_VALUE] = round(time.monotonic() - started, 3)
    ctx.state.publish(task_key, values)
    log.info("task %s done in %.1fs", task_key, values[DURATION_VALUE])
    return values


def entry_point(task_key: str, stage: Stage) -> Callable[[Sequence[str] | None], None]:
    """Build the console-script ``main`` for a stage."""

    def main(argv: Sequence[str] | None = None) -> None:
        configure_logging()
        try:
            run_stage(task_key, stage, sys.argv[1:] if argv is None else argv)
        except Exception as exc:
            # What Databricks prints and shows for the failed task: where it
            # failed and the scrubbed description, never the raw message.
            log.error("task %s failed at\n%s", task_key, stack_summary(exc))
            raise scrubbed(exc) from None

    main.__doc__ = f"Wheel entry point of task '{task_key}'."
    return main

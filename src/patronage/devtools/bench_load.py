"""Load case of ``patronage bench``: many consecutive daily runs of the real job.

The bench generates N veterans and M caregivers over a baseline day plus D
daily files (:mod:`patronage.devtools.synthetic`), loads the baseline with one
run, then runs the job once per day exactly as ``patronage run`` does (the
local runner, the bundle's DAG, every task through its wheel entry point), all
in one process on one Spark session so JVM start-up is not counted per day.
After each run it checks the invariants of ``patronage check`` and stops
loudly when one fails or a task did not succeed.

What it answers: does a run cost more the more runs came before it? The
ledger, the run state, the pipeline log and the staging tables grow every
day; the report shows each day's seconds (and each task's), the least-squares
slope of run time over the days, and how those tables grew.

Nothing here is a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from patronage import invariants, runner
from patronage import tables as t
from patronage.devtools import synthetic
from patronage.devtools.bench_load_report import BOOKKEEPING, GATES, TARGET, Day, TableSize
from patronage.errors import IntegrityError, RunFailed

log = logging.getLogger(__name__)

#: Caregivers per veteran (the ratio of ``patronage generate``'s defaults).
CAREGIVER_RATIO = 0.2
#: The baseline file's day. The daily run dates that follow (from 2025-02-28)
#: cover last Fridays (edipi_backfill), the first of a month (backup) and
#: Wednesdays and Fridays (dmdc_export).
START = dt.date(2025, 2, 26)


@dataclasses.dataclass(frozen=True)
class LoadSizes:
    veterans: int
    caregivers: int
    days: int

    def scaled(self, scale: float) -> LoadSizes:
        """Population times ``scale``; the number of days stays."""
        veterans = max(int(self.veterans * scale), 10)
        return LoadSizes(veterans, max(int(veterans * CAREGIVER_RATIO), 1), self.days)


LOAD = LoadSizes(100_000, int(100_000 * CAREGIVER_RATIO), 30)


def run_date(index: int, start: dt.date = START) -> dt.date:
    """Run ``index`` (0 = baseline) applies the file stamped on ``start + index``."""
    return start + dt.timedelta(days=index + 1)


def table_sizes(tables: t.Tables) -> dict[str, TableSize]:
    out = {}
    for name in (*BOOKKEEPING, TARGET):
        if tables.exists(name):
            files = int(tables.delta(name).detail().select("numFiles").collect()[0][0])
            out[name] = TableSize(tables.read(name).count(), tables.version(name), files)
    return out


def jvm_cpu_seconds(spark: SparkSession) -> float | None:
    """User + system CPU seconds of the driver JVM so far (Linux /proc), or None."""
    try:
        jvm: Any = spark.sparkContext._jvm
        pid = int(jvm.java.lang.ProcessHandle.current().pid())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def check(tables: t.Tables, what: str) -> float:
    """``patronage check`` on the target; raises when an invariant does not hold."""
    started = time.perf_counter()
    results = invariants.check_invariants(tables.read(t.PATRONAGE_UNIFIED))
    failed = [r for r in results if not r.passed]
    if failed:
        raise IntegrityError(f"{what}: " + "; ".join(r.line() for r in failed))
    return time.perf_counter() - started


@dataclasses.dataclass
class LoadBench:
    """One load workspace: a generated state directory and its own product schema."""

    spark: SparkSession
    state: Path
    sizes: LoadSizes
    bundle_dir: Path | None = None
    seed: int = 42
    schema: str = dataclasses.field(default_factory=lambda: "bench_load_" + uuid.uuid4().hex[:6])

    @property
    def tables(self) -> t.Tables:
        return t.Tables(self.spark, "spark_catalog", self.schema)

    def generate(self) -> synthetic.GeneratedSummary:
        s = self.sizes
        return synthetic.generate(
            self.state, veterans=s.veterans, caregivers=s.caregivers, days=s.days + 1,
            start=START, seed=self.seed, spark=self.spark, overwrite=True,
        )  # fmt: skip

    def run_day(self, index: int) -> Day:
        """One run of the job for run date ``index`` (0 = baseline), then the check."""
        date = run_date(index)
        cpu_before = jvm_cpu_seconds(self.spark)
        started = time.perf_counter()
        result = runner.run_job(
            state_dir=self.state, target="local", variables={"schema": self.schema},
            run_date=date.isoformat(), bundle_dir=self.bundle_dir,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        cpu_after = jvm_cpu_seconds(self.spark)
        cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        load_average = os.getloadavg()[0]
        what = f"load day {index} (run date {date}, run {result.run_id})"
        if result.status != runner.SUCCESS:
            failed = {
                k: v.get("error") or v.get("status")
                for k, v in result.record["tasks"].items()
                if v.get("status") != runner.SUCCESS
            }
            raise RunFailed(f"{what} ended {result.status}: {failed}")
        found = result.values.get("discover", {})
        if index > 0 and (found.get("scd_files"), found.get("cg_files")) != (1, 1):
            raise RunFailed(
                f"{what}: discover chose {found.get('scd_files')} SCD and "
                f"{found.get('cg_files')} CG file(s), expected one of each"
            )
        check_seconds = check(self.tables, what)
        return Day(
            index=index,
            run_date=date,
            seconds=seconds,
            tasks={k: float(v.get("duration_seconds") or 0.0)
                   for k, v in result.record["tasks"].items()},  # fmt: skip
            due="".join(letter for gate, letter in GATES.items() if found.get(gate)),
            check_seconds=check_seconds,
            tables=table_sizes(self.tables),
            cpu_seconds=cpu,
            load_average=load_average,
        )

    def cleanup(self) -> None:
        self.spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.`{self.schema}` CASCADE")
        shutil.rmtree(self.state, ignore_errors=True)


@dataclasses.dataclass
class LoadResult:
    baseline: Day
    days: list[Day]
    generated: synthetic.GeneratedSummary
    generate_seconds: float


def run_load(
    spark: SparkSession,
    state: Path,
    sizes: LoadSizes,
    bundle_dir: Path | None = None,
    keep: bool = False,
    on_day: Callable[[Day], Any] | None = None,
) -> LoadResult:
    """Generate, load the baseline, run ``sizes.days`` daily runs; the measured days."""
    shutil.rmtree(state, ignore_errors=True)  # the bench's own directory, from an earlier --keep
    bench = LoadBench(spark, state, sizes, bundle_dir)
    try:
        started = time.perf_counter()
        generated = bench.generate()
        generate_seconds = time.perf_counter() - started
        log.info("load: generated in %.0fs", generate_seconds)
        baseline = bench.run_day(0)
        if on_day:
            on_day(baseline)
        days = []
        for index in range(1, sizes.days + 1):
            day = bench.run_day(index)
            days.append(day)
            if on_day:
                on_day(day)
        return LoadResult(baseline, days, generated, generate_seconds)
    finally:
        if not keep:
            bench.cleanup()

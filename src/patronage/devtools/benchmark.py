"""Benchmark of the daily path: cost should follow the day's input.

Three comparisons, each measured side by side in one process on synthetic data:

* ``floor`` (Spark reads the day's SCD file and appends it to a Delta table)
  versus ``update`` (ingest_scd + merge of the same file into a target with
  ``active`` active SCD rows): target ratio <= 3;
* ten such files in one run versus one: target ratio <= 2.5;
* the same daily file against a target that also holds ``history`` expired
  rows versus none: target ratio <= 1.2.

The stages run through :func:`patronage.task.run_stage` exactly as the job runs
them. Between scenarios the target is put back with Delta RESTORE, so every
scenario starts from the same table. Nothing here is a test: figures depend
on the machine.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from patronage import tables as t
from patronage.task import run_stage

log = logging.getLogger(__name__)

SCD_HEADER = ("PTCPNT_ID", "CMBNED_DEGREE_DSBLTY", "DSBL_DTR_DT")
BASE_TS = dt.datetime(2025, 1, 2, 5, 0, 0)
DAY1 = dt.datetime(2025, 3, 3, 5, 0, 0)


@dataclass(frozen=True)
class Sizes:
    active: int = 1_000_000
    history: int = 4_000_000
    file_rows: int = 100_000
    files: int = 10

    def scaled(self, scale: float) -> Sizes:
        return Sizes(
            active=max(int(self.active * scale), 10),
            history=max(int(self.history * scale), 10),
            file_rows=max(int(self.file_rows * scale), 10),
            files=self.files,
        )


@dataclass
class Result:
    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)


def _participant(i: Column) -> Column:
    return F.format_string("%09d", i)


def _icn(i: Column) -> Column:
    return F.format_string("1%09d", i)


# --------------------------------------------------------------------------- data


def target_rows(spark: SparkSession, n: int, *, expired: bool, universe: int) -> DataFrame:
    """``n`` SCD rows; expired ones are history of the first ``universe`` participants."""
    ids = spark.range(n).withColumn("p", F.col("id") % F.lit(universe) if expired else F.col("id"))
    base = int(BASE_TS.replace(tzinfo=dt.UTC).timestamp())
    ts = F.timestamp_seconds(F.lit(base))
    if expired:
        # Older than the active rows: one version per (participant, week) back in time.
        step = (F.col("id") / F.lit(universe)).cast("long") + 1
        ts = F.timestamp_seconds(F.lit(base) - step * F.lit(7 * 86400))
    return ids.select(
        F.lit(None).cast("string").alias("edipi"),
        _icn(F.col("p")).alias("ICN"),
        F.lit(None).cast("string").alias("Veteran_ICN"),
        _participant(F.col("p")).alias("participant_id"),
        F.lit("SCD").alias("Batch_CD"),
        F.lit(None).cast("string").alias("Applicant_Type"),
        F.lit(None).cast("string").alias("Caregiver_Status"),
        F.lpad(((F.col("id") * 7) % 101).cast("string"), 3, "0").alias(
            "SC_Combined_Disability_Percentage"
        ),
        F.lit("N").alias("PT_Indicator"),
        F.lit(None).cast("string").alias("Individual_Unemployability"),
        F.lit("20240101").alias("Status_Begin_Date"),
        F.lit("20240101").alias("Status_Last_Update"),
        F.lit(None).cast("string").alias("Status_Termination_Date"),
        ts.alias("SDP_Event_Created_Timestamp"),
        F.lit("/bench/CPIDODIEX_seed.csv").alias("filename"),
        F.to_date(ts).alias("RecordLastUpdated"),
        F.lit(not expired).alias("RecordStatus"),
        F.lit(expired).alias("sentToDoD"),
        F.lit(None).cast("string").alias("change_log"),
        F.lit("Expired Record" if expired else "New Record").alias("RecordChangeStatus"),
    )


def scd_file_rows(spark: SparkSession, rows: int, universe: int, file_no: int) -> DataFrame:
    """A daily SCD file: mostly known participants (changed percent), about 10% new ones."""
    ids = spark.range(rows)
    # A multiplicative stride spreads each file over the whole participant range.
    p = (F.col("id") * F.lit(7919) + F.lit(file_no * 104_729)) % F.lit(int(universe * 1.1) + 1)
    return ids.select(
        _participant(p).alias("PTCPNT_ID"),
        ((F.col("id") + F.lit(file_no * 13)) % 101).cast("string").alias("CMBNED_DEGREE_DSBLTY"),
        F.date_format(
            F.date_add(F.lit(dt.date(2025, 2, 1)), (F.col("id") % 28).cast("int") + file_no),
            "MMddyyyy",
        ).alias("DSBL_DTR_DT"),
    )


def write_csv(df: DataFrame, path: Path, mtime: dt.datetime) -> int:
    """One CSV file with header at ``path`` (Spark writes a directory; keep its part)."""
    tmp = path.with_name(path.name + ".parts")
    df.coalesce(1).write.mode("overwrite").option("header", True).csv(tmp.as_posix())
    part = next(tmp.glob("part-*.csv"))
    shutil.move(part, path)
    shutil.rmtree(tmp, ignore_errors=True)
    stamp = mtime.replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))
    return path.stat().st_size


# --------------------------------------------------------------------------- setup


class Bench:
    """One benchmark workspace: a schema of product tables plus landing files."""

    def __init__(self, spark: SparkSession, root: Path, sizes: Sizes, tag: str) -> None:
        self.spark = spark
        self.root = root
        self.sizes = sizes
        self.schema = f"bench_{tag}"
        self.src_schema = f"bench_{tag}_src"
        self.tables = t.Tables(spark, "spark_catalog", self.schema)
        self.landing = root / "landing" / "scd"
        self.landing.mkdir(parents=True, exist_ok=True)
        self.files: list[tuple[Path, int, dt.datetime]] = []

    # -- inputs
    def make_files(self) -> None:
        s = self.sizes
        for i in range(s.files):
            mtime = DAY1 + dt.timedelta(days=i)
            path = self.landing / f"CPIDODIEX_{mtime:%Y%m%d}.csv"
            size = write_csv(scd_file_rows(self.spark, s.file_rows, s.active, i), path, mtime)
            self.files.append((path, size, mtime))
        log.info("bench: %d SCD files of %d rows written", s.files, s.file_rows)

    def make_sources(self) -> None:
        """PT delta table and identity lookup for every participant a file may name."""
        spark = self.spark
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS spark_catalog.`{self.src_schema}`")
        universe = int(self.sizes.active * 1.1) + 1
        pt = spark.range(0, universe, 97).select(
            _participant(F.col("id")).alias("PTCPNT_VET_ID"),
            F.when(F.col("id") % 2 == 0, "Y").otherwise("N").alias("PT_35_FLAG"),
        )
        for name in ("pt_seed", "pt_delta"):
            pt.write.format("delta").mode("overwrite").saveAsTable(
                f"spark_catalog.`{self.src_schema}`.`{name}`"
            )
        lookup = spark.range(universe).select(
            _icn(F.col("id")).alias("MVIPersonICN"),
            _participant(F.col("id")).alias("participant_id"),
            F.format_string("%010d", F.col("id")).alias("edipi"),
            F.lit(None).cast("string").alias("va_profile_id"),
            F.lit("P").alias("ICNStatus"),
            F.lit(BASE_TS).cast("timestamp").alias("Last_Modified_Date"),
        )
        self.tables.ensure_schema()
        self.tables.append(t.CORRELATION_LOOKUP, lookup)

    def make_target(self, history: int) -> int:
        """The target with ``active`` active rows (+ ``history`` expired); returns its version."""
        s = self.sizes
        self.tables.ensure_schema()
        self.tables.drop(t.PATRONAGE_UNIFIED)
        self.tables.append(
            t.PATRONAGE_UNIFIED, target_rows(self.spark, s.active, expired=False, universe=s.active)
        )
        if history:
            self.tables.append(
                t.PATRONAGE_UNIFIED,
                target_rows(self.spark, history, expired=True, universe=s.active),
            )
        # Daily runs leave the target optimized: start from that state.
        self.spark.sql(f"OPTIMIZE {self.tables.fqn(t.PATRONAGE_UNIFIED)}")
        return self.tables.version(t.PATRONAGE_UNIFIED)

    def restore(self, version: int) -> None:
        if self.tables.version(t.PATRONAGE_UNIFIED) != version:
            self.tables.delta(t.PATRONAGE_UNIFIED).restoreToVersion(version)

    # -- one run
    def argv(self, run_id: str) -> list[str]:
        params = {
            "run_id": run_id,
            "catalog": "spark_catalog",
            "schema": self.schema,
            "inbound_scd_dir": self.landing.as_posix(),
            "inbound_cg_dir": (self.root / "landing" / "cg").as_posix(),
            "cg_seed_file": (self.root / "landing" / "seed.csv").as_posix(),
            "pt_seed_table": f"{self.src_schema}.pt_seed",
            "pt_delta_table": f"{self.src_schema}.pt_delta",
            "mvi_psa_dir": "/none",
            "mvi_person_dir": "/none",
            "mvi_institution_dir": "/none",
            "export_dir": (self.root / "export").as_posix(),
            "backup_dir": (self.root / "backups").as_posix(),
            "processing_mode": "update",
        }
        return [f"--{k}={v}" for k, v in params.items()]

    def discover(self, run_id: str, files: list[tuple[Path, int, dt.datetime]]) -> None:
        """What discover records for the run: one ``discovered`` event per file, in order."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = [
            (
                p.as_posix(),
                p.name,
                "SCD",
                size,
                mtime,
                run_id,
                "update",
                "discovered",
                None,
                order,
                None,
                None,
                None,
                None,
                now,
            )
            for order, (p, size, mtime) in enumerate(files, start=1)
        ]
        self.tables.append(t.FILE_LEDGER, self.spark.createDataFrame(rows, t.LEDGER_SCHEMA))

    def update_run(self, files: list[tuple[Path, int, dt.datetime]]) -> float:
        """ingest_scd + merge of ``files`` in one run; seconds (discover excluded)."""
        from patronage.stages import ingest_scd, merge

        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        # A merged file is never applied again: each run gets its own paths (hard links).
        run_dir = self.root / "runs" / run_id
        run_dir.mkdir(parents=True)
        linked = []
        for path, size, mtime in files:
            os.link(path, run_dir / path.name)
            linked.append((run_dir / path.name, size, mtime))
        self.discover(run_id, linked)
        argv = self.argv(run_id)
        started = time.perf_counter()
        ingest = run_stage("ingest_scd", ingest_scd.run, argv, spark=self.spark)
        merged = run_stage("merge", merge.run, argv, spark=self.spark)
        seconds = time.perf_counter() - started
        log.info(
            "bench run: %d file(s), staged %s, inserted new=%s updated=%s in %.1fs",
            len(files),
            ingest.get("staged_rows"),
            merged.get("new_scd"),
            merged.get("updated_scd"),
            seconds,
        )
        return seconds

    def floor(self, path: Path) -> float:
        """Spark reads the file and appends it to a Delta table: the least any load costs."""
        name = f"spark_catalog.`{self.schema}`.`bench_floor`"
        started = time.perf_counter()
        (
            self.spark.read.option("header", True)
            .schema(", ".join(f"`{c}` STRING" for c in SCD_HEADER))
            .csv(path.as_posix())
            .write.format("delta")
            .mode("append")
            .saveAsTable(name)
        )
        return time.perf_counter() - started

    def cleanup(self) -> None:
        for schema in (self.schema, self.src_schema):
            self.spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.`{schema}` CASCADE")


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Ratio:
    name: str
    numerator: Result
    denominator: Result
    target: float

    @property
    def value(self) -> float:
        return self.numerator.best / self.denominator.best

    def line(self) -> str:
        verdict = "OK  " if self.value <= self.target else "OVER"
        return (
            f"{verdict} {self.name:<34} {self.numerator.name} {self.numerator.best:8.1f}s"
            f" / {self.denominator.name} {self.denominator.best:8.1f}s"
            f" = {self.value:5.2f} (target <= {self.target})"
        )


def run_bench(
    spark: SparkSession, root: Path, sizes: Sizes, repeat: int = 1, keep: bool = False
) -> list[Ratio]:
    """Set up, measure and return the three ratios (also logged)."""
    root.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    plain = Bench(spark, root / "plain", sizes, tag + "_a")
    hist = Bench(spark, root / "history", sizes, tag + "_b")
    try:
        t0 = time.perf_counter()
        for b in (plain, hist):
            b.make_sources()
        plain.make_files()
        hist.files = plain.files
        v_plain = plain.make_target(history=0)
        v_hist = hist.make_target(history=sizes.history)
        log.info("bench: setup done in %.0fs", time.perf_counter() - t0)

        day = plain.files[:1]
        # Warm-up (JIT, first Delta log reads), not measured.
        plain.floor(day[0][0])
        plain.update_run(day)

        floor, one = Result("floor"), Result("update_1_file")
        many, with_hist = Result(f"update_{sizes.files}_files"), Result("update_with_history")
        # Rounds interleave the cases, so a change in machine load hits all of them.
        for _ in range(repeat):
            floor.seconds.append(plain.floor(day[0][0]))
            plain.restore(v_plain)
            one.seconds.append(plain.update_run(day))
            plain.restore(v_plain)
            many.seconds.append(plain.update_run(plain.files))
            hist.restore(v_hist)
            with_hist.seconds.append(hist.update_run(day))
        return [
            Ratio("update vs floor", one, floor, 3.0),
            Ratio(f"{sizes.files} files vs 1 file", many, one, 2.5),
            Ratio("with history vs without", with_hist, one, 1.2),
        ]
    finally:
        if not keep:
            plain.cleanup()
            hist.cleanup()
            shutil.rmtree(root, ignore_errors=True)

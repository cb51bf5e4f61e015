"""Benchmark of the daily path: the pipeline measured against the engine's own cost.

Every case is measured side by side in one process, on the same synthetic
data, in rounds that interleave the cases (a change in machine load hits all
of them):

* ``floor``: Spark reads the day's files and appends them to a Delta table;
* ``bare_merge``: one Delta MERGE of the run's staged versions into the same
  target, nothing else (no validation, no counts, no compaction);
* ``update``: ingest_scd, ingest_cg and merge as the job runs them (the two
  ingests at once, then merge), through :func:`patronage.task.run_stage`, with
  each task's phase breakdown;
* the same update against a target that also holds the history rows;
* ten SCD files in one run;
* a task that is not due (backup on a day without backup).

Between cases the target is put back with Delta RESTORE, so every case starts
from the same table. Nothing here is a test: figures depend on the machine.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from patronage import phases, scd2
from patronage import tables as t
from patronage.devtools import bench_data as data
from patronage.devtools.bench_data import Sizes
from patronage.devtools.bench_engine import bare_ingest
from patronage.devtools.bench_report import HeapSampler, Ratio, Report, max_heap
from patronage.repositories.staging import Staging
from patronage.repositories.task_values import RunState
from patronage.task import run_stage

log = logging.getLogger(__name__)

__all__ = ["Bench", "Case", "HeapSampler", "Ratio", "Report", "Sizes", "max_heap", "run_bench"]

Files = list[tuple[Path, int, dt.datetime]]


@dataclass
class Case:
    """One measured case: wall seconds per round, and the breakdown of its best round."""

    name: str
    seconds: list[float] = field(default_factory=list)
    detail: list[dict[str, Any]] = field(default_factory=list)
    peak_heap: int = 0

    def add(self, seconds: float, detail: dict[str, Any] | None = None) -> None:
        self.seconds.append(seconds)
        self.detail.append(detail or {})

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def best_detail(self) -> dict[str, Any]:
        return self.detail[self.seconds.index(self.best)]


class Bench:
    """One benchmark workspace: a schema of product tables plus landing files."""

    def __init__(self, spark: SparkSession, root: Path, sizes: Sizes, tag: str) -> None:
        self.spark = spark
        self.root = root
        self.sizes = sizes
        self.schema = f"bench_{tag}"
        self.src_schema = f"bench_{tag}_src"
        self.tables = t.Tables(spark, "spark_catalog", self.schema)
        self.scd_files: Files = []
        self.cg_files: Files = []

    # -- inputs
    def make_files(self) -> None:
        s = self.sizes

        def make(kind: str, i: int) -> DataFrame:
            if kind == "scd":
                return data.scd_file_rows(self.spark, s.file_rows, s.universe, i)
            return data.cg_file_rows(self.spark, s.cg_file_rows, s.cg_active, i)

        for kind, count in (("scd", s.files), ("cg", 1)):
            landing = self.root / "landing" / kind
            landing.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                mtime = data.DAY1 + dt.timedelta(days=i)
                name = f"CPIDODIEX_{mtime:%Y%m%d}.csv" if kind == "scd" else (
                    f"caregiver_{mtime:%Y%m%d}.csv")  # fmt: skip
                path = landing / name
                size = data.write_csv(make(kind, i), path, mtime)
                (self.scd_files if kind == "scd" else self.cg_files).append((path, size, mtime))
        log.info("bench: %d SCD files of %d rows, a CG file of %d rows written",
                 s.files, s.file_rows, s.cg_file_rows)  # fmt: skip

    def make_sources(self) -> None:
        """PT tables and identity lookup for every participant a file may name."""
        spark = self.spark
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS spark_catalog.`{self.src_schema}`")
        pt = data.pt_rows(spark, self.sizes.universe)
        for name in ("pt_seed", "pt_delta"):
            pt.write.format("delta").mode("overwrite").saveAsTable(
                f"spark_catalog.`{self.src_schema}`.`{name}`"
            )
        self.tables.ensure_schema()
        self.tables.append(t.CORRELATION_LOOKUP, data.lookup_rows(spark, self.sizes.universe))

    def make_target(self, history: int) -> int:
        """The target: active SCD and CG rows (+ ``history`` expired); returns its version."""
        s = self.sizes
        self.tables.ensure_schema()
        self.tables.drop(t.PATRONAGE_UNIFIED)
        rows = data.scd_target_rows(self.spark, s.active, expired=False, universe=s.active)
        rows = rows.unionByName(data.cg_target_rows(self.spark, s.cg_active))
        if history:
            rows = rows.unionByName(
                data.scd_target_rows(self.spark, history, expired=True, universe=s.active)
            )
        # Daily runs leave the target compacted: each generated part is written by
        # one task per core, so a partition holds a couple of large files, as after
        # OPTIMIZE, without rewriting 30M rows (most of the bench's setup time).
        self.tables.append(t.PATRONAGE_UNIFIED, rows)
        return self.tables.version(t.PATRONAGE_UNIFIED)

    def restore(self, version: int) -> None:
        if self.tables.version(t.PATRONAGE_UNIFIED) != version:
            self.tables.delta(t.PATRONAGE_UNIFIED).restoreToVersion(version)

    # -- one run
    def argv(self, run_id: str, run_dir: Path) -> list[str]:
        params = {
            "run_id": run_id,
            "catalog": "spark_catalog",
            "schema": self.schema,
            "inbound_scd_dir": (run_dir / "scd").as_posix(),
            "inbound_cg_dir": (run_dir / "cg").as_posix(),
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

    def discover(self, run_id: str, files: dict[str, Files]) -> None:
        """What discover records for the run: one ``discovered`` event per file, in order."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        rows = [
            (p.as_posix(), p.name, source, size, mtime, run_id, "update", "discovered",
             None, order, None, None, None, None, now)
            for source, listed in files.items()
            for order, (p, size, mtime) in enumerate(listed, start=1)
        ]  # fmt: skip
        self.tables.append(t.FILE_LEDGER, self.spark.createDataFrame(rows, t.LEDGER_SCHEMA))

    def new_run(self, scd: Files, cg: Files) -> tuple[str, list[str]]:
        """A run id whose files are fresh hard links (a merged path is never applied again)."""
        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        run_dir = self.root / "runs" / run_id
        linked: dict[str, Files] = {}
        for source, listed in (("SCD", scd), ("CG", cg)):
            (run_dir / source.lower()).mkdir(parents=True)
            linked[source] = []
            for path, size, mtime in listed:
                target = run_dir / source.lower() / path.name
                os.link(path, target)
                linked[source].append((target, size, mtime))
        self.discover(run_id, linked)
        RunState(self.tables, run_id).publish(
            "discover", {"run_date": "2025-03-05", "backup_due": False}
        )
        return run_id, self.argv(run_id, run_dir)

    def update_run(self, scd: Files, cg: Files) -> tuple[float, dict[str, Any]]:
        """ingest_scd and ingest_cg at once, then merge, as the job runs them (discover excluded).

        Both ingests depend only on discover and identity, so Databricks starts
        them together on the job's cluster; here they share the one Spark session.
        """
        from patronage.stages import ingest_cg, ingest_scd, merge

        run_id, argv = self.new_run(scd, cg)
        detail: dict[str, Any] = {"run_id": run_id}

        def task(key: str, stage: Any) -> None:
            t0 = time.perf_counter()
            values = run_stage(key, stage, argv, spark=self.spark)
            detail[key] = {"seconds": time.perf_counter() - t0, "phases": phases.last(key),
                           "staged_rows": values.get("staged_rows")}  # fmt: skip

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench-ingest") as pool:
            ingests = [pool.submit(task, "ingest_scd", ingest_scd.run),
                       pool.submit(task, "ingest_cg", ingest_cg.run)]  # fmt: skip
            for ingest in ingests:
                ingest.result()
        detail["ingests_seconds"] = time.perf_counter() - started
        task("merge", merge.run)
        return time.perf_counter() - started, detail

    def bare_merge(self, run_id: str) -> float:
        """One Delta MERGE of the run's staged versions, nothing else."""
        source = scd2.merge_source(scd2.plan_versions(Staging(self.tables).read_run(run_id)))
        started = time.perf_counter()
        (
            self.tables.delta(t.PATRONAGE_UNIFIED).alias("t")
            .merge(source.alias("s"), scd2.merge_condition("t", "s"))
            .whenMatchedUpdate(set=scd2.expire_assignments("s"))
            .whenNotMatchedInsert(
                condition=source[scd2.MERGE_KEY].isNull(), values=scd2.insert_values("s"))
            .execute()
        )  # fmt: skip
        return time.perf_counter() - started

    def floor(self, files: Files) -> float:
        """Spark reads the files and appends them to a Delta table: the least any load costs."""
        started = time.perf_counter()
        for path, _, _ in files:
            name = "bench_floor_" + path.name.split("_")[0].lower()
            (
                self.spark.read.option("header", True).option("inferSchema", False)
                .csv(path.as_posix())
                .write.format("delta").mode("append")
                .saveAsTable(f"spark_catalog.`{self.schema}`.`{name}`")
            )  # fmt: skip
        return time.perf_counter() - started

    def state_reads(self, files: Files) -> float:
        """What the SCD rules must read besides the file: active rows and lookup of its keys."""
        from pyspark.sql import functions as F

        started = time.perf_counter()
        keys = F.broadcast(
            self.spark.read.option("header", True).csv([p.as_posix() for p, _, _ in files])
            .select(F.col("PTCPNT_ID").alias("participant_id")).distinct()
        )  # fmt: skip
        target = self.tables.read(t.PATRONAGE_UNIFIED)
        active = target.where(F.col("RecordStatus") & (F.col("Batch_CD") == "SCD"))
        reads = (
            (active, ("ICN", "edipi", "SC_Combined_Disability_Percentage", "PT_Indicator",
                      "Status_Begin_Date", "Status_Last_Update")),
            (self.tables.read(t.CORRELATION_LOOKUP), ("MVIPersonICN", "edipi")),
        )  # fmt: skip
        for table, columns in reads:
            table.join(keys, "participant_id", "left_semi").agg(
                *[F.sum(F.length(c)) for c in columns]).collect()  # fmt: skip
        return time.perf_counter() - started

    def not_due(self) -> float:
        """A task that has nothing to do today, inside the task wrapper."""
        from patronage.stages import backup

        _, argv = self.new_run([], [])
        started = time.perf_counter()
        run_stage("backup", backup.run, argv, spark=self.spark)
        return time.perf_counter() - started

    def cleanup(self) -> None:
        for schema in (self.schema, self.src_schema):
            self.spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.`{schema}` CASCADE")


# --------------------------------------------------------------------------- driver


def _measure(case: Case, fn: Any) -> Any:
    with HeapSampler() as sampler:
        out = fn()
    seconds, detail = out if isinstance(out, tuple) else (out, None)
    case.add(seconds, detail)
    case.peak_heap = max(case.peak_heap, sampler.peak)
    return detail


def run_bench(
    spark: SparkSession, root: Path, sizes: Sizes, repeat: int = 1, keep: bool = False
) -> Report:
    """Set up, measure every case ``repeat`` times and return the report."""
    root.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    plain = Bench(spark, root / "plain", sizes, tag + "_a")
    hist = Bench(spark, root / "history", sizes, tag + "_b")
    try:
        t0 = time.perf_counter()
        for b in (plain, hist):
            b.make_sources()
        plain.make_files()
        hist.scd_files, hist.cg_files = plain.scd_files, plain.cg_files
        v_plain = plain.make_target(history=0)
        v_hist = hist.make_target(history=sizes.history)
        setup = time.perf_counter() - t0
        log.info("bench: setup done in %.0fs", setup)

        scd1, cg1 = plain.scd_files[:1], plain.cg_files
        # Warm-up (JIT, first Delta log reads, every table created), not measured.
        plain.floor(scd1 + cg1)
        plain.update_run(scd1, cg1)
        bare_ingest(plain, scd1)
        bare_ingest(plain, scd1, by_run=True)
        plain.restore(v_plain)

        many = f"update_{sizes.files}_files"
        many_bare = f"bare_ingest_{sizes.files}_files"
        names = ("floor_scd", "state_reads", "bare_ingest", "bare_ingest_by_run", "floor",
                 "ingest_scd", "merge_task", "update", "bare_merge", "update_with_history",
                 "bare_merge_with_history", many, many_bare, f"bare_merge_{sizes.files}_files",
                 "not_due_task")  # fmt: skip
        cases = {n: Case(n) for n in names}
        for _ in range(repeat):
            _measure(cases["floor_scd"], lambda: plain.floor(scd1))
            _measure(cases["floor"], lambda: plain.floor(scd1 + cg1))
            day = _measure(cases["update"], lambda: plain.update_run(scd1, cg1))
            cases["ingest_scd"].add(day["ingest_scd"]["seconds"])
            cases["merge_task"].add(day["merge"]["seconds"])
            plain.restore(v_plain)
            _measure(cases["bare_merge"], lambda d=day: plain.bare_merge(d["run_id"]))
            plain.restore(v_plain)
            _measure(cases["state_reads"], lambda: plain.state_reads(scd1))
            _measure(cases["bare_ingest"], lambda: bare_ingest(plain, scd1))
            _measure(cases["bare_ingest_by_run"], lambda: bare_ingest(plain, scd1, by_run=True))
            _measure(cases[many_bare], lambda: bare_ingest(plain, plain.scd_files))
            ten = _measure(cases[many], lambda: plain.update_run(plain.scd_files, cg1))
            plain.restore(v_plain)
            _measure(cases[f"bare_merge_{sizes.files}_files"],
                     lambda d=ten: plain.bare_merge(d["run_id"]))  # fmt: skip
            plain.restore(v_plain)
            with_hist = _measure(cases["update_with_history"], lambda: hist.update_run(scd1, cg1))
            hist.restore(v_hist)
            _measure(cases["bare_merge_with_history"],
                     lambda d=with_hist: hist.bare_merge(d["run_id"]))  # fmt: skip
            hist.restore(v_hist)
            _measure(cases["not_due_task"], plain.not_due)
        c = {n: cases[n].best for n in names}
        ratios = [
            Ratio("ingest_scd vs floor", c["ingest_scd"], c["floor_scd"], 3.0,
                  "ingest_scd / floor_scd"),
            Ratio("merge task vs bare MERGE", c["merge_task"], c["bare_merge"], 1.3,
                  "merge_task / bare_merge"),
            Ratio("update vs floor + bare MERGE", c["update"], c["floor"] + c["bare_merge"], 2.0,
                  "update / (floor + bare_merge)"),
            Ratio("history (4x active) vs none", c["update_with_history"], c["update"], 1.15,
                  "update_with_history / update"),
            Ratio(f"{sizes.files} files vs 1 file", c[many], c["update"], 1.5, f"{many} / update"),
            Ratio("  (engine: bare MERGE of those)", c[f"bare_merge_{sizes.files}_files"],
                  c["bare_merge"], 1.5, f"bare_merge_{sizes.files}_files / bare_merge"),
            Ratio("  (engine: bare ingest of those)",
                  c[many_bare] + c[f"bare_merge_{sizes.files}_files"],
                  c["bare_ingest"] + c["bare_merge"], 1.5,
                  f"({many_bare} + bare_merge_{sizes.files}_files) / (bare_ingest + bare_merge)"),
            Ratio("  (engine: bare ingest vs floor)", c["bare_ingest"], c["floor_scd"], 3.0,
                  "bare_ingest / floor_scd"),
            Ratio("  (ingest_scd vs bare ingest)", c["ingest_scd"], c["bare_ingest"], 1.5,
                  "ingest_scd / bare_ingest"),
            Ratio("  (engine: replace by run vs append)", c["bare_ingest_by_run"],
                  c["bare_ingest"], 1.15, "bare_ingest_by_run / bare_ingest"),
            Ratio("  (ingest_scd vs bare ingest by run)", c["ingest_scd"],
                  c["bare_ingest_by_run"], 1.5, "ingest_scd / bare_ingest_by_run"),
            Ratio("task not due (seconds)", c["not_due_task"], 1.0, 1.5, "not_due_task / 1 s"),
        ]  # fmt: skip
        return Report(cases, ratios, max_heap(), setup)
    finally:
        if not keep:
            plain.cleanup()
            hist.cleanup()
            shutil.rmtree(root, ignore_errors=True)

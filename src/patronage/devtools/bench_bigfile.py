"""``patronage bench --big-file N``: one SCD file of N rows through ingest_scd.

Shows that no inbound file is loaded whole on the driver: run it with a small
driver (``PATRONAGE_DRIVER_MEMORY=2g``) and a file larger than the driver
could hold as one row. The target and sources are small; the file names the
same participants many times over, so the per-file rules do real work.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

from pyspark.sql import SparkSession

from patronage import phases
from patronage.devtools import bench_data as data
from patronage.devtools import benchmark
from patronage.task import run_stage

log = logging.getLogger(__name__)


def run_big_file(spark: SparkSession, root: Path, rows: int, keep: bool = False) -> list[str]:
    """Ingest one file of ``rows`` rows; returns the report lines."""
    from patronage.stages import ingest_scd

    sizes = data.PROFILES["daily"].scaled(0.01)
    bench = benchmark.Bench(spark, root, sizes, uuid.uuid4().hex[:6] + "_big")
    try:
        bench.make_sources()
        bench.make_target(history=0)
        landing = root / "landing" / "scd"
        landing.mkdir(parents=True, exist_ok=True)
        path = landing / f"CPIDODIEX_{data.DAY1:%Y%m%d}.csv"
        t0 = time.perf_counter()
        size = data.write_csv(data.scd_file_rows(spark, rows, sizes.universe, 0), path, data.DAY1)
        log.info("bench: big file of %d rows (%d bytes) written in %.0fs",
                 rows, size, time.perf_counter() - t0)  # fmt: skip
        _, argv = bench.new_run([(path, size, data.DAY1)], [])
        started = time.perf_counter()
        with benchmark.HeapSampler() as sampler:
            values = run_stage("ingest_scd", ingest_scd.run, argv, spark=spark)
        seconds = time.perf_counter() - started
        parts = ", ".join(f"{k} {v:.1f}" for k, v in phases.last("ingest_scd").items())
        return [
            f"big file: {rows:,} rows, {size / 2**20:,.0f} MiB",
            f"ingest_scd {seconds:.1f}s ({parts}); raw_rows={values['raw_rows']:,} "
            f"staged_rows={values['staged_rows']:,}",
            f"driver JVM heap peak {sampler.peak / 2**20:,.0f} MiB "
            f"of {benchmark.max_heap() / 2**20:,.0f} MiB",
        ]
    finally:
        if not keep:
            bench.cleanup()
            shutil.rmtree(root, ignore_errors=True)

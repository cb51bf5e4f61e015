"""``patronage bench``: the daily path measured against the engine's own cost."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from patronage.devtools.bench_data import PROFILES

    p = subparsers.add_parser(
        "bench",
        help="measure the daily path against a bare read and a bare MERGE (synthetic data)",
        description="Builds its own tables under <state-dir>/bench and removes them afterwards. "
        "Profiles: population (6,000,000 active SCD rows, 60,000 CG, 24,000,000 history rows; "
        "daily files of 50,000 SCD and 2,000 CG rows) and daily (1,000,000 / 10,000 / "
        "4,000,000; files of 100,000 and 1,000 rows). --scale multiplies every size "
        "(e.g. --scale 0.01 for a quick run). Driver memory: PATRONAGE_DRIVER_MEMORY.",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="population")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size (default 1.0)")
    p.add_argument("--files", type=int, default=10, help="files in the multi-file run")
    p.add_argument("--repeat", type=int, default=1, help="measure each case N times, keep the best")
    p.add_argument(
        "--big-file",
        type=int,
        metavar="ROWS",
        help="instead: ingest one SCD file of ROWS rows (try PATRONAGE_DRIVER_MEMORY=2g)",
    )
    p.add_argument("--keep", action="store_true", help="keep the bench tables and files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import resource

    from patronage.devtools import benchmark as bench
    from patronage.devtools.bench_data import PROFILES
    from patronage.spark import get_spark

    if args.scale <= 0 or args.repeat < 1 or args.files < 1:
        print("bench: --scale must be > 0, --repeat and --files >= 1")
        return 2
    root = Path(getattr(args, "state_dir", None) or ".patronage") / "bench"
    sizes = dataclasses.replace(PROFILES[args.profile].scaled(args.scale), files=args.files)
    spark = get_spark(root)
    print(
        f"bench {args.profile} x{args.scale:g}: active={sizes.active:,} "
        f"cg_active={sizes.cg_active:,} history={sizes.history:,} "
        f"file_rows={sizes.file_rows:,} cg_file_rows={sizes.cg_file_rows:,} "
        f"files={sizes.files} repeat={args.repeat} "
        f"driver_memory={os.environ.get('PATRONAGE_DRIVER_MEMORY', '4g')}"
    )
    if args.big_file:
        from patronage.devtools.bench_bigfile import run_big_file

        for line in run_big_file(spark, root / "work", args.big_file, keep=args.keep):
            print(line)
        return 0
    report = bench.run_bench(spark, root / "work", sizes, repeat=args.repeat, keep=args.keep)
    for line in report.lines():
        print(line)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = max(c.peak_heap for c in report.cases.values()) / 2**20
    print(
        f"peak driver memory: JVM heap {peak:,.0f} MiB (of {report.max_heap / 2**20:,.0f} MiB),"
        f" Python process {rss:,.0f} MiB"
    )
    return 0

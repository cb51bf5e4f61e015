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
        "(e.g. --scale 0.01 for a quick run). Profile load: a baseline and then --days "
        "consecutive daily runs of the whole job on generated data (100,000 veterans, 20,000 "
        "caregivers, 30 days), `patronage check` after each, time per run and its slope. "
        "Driver memory: PATRONAGE_DRIVER_MEMORY.",
    )
    p.add_argument("--profile", choices=[*sorted(PROFILES), "load"], default="population")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size (default 1.0)")
    p.add_argument("--files", type=int, default=10, help="files in the multi-file run")
    p.add_argument("--repeat", type=int, default=1, help="measure each case N times, keep the best")
    p.add_argument(
        "--big-file",
        type=int,
        metavar="ROWS",
        help="instead: ingest one SCD file of ROWS rows (try PATRONAGE_DRIVER_MEMORY=2g)",
    )
    p.add_argument("--days", type=int, help="load: daily runs after the baseline (default 30)")
    p.add_argument("--veterans", type=int, help="load: veterans (default 100,000 x --scale)")
    p.add_argument("--caregivers", type=int, help="load: caregivers (default 0.2 per veteran)")
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
    if args.profile == "load":
        return run_load(args, root)
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


def run_load(args: argparse.Namespace, root: Path) -> int:
    """The load profile: baseline, then ``--days`` daily runs of the job, checked and timed."""
    from patronage.devtools import bench_load as load
    from patronage.devtools.bench_load_report import Day, day_lines, report_lines
    from patronage.spark import get_spark

    sizes = load.LOAD.scaled(args.scale)
    veterans = args.veterans or sizes.veterans
    caregivers = args.caregivers if args.caregivers is not None else (
        max(int(veterans * load.CAREGIVER_RATIO), 1) if args.veterans else sizes.caregivers)
    sizes = load.LoadSizes(veterans, caregivers, args.days or sizes.days)
    if min(sizes.veterans, sizes.days) < 1 or sizes.caregivers < 0:
        print("bench: --veterans and --days must be >= 1, --caregivers >= 0")
        return 2
    header = [
        f"bench load: {sizes.veterans:,} veterans, {sizes.caregivers:,} caregivers; a baseline "
        f"run, then {sizes.days} daily runs (run dates {load.run_date(1)} .. "
        f"{load.run_date(sizes.days)}); `patronage check` after each run",
        f"driver_memory={os.environ.get('PATRONAGE_DRIVER_MEMORY', '4g')} "
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
    ]
    print(*header, sep="\n", flush=True)
    spark = get_spark(root)

    def progress(day: Day) -> None:
        head, line = day_lines([day])
        print(*([head] if day.index == 0 else []), line, sep="\n", flush=True)

    result = load.run_load(
        spark, root / "load", sizes, bundle_dir=getattr(args, "bundle_dir", None),
        keep=args.keep, on_day=progress,
    )  # fmt: skip
    g = result.generated
    header += [
        f"generated {g.scd_rows:,} SCD and {g.cg_rows:,} CG rows ({g.bad_rows:,} bad) in "
        f"{result.generate_seconds:.0f}s; baseline run {result.baseline.seconds:.1f}s "
        f"(not in the trend); load average at end {os.getloadavg()[0]:.1f}",
    ]
    for line in report_lines(result.days, header):
        print(line)
    return 0

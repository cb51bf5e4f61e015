"""``patronage bench``: the daily-path benchmark; prints three ratios."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure update vs floor, 10 files vs 1, history vs none (synthetic data)",
        description="Builds its own tables under <state-dir>/bench and removes them afterwards. "
        "Default sizes: 1,000,000 active target rows, 4,000,000 history rows, files of "
        "100,000 rows; --scale multiplies them (e.g. --scale 0.1 for a quick run).",
    )
    p.add_argument("--scale", type=float, default=1.0, help="multiply every size (default 1.0)")
    p.add_argument("--files", type=int, default=10, help="files in the multi-file run")
    p.add_argument("--repeat", type=int, default=1, help="measure each case N times, keep the best")
    p.add_argument("--keep", action="store_true", help="keep the bench tables and files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from patronage.devtools import benchmark as bench
    from patronage.spark import get_spark

    if args.scale <= 0 or args.repeat < 1 or args.files < 1:
        print("bench: --scale must be > 0, --repeat and --files >= 1")
        return 2
    root = Path(getattr(args, "state_dir", None) or ".patronage") / "bench"
    sizes = dataclasses.replace(bench.Sizes().scaled(args.scale), files=args.files)
    spark = get_spark(root)
    print(
        f"bench: active={sizes.active:,} history={sizes.history:,} "
        f"file_rows={sizes.file_rows:,} files={sizes.files} repeat={args.repeat}"
    )
    ratios = bench.run_bench(spark, root / "work", sizes, repeat=args.repeat, keep=args.keep)
    for ratio in ratios:
        print(ratio.line())
    return 0

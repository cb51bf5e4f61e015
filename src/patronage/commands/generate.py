"""``patronage generate``: synthetic inputs for replays and benchmarks."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any


def _date(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {raw!r}") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate",
        help="write synthetic SCD/CG files, PT tables and MVI sources into a state directory",
        description="Deterministic for a seed. The output is a landed state directory: "
        "run it with `patronage run --state-dir <out>`.",
    )
    p.add_argument("--out", type=Path, default=None,
                   help="output state directory (default: --state-dir, else .patronage)")
    p.add_argument("--veterans", type=int, default=1000, help="number of veterans (N)")
    p.add_argument("--caregivers", type=int, default=200, help="number of caregivers (M)")
    p.add_argument("--days", type=int, default=14, help="number of daily files (D)")
    p.add_argument("--start-date", type=_date, default=dt.date(2025, 1, 6),
                   help="day of the first (baseline) file, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--scd-rows-per-file", type=int, default=None,
                   help="rows in each daily SCD file after the baseline (default ~2%% of N)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing landing directory in --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from patronage.devtools.synthetic import generate
    from patronage.spark import get_spark

    default_out = getattr(args, "state_dir", None) or ".patronage"
    out = Path(args.out if args.out is not None else default_out)
    spark = get_spark(out)
    try:
        summary = generate(
            out,
            veterans=args.veterans,
            caregivers=args.caregivers,
            days=args.days,
            start=args.start_date,
            seed=args.seed,
            spark=spark,
            scd_rows_per_file=args.scd_rows_per_file,
            overwrite=args.overwrite,
        )
    except (FileExistsError, ValueError) as exc:
        print(f"generate: {exc}")
        return 2
    print(
        f"generated into {summary.out}: {len(summary.scd_files)} SCD files "
        f"({summary.scd_rows} rows), {len(summary.cg_files)} CG files ({summary.cg_rows} rows), "
        f"{summary.seed_rows} seed rows, {summary.bad_rows} bad rows"
    )
    return 0

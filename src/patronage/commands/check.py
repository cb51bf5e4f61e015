"""``patronage check``: verify the invariants of patronage_unified on the current tables.

Prints one PASS/FAIL line per invariant with counts of violating keys (never
their values) and exits non-zero when any fails.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="verify the invariants of patronage_unified (counts only)",
        description="At most one active row per business key, PT never Y to N, every "
        "expired row followed by a newer version, no active row without ICN.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from patronage import invariants, runner
    from patronage import tables as t

    settings, spark = runner.resolve_settings(args)
    tables = t.Tables(spark, settings.catalog, settings.schema)
    if not tables.exists(t.PATRONAGE_UNIFIED):
        print(f"FAIL {t.PATRONAGE_UNIFIED} does not exist in {settings.catalog}.{settings.schema}")
        return 1
    results = invariants.check_invariants(tables.read(t.PATRONAGE_UNIFIED))
    for result in results:
        print(result.line())
    failed = sum(not r.passed for r in results)
    print(f"{'FAIL' if failed else 'PASS'} {len(results) - failed}/{len(results)} invariants hold")
    return 1 if failed else 0

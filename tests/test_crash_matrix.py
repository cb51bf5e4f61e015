"""Crash safety: a run killed at any crash point, then repaired or run again,
ends with the very tables and files of an uninterrupted run.

Each case copies one prepared state (phase 1 of the fixtures merged, the
"later" inputs landed) to the same working directory, runs the job for
2025-04-01 in a separate process with one crash point armed
(``PATRONAGE_CRASH_AT``: the process ends with ``os._exit``, as a killed driver
would), then either repairs that run or starts a new run of the same day, and
compares with an uninterrupted run of that day:

- every product table (``patronage_unified``, the ledger's final state per
  file, ``patronage_rejects``, ``dmdc_checkpoint``, ``correlation_lookup``,
  ``duplicate_correlations``) and every table backup, row for row;
- every file under the export directory, byte for byte;
- the day's ``patronage_pipeline_log`` row (after a repair: the same row; after a
  new run: a SUCCESS row for the day).

2025-04-01 is the first of a month (backups due); the DMDC export and the EDIPI
backfill are forced, so every task writes. Slow (two processes per case): run
alone with ``pytest -m crash``; the default run leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from patronage.faults import ENV, EXIT_CODE, CrashPoint

pytestmark = [pytest.mark.spark, pytest.mark.crash]

ROOT = Path(__file__).resolve().parents[1]
DAY = ("--run-date", "2025-04-01", "--param", "force_dmdc_export=true",
       "--param", "force_edipi_backfill=true")  # fmt: skip
SCHEMA = "patronage"
#: Tables compared row for row, and the columns that name a moment or an attempt.
TABLES = {
    "patronage_unified": (),
    "patronage_rejects": ("run_id", "recorded_at"),
    "dmdc_checkpoint": ("run_id", "created_at", "recorded_at"),
    "correlation_lookup": (),
    "duplicate_correlations": (),
}
VOLATILE_LOG = ("run_id", "run_timestamp_utc", "duration_seconds")
#: Every task's published duration, inside the log's JSON columns.
VOLATILE_VALUE = "task_duration_seconds"
#: A fingerprint of rows that hold the moment of the export (created_at).
VOLATILE_LOG_FIELDS = ("backup_stats.tables.dmdc_checkpoint.checksum",)


def cli(state: Path, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash:
        env[ENV] = crash
    cmd = [sys.executable, "-m", "patronage.cli", *args, "--state-dir", str(state),
           "--bundle-dir", str(ROOT)]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def land_later(state: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from patronage.spark import get_spark; "
        "from patronage.devtools.fixture_landing import land_later; "
        "s = Path(sys.argv[1]); land_later(Path(sys.argv[2]), s, get_spark(s))"
    )
    subprocess.run([sys.executable, "-c", code, str(state), str(ROOT / "fixtures")],
                   check=True, capture_output=True, timeout=900)  # fmt: skip


def rows(spark, path: Path, drop: tuple[str, ...] = ()) -> list[str]:
    df = spark.read.format("delta").load(str(path))
    df = df.drop(*[c for c in drop if c in df.columns])
    return sorted(json.dumps(r.asDict(), sort_keys=True, default=str) for r in df.collect())


def snapshot(spark, state: Path) -> dict[str, object]:
    """What must not depend on a crash: tables (by path), backups, files, the day's log row."""
    # The working directory is reused: forget what Delta cached about its tables.
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    wh = state / "warehouse" / SCHEMA
    out: dict[str, object] = {n: rows(spark, wh / n, drop) for n, drop in TABLES.items()}
    ledger = spark.read.format("delta").load(str(wh / "patronage_file_ledger")).collect()
    final: dict[tuple, dict] = {}
    for r in sorted(ledger, key=lambda r: r["recorded_at"]):
        final[(r["path"], r["size"], r["modification_time"])] = {
            k: r[k] for k in ("status", "reason", "raw_rows", "valid_rows", "rejected_rows",
                              "staged_rows")}  # fmt: skip
        if r["status"] == "late":
            # Every run reports a late file again, naming its own window start.
            final[(r["path"], r["size"], r["modification_time"])]["reason"] = "late"
    out["ledger_final"] = sorted(json.dumps([list(map(str, k)), v], sort_keys=True)
                                 for k, v in final.items())  # fmt: skip
    backups = state / "backups"
    volatile = {**TABLES, "patronage_pipeline_log": VOLATILE_LOG}
    for d in sorted(p for p in backups.rglob("_delta_log")):
        name = d.parent.relative_to(backups)
        out[f"backup:{name}"] = rows(spark, d.parent, volatile.get(d.parent.name, ()))
    out["files"] = {p.name: p.read_bytes() for p in sorted((state / "export").iterdir())}
    log = spark.read.format("delta").load(str(wh / "patronage_pipeline_log"))
    days: dict[str, list[dict[str, object]]] = {}
    for r in log.drop(*VOLATILE_LOG).collect():
        row = {k: v for k, v in flat(r.asDict()).items()
               if not k.endswith(VOLATILE_VALUE) and k not in VOLATILE_LOG_FIELDS}  # fmt: skip
        days.setdefault(str(row.get("file_discovery_detail.run_date")), []).append(row)
    out["log"] = days
    return out


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """The prepared state (before the day), kept aside, and the working directory.

    Prepared in the working directory itself: the ledger keys files by path, so
    every case must see its inputs where the prepared runs saw them.
    """
    base = tmp_path_factory.mktemp("crash")
    prepared, work = base / "prepared", base / "work"
    done = cli(work, "run", "--run-date", "2025-03-01", "--param", "force_dmdc_export=true")
    assert done.returncode == 0, done.stdout + done.stderr
    land_later(work)
    shutil.copytree(work, prepared, symlinks=True)
    return prepared, work


def fresh(states) -> Path:
    prepared, work = states
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(prepared, work, symlinks=True)
    return work


@pytest.fixture(scope="module")
def reference(states, spark):
    work = fresh(states)
    done = cli(work, "run", *DAY)
    assert done.returncode == 0, done.stdout + done.stderr
    return snapshot(spark, work)


def test_the_reference_day_exercises_every_writing_task(reference):
    assert {"PATRONAGE_20250401.txt", "LAGGED_EDIPI_PATRONAGE_20250401.txt"} <= set(
        reference["files"]
    )
    assert any(k.startswith("backup:") for k in reference)


def flat(value: object, prefix: str = "") -> dict[str, object]:
    """A log row's fields, JSON columns opened, as dotted paths (to name a difference)."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def compare(got: dict, want: dict, *, log_row: bool) -> None:
    for key in want:
        if key == "log" and not log_row:
            continue
        if key == "log" and got[key] != want[key]:
            diff = {
                (day, k)
                for day in set(got[key]) | set(want[key])
                for a, b in zip(got[key].get(day, [{}]), want[key].get(day, [{}]), strict=False)
                for k in set(a) | set(b)
                if a.get(k) != b.get(k)
            }
            pytest.fail(f"pipeline log differs from the uninterrupted run: {sorted(diff)}")
        assert got[key] == want[key], f"{key} differs from the uninterrupted run"


@pytest.mark.parametrize("point", list(CrashPoint), ids=str)
@pytest.mark.parametrize("then", ["repair", "rerun"])
def test_a_run_killed_at_a_crash_point_ends_as_an_uninterrupted_one(
    point, then, states, reference, spark
):
    work = fresh(states)
    crashed = cli(work, "run", *DAY, crash=str(point))
    assert crashed.returncode == EXIT_CODE, crashed.stdout + crashed.stderr
    assert f"crash point {point} reached" in crashed.stderr

    after = cli(work, "repair") if then == "repair" else cli(work, "run", *DAY)
    assert after.returncode == 0, after.stdout + after.stderr
    got = snapshot(spark, work)
    compare(got, reference, log_row=then == "repair")
    if then == "rerun":
        # The new run may find the day's work done by the killed one: its row
        # then counts nothing, but no run of the day is left failed.
        assert {r["status"] for rows in got["log"].values() for r in rows} == {"SUCCESS"}

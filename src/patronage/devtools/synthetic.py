"""Synthetic, obviously fake inputs at any size, deterministic for a seed.

Benchmarks and multi-day replays need more data than the fixtures. The output
has the layout of a landed local state directory (see :mod:`patronage.devtools.fixture_landing`),
so ``patronage run --state-dir <out>`` runs on it directly:
``<out>/landing/{scd,cg,seed,mvi}`` and the PT Delta tables under
``<out>/warehouse/patronage_sources``.

Inbound CSVs are written with the ``csv`` module (fast enough for a million
rows and trivially deterministic); MVI and PT sources are built by Spark from
``range`` with hash-derived attributes, so they scale to millions of people.

Identity scheme (all fake): veteran ``v`` (1..N) has ICN ``1000000000+v``,
participant id ``9000000+v``, EDIPI ``7000000000+v`` (for ~97%), VA profile id
``8000000000+v``; caregiver ``c`` (1..M) has ICN ``2000000000+c``, EDIPI
``7200000000+c`` (for ~92%), VA profile id ``8500000000+c``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import logging
import random
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from pyspark.sql import SparkSession

from patronage.devtools import fixture_landing as landing
from patronage.devtools.synthetic_sources import mvi_frames, pt_frames
from patronage.fs import FileSystem
from patronage.stages import ingest_cg, ingest_scd

log = logging.getLogger(__name__)

# The inbound layouts are the ingest stages' own (one definition, SPEC §2).
SCD_HEADER = list(ingest_scd.COLUMNS)
CG_HEADER = list(ingest_cg.COLUMNS)
SEED_HEADER = list(ingest_cg.SEED_COLUMNS)
PERCENTS = [str(p) for p in range(0, 101, 10)]
FILE_TIME = dt.time(6, 0, 0)

#: Realistic daily change rates (share of the population per daily file).
SCD_DAILY_RATE = 0.02
CG_NEW_SHARE = 0.20  # caregivers not in the baseline, arriving over the days
CG_DAILY_CHANGE_RATE = 0.02
BAD_ROW_RATE = 0.002
SCD_BASELINE_SHARE = 0.95  # the rest first appear in daily files (new records)


# --- identities -----------------------------------------------------------------
def veteran_icn(v: int) -> str:
    return str(1_000_000_000 + v)


def veteran_participant_id(v: int) -> str:
    return str(9_000_000 + v)


def caregiver_icn(c: int) -> str:
    return str(2_000_000_000 + c)


def full_icn(icn10: str, n: int) -> str:
    """The 17-character form CARMA sends (10 significant chars, ``V``, checksum)."""
    return f"{icn10}V{(n * 7919) % 1_000_000:06d}"


@dataclasses.dataclass(frozen=True)
class GeneratedSummary:
    out: Path
    veterans: int
    caregivers: int
    days: int
    start: dt.date
    seed: int
    scd_files: tuple[str, ...]
    cg_files: tuple[str, ...]
    scd_rows: int
    cg_rows: int
    seed_rows: int
    bad_rows: int


def _file_mtime(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, FILE_TIME)


def _mmddyyyy(d: dt.date) -> str:
    return d.strftime("%m%d%Y")


def _open_csv(path: Path) -> tuple[TextIO, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w", newline="", encoding="utf-8")
    return fh, csv.writer(fh, lineterminator="\n")


# --- SCD files -------------------------------------------------------------------
def write_scd_file(
    path: Path,
    participant_ids: Iterable[str | int],
    decision_date: dt.date,
    seed: int,
    mtime: dt.datetime | None = None,
    bad_rate: float = 0.0,
    empty_percent_rate: float = 0.0,
    duplicate_rate: float = 0.0,
) -> tuple[int, int]:
    """Write one SCD file (one row per id, random percent); returns (rows, bad rows).

    The fast path for benchmarks: ``write_scd_file(p, (veteran_participant_id(v)
    for v in range(1, 100_001)), day, seed)`` writes 100,000 rows in well under a
    second. ``mtime`` defaults to 06:00 UTC of ``decision_date`` + 1 day.
    """
    rng = random.Random(f"{seed}:scd:{path.name}")
    rows = bad = 0
    fh, w = _open_csv(path)
    if not (bad_rate or empty_percent_rate or duplicate_rate):
        # Fast path for benchmark-sized files: whole columns at once.
        ids = list(participant_ids)
        dates = [_mmddyyyy(decision_date - dt.timedelta(days=d)) for d in range(7)]
        with fh:
            w.writerow(SCD_HEADER)
            w.writerows(zip(ids, rng.choices(PERCENTS, k=len(ids)),
                            rng.choices(dates, k=len(ids)), strict=True))
        FileSystem().set_mtime(
            str(path), mtime or _file_mtime(decision_date + dt.timedelta(days=1)))
        return len(ids), 0
    with fh:
        w.writerow(SCD_HEADER)
        for pid in participant_ids:
            decided = decision_date - dt.timedelta(days=rng.randrange(0, 7))
            r = rng.random()
            percent = "" if r < empty_percent_rate else PERCENTS[rng.randrange(11)]
            w.writerow([pid, percent, _mmddyyyy(decided)])
            rows += 1
            if duplicate_rate and rng.random() < duplicate_rate:
                older = decided - dt.timedelta(days=rng.randrange(1, 30))
                w.writerow([pid, PERCENTS[rng.randrange(11)], _mmddyyyy(older)])
                rows += 1
            if bad_rate and rng.random() < bad_rate:
                w.writerow(_bad_scd_row(rng, pid, decided))
                rows += 1
                bad += 1
    FileSystem().set_mtime(str(path), mtime or _file_mtime(decision_date + dt.timedelta(days=1)))
    return rows, bad


def _bad_scd_row(rng: random.Random, pid: object, decided: dt.date) -> list[str]:
    kind = rng.randrange(3)
    if kind == 0:
        return ["", "50", _mmddyyyy(decided)]  # missing_key
    if kind == 1:
        return [str(pid), "50", decided.isoformat()]  # bad_date (not MMddyyyy)
    return [str(pid), "101", _mmddyyyy(decided)]  # bad_percent


def _baseline_percent(v: int, seed: int) -> str:
    return PERCENTS[(v * 2654435761 + seed) % 11]


def write_scd_day(
    out_dir: Path, day: dt.date, day_index: int, veterans: int, seed: int, rows: int | None = None,
    baseline_share: float = SCD_BASELINE_SHARE,
) -> tuple[str, int, int]:
    """Day 0: the baseline veterans; later days: ~2% of veterans with new decisions."""
    name = f"CPIDODIEX_{day:%Y%m%d}.csv"
    rng = random.Random(f"{seed}:scd-day:{day_index}")
    if day_index == 0:
        baseline = max(1, int(veterans * baseline_share))
        ids = (veteran_participant_id(v) for v in range(1, baseline + 1))
        n, bad = write_scd_file(out_dir / name, ids, day - dt.timedelta(days=1), seed,
                                mtime=_file_mtime(day), bad_rate=BAD_ROW_RATE,
                                empty_percent_rate=0.005)
        return name, n, bad
    k = rows if rows is not None else max(1, round(veterans * SCD_DAILY_RATE))
    chosen = rng.sample(range(1, veterans + 1), min(k, veterans))
    path = out_dir / name
    n = bad = 0
    fh, w = _open_csv(path)
    with fh:
        w.writerow(SCD_HEADER)
        for v in chosen:
            decided = day - dt.timedelta(days=rng.randrange(1, 10))
            roll = rng.random()
            if roll < 0.25:
                percent = _baseline_percent(v, seed)  # often unchanged
            elif roll < 0.255:
                percent = ""  # empty percent keeps the active value
            else:
                percent = PERCENTS[rng.randrange(11)]
            w.writerow([veteran_participant_id(v), percent, _mmddyyyy(decided)])
            n += 1
            if rng.random() < 0.005:  # same participant twice in one file
                older = decided - dt.timedelta(days=rng.randrange(1, 30))
                w.writerow([veteran_participant_id(v), PERCENTS[rng.randrange(11)],
                            _mmddyyyy(older)])
                n += 1
            if rng.random() < BAD_ROW_RATE:
                w.writerow(_bad_scd_row(rng, veteran_participant_id(v), decided))
                n += 1
                bad += 1
    FileSystem().set_mtime(str(path), _file_mtime(day))
    return name, n, bad


# --- CG files --------------------------------------------------------------------
_CG_STATUSES = ["Approved", "Pending Revocation/Discharge", "Revoked/Discharged", "Inactive"]


def _caregiver_static(c: int, veterans: int, seed: int) -> tuple[str, str]:
    """(full Veteran_ICN, Applicant_Type) of caregiver ``c``: fixed for its life."""
    v = (c * 7 + seed) % max(veterans, 1) + 1
    app = "Primary Caregiver" if (c * 31 + seed) % 100 < 70 else "Secondary Caregiver"
    return full_icn(veteran_icn(v), v), app


def _cg_row(
    rng: random.Random, c: int, veterans: int, seed: int, day: dt.date, status: str,
    begin: dt.date, end: dt.date | None,
) -> list[str]:
    vet_icn, app = _caregiver_static(c, veterans, seed)
    created = dt.datetime.combine(day - dt.timedelta(days=1), dt.time()) + dt.timedelta(
        seconds=rng.randrange(86_400)
    )
    revoked = end.isoformat() if end is not None and status == "Revoked/Discharged" else ""
    return [
        revoked,
        status,
        "005FAKEUSER000001",
        begin.isoformat(),
        f"500FAKE{c:010d}",
        app,
        created.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        vet_icn,
        end.isoformat() if end is not None else "",
        f"a0FAKE{c:010d}",
        f"CASE-FAKE-{c:08d}",
        full_icn(caregiver_icn(c), c),
    ]


def _cg_baseline(caregivers: int) -> int:
    return max(1, int(caregivers * (1 - CG_NEW_SHARE))) if caregivers else 0


def write_cg_day(
    out_dir: Path, day: dt.date, day_index: int, days: int, caregivers: int, veterans: int,
    seed: int,
) -> tuple[str, int, int]:
    """Day 0: the baseline caregivers; later days: arrivals plus ~2% status changes."""
    name = f"caregiver_extract_{day:%Y%m%d}.csv"
    rng = random.Random(f"{seed}:cg-day:{day_index}")
    baseline = _cg_baseline(caregivers)
    n = bad = 0
    path = out_dir / name
    fh, w = _open_csv(path)
    with fh:
        w.writerow(CG_HEADER)

        def emit(row: list[str]) -> None:
            nonlocal n, bad
            w.writerow(row)
            n += 1
            if rng.random() < BAD_ROW_RATE:
                broken = list(row)
                if rng.random() < 0.5:
                    broken[CG_HEADER.index("Caregiver_ICN__c")] = ""  # missing_key
                else:
                    broken[CG_HEADER.index("CreatedDate")] = "13/45/2025 25:00"  # bad_date
                w.writerow(broken)
                n += 1
                bad += 1

        if day_index == 0:
            arrivals: Iterable[int] = range(1, baseline + 1)
        else:
            spread = max(days - 1, 1)
            arrivals = (c for c in range(baseline + 1, caregivers + 1)
                        if 1 + (c % spread) == day_index)
        for c in arrivals:
            status = "Approved" if rng.random() < 0.9 else "Pending Revocation/Discharge"
            end = day + dt.timedelta(days=90) if status != "Approved" else None
            emit(_cg_row(rng, c, veterans, seed, day, status,
                         day - dt.timedelta(days=rng.randrange(1, 30)), end))
        if day_index > 0 and baseline:
            k = max(1, round(baseline * CG_DAILY_CHANGE_RATE))
            for c in rng.sample(range(1, baseline + 1), min(k, baseline)):
                status = _CG_STATUSES[rng.randrange(len(_CG_STATUSES))]
                end = {
                    "Approved": None,
                    "Pending Revocation/Discharge": day + dt.timedelta(days=30),
                    "Revoked/Discharged": day - dt.timedelta(days=1),
                    "Inactive": day - dt.timedelta(days=rng.randrange(1, 60)),
                }[status]
                emit(_cg_row(rng, c, veterans, seed, day, status,
                             day - dt.timedelta(days=rng.randrange(1, 5)), end))
    FileSystem().set_mtime(str(path), _file_mtime(day))
    return name, n, bad


def write_cg_seed(path: Path, caregivers: int, veterans: int, seed: int, start: dt.date) -> int:
    """The one-time CG baseline (rebuild only): half of the baseline caregivers."""
    rng = random.Random(f"{seed}:cg-seed")
    fh, w = _open_csv(path)
    n = 0
    with fh:
        w.writerow(SEED_HEADER)
        for c in range(1, _cg_baseline(caregivers) // 2 + 1):
            vet_icn, app = _caregiver_static(c, veterans, seed)
            begin = start - dt.timedelta(days=60 + rng.randrange(300))
            w.writerow([caregiver_icn(c), vet_icn[:10], app, "Approved", begin.isoformat(), ""])
            n += 1
    FileSystem().set_mtime(str(path), landing.UNDATED_MTIME)
    return n


# --- the whole data set --------------------------------------------------------------
def generate(
    out: Path,
    veterans: int,
    caregivers: int,
    days: int,
    start: dt.date,
    seed: int,
    spark: SparkSession,
    scd_rows_per_file: int | None = None,
    overwrite: bool = False,
    scd_baseline_share: float = SCD_BASELINE_SHARE,
) -> GeneratedSummary:
    """Write a landed state directory for N veterans and M caregivers over D days.

    Day 0 is a baseline (most veterans and caregivers), each later day a
    realistic delta (``scd_rows_per_file`` overrides the ~2% SCD delta size;
    ``scd_baseline_share=1.0`` puts every veteran in the first file). Files are
    stamped 06:00 UTC of their day. The landing marker is written so the
    fixtures are never landed on top. ``overwrite`` replaces the landing
    directory and the PT tables only, never product tables.
    """
    if veterans < 1 or caregivers < 0 or days < 1:
        raise ValueError("need veterans >= 1, caregivers >= 0 and days >= 1")
    out = Path(out)
    land = out / "landing"
    if land.exists() and any(land.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{land} is not empty; pass overwrite=True (--overwrite)")
        shutil.rmtree(land)
    scd_dir, cg_dir = land / "scd", land / "cg"
    scd_dir.mkdir(parents=True, exist_ok=True)
    cg_dir.mkdir(parents=True, exist_ok=True)

    scd_files, cg_files = [], []
    scd_rows = cg_rows = bad_rows = 0
    for i in range(days):
        day = start + dt.timedelta(days=i)
        name, n, bad = write_scd_day(scd_dir, day, i, veterans, seed, scd_rows_per_file,
                                     scd_baseline_share)
        scd_files.append(name)
        scd_rows, bad_rows = scd_rows + n, bad_rows + bad
        if caregivers:
            name, n, bad = write_cg_day(cg_dir, day, i, days, caregivers, veterans, seed)
            cg_files.append(name)
            cg_rows, bad_rows = cg_rows + n, bad_rows + bad
    seed_rows = write_cg_seed(land / "seed" / "caregivers_seed.csv", caregivers, veterans, seed,
                              start)

    for name, df in mvi_frames(spark, veterans, caregivers, seed).items():
        df.write.mode("overwrite").parquet((land / "mvi" / name).resolve().as_posix())
    for name, df in pt_frames(spark, veterans, seed).items():
        landing.write_pt_df(spark, out, name, df, mode="overwrite")
    (land / landing.MARKER).write_text("generated\n")
    log.info("generated %d SCD and %d CG files (%d + %d rows, %d bad) into %s",
             len(scd_files), len(cg_files), scd_rows, cg_rows, bad_rows, out)
    return GeneratedSummary(out, veterans, caregivers, days, start, seed, tuple(scd_files),
                            tuple(cg_files), scd_rows, cg_rows, seed_rows, bad_rows)

"""The synthetic generator: deterministic for a seed, the
landed layout and SPEC §2 columns, file modification times from the day."""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
from pathlib import Path

import pytest

from patronage.devtools import fixture_landing as landing
from patronage.devtools import synthetic as gen

START = dt.date(2025, 1, 6)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.csv"))


def _write_inbound(root: Path, seed: int) -> None:
    """The CSV half of ``generate`` (no Spark): three days of SCD and CG files + seed."""
    for i in range(3):
        day = START + dt.timedelta(days=i)
        gen.write_scd_day(root / "scd", day, i, veterans=200, seed=seed)
        gen.write_cg_day(root / "cg", day, i, days=3, caregivers=60, veterans=200, seed=seed)
    gen.write_cg_seed(root / "seed" / "caregivers_seed.csv", 60, 200, seed, START)


def test_inbound_files_are_deterministic_for_a_seed(tmp_path):
    _write_inbound(tmp_path / "a", seed=7)
    _write_inbound(tmp_path / "b", seed=7)
    _write_inbound(tmp_path / "c", seed=8)
    names = _files(tmp_path / "a")
    assert names == _files(tmp_path / "b") and len(names) == 7
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert mismatch == [] and errors == []
    _, mismatch_c, _ = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", names, shallow=False)
    assert mismatch_c  # another seed, other data


def test_daily_files_have_the_spec_headers_rates_and_mtimes(tmp_path):
    _write_inbound(tmp_path, seed=1)
    day1 = START + dt.timedelta(days=1)
    scd = tmp_path / "scd" / f"CPIDODIEX_{day1:%Y%m%d}.csv"
    with open(scd, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == gen.SCD_HEADER  # SPEC §2.1
    assert 4 <= len(rows) - 1 <= 8  # ~2% of 200 veterans, plus rare duplicates/bad rows
    baseline = tmp_path / "scd" / f"CPIDODIEX_{START:%Y%m%d}.csv"
    with open(baseline, newline="") as fh:
        assert sum(1 for _ in fh) - 1 >= int(200 * gen.SCD_BASELINE_SHARE)
    with open(tmp_path / "cg" / f"caregiver_extract_{START:%Y%m%d}.csv", newline="") as fh:
        cg_rows = list(csv.DictReader(fh))
    assert list(cg_rows[0]) == gen.CG_HEADER  # SPEC §2.2
    assert all(len(r["Caregiver_ICN__c"]) in (0, 17) for r in cg_rows)
    with open(tmp_path / "seed" / "caregivers_seed.csv", newline="") as fh:
        assert next(csv.reader(fh)) == gen.SEED_HEADER  # SPEC §2.2 seed
    for p in (tmp_path / "scd").iterdir():
        mtime = dt.datetime.fromtimestamp(p.stat().st_mtime, tz=dt.UTC).replace(tzinfo=None)
        assert mtime == landing.mtime_from_name(p.name)


def test_write_scd_file_writes_one_row_per_participant(tmp_path):
    ids = [gen.veteran_participant_id(v) for v in range(1, 1001)]
    path = tmp_path / "CPIDODIEX_20250301.csv"
    rows, bad = gen.write_scd_file(path, ids, dt.date(2025, 2, 28), seed=3)
    assert (rows, bad) == (1000, 0)
    with open(path, newline="") as fh:
        body = list(csv.reader(fh))[1:]
    assert [r[0] for r in body] == ids
    assert all(r[1] in gen.PERCENTS for r in body)
    assert all(dt.datetime.strptime(r[2], "%m%d%Y") for r in body)
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).replace(tzinfo=None)
    assert mtime == dt.datetime(2025, 3, 1, 6, 0)


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    summary = gen.generate(out, veterans=40, caregivers=10, days=2, start=START, seed=5,
                           spark=spark)
    return out, summary


@pytest.mark.spark
def test_generate_writes_a_landed_state_directory(generated, spark):
    out, summary = generated
    land = out / "landing"
    assert (land / landing.MARKER).exists()  # the runner never lands fixtures on top
    assert sorted(p.name for p in (land / "scd").iterdir()) == list(summary.scd_files)
    assert len(summary.scd_files) == len(summary.cg_files) == 2
    for name, schema in landing.MVI_SCHEMAS.items():
        df = spark.read.parquet((land / "mvi" / name).as_posix())
        assert df.schema.simpleString() == schema.simpleString()
    psa = spark.read.parquet((land / "mvi" / "psa").as_posix())
    corp = psa.where("MVITreatingFacilityInstitutionSID = 5667 AND ActiveMergedIdentifier"
                     " IS DISTINCT FROM 'Inactive'")
    assert corp.select("MVIPersonICN").distinct().count() == 40  # every veteran correlates
    for name in landing.PT_TABLES:
        detail = spark.sql(f"DESCRIBE DETAIL {landing.pt_fqn(name)}").first()
        assert detail["location"].removeprefix("file:") == landing.pt_location(out, name).as_posix()
        assert spark.table(landing.pt_fqn(name)).dtypes == [
            ("PTCPNT_VET_ID", "string"), ("PT_35_FLAG", "string")]


@pytest.mark.spark
def test_mvi_and_pt_sources_are_deterministic_for_a_seed(spark):
    def snapshot(seed: int):
        frames = {**gen.mvi_frames(spark, 30, 5, seed), **gen.pt_frames(spark, 30, seed)}
        union = None
        for name, df in frames.items():
            rows = df.selectExpr(f"'{name}' AS src", "to_json(struct(*)) AS j")
            union = rows if union is None else union.unionByName(rows)
        return sorted(tuple(r) for r in union.collect())

    first = snapshot(11)
    assert first == snapshot(11)
    assert first != snapshot(12)


@pytest.mark.spark
def test_generate_refuses_to_overwrite_without_being_asked(generated, spark):
    out, _ = generated
    with pytest.raises(FileExistsError):
        gen.generate(out, veterans=5, caregivers=1, days=1, start=START, seed=5, spark=spark)


def test_generate_command_parses_its_options():
    import argparse

    from patronage.commands import generate as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["generate", "--out", "x", "--veterans", "10", "--caregivers", "3", "--days", "2",
         "--start-date", "2025-02-03", "--seed", "9", "--scd-rows-per-file", "4"]
    )
    assert args.func is cmd.run
    assert (args.out, args.veterans, args.caregivers, args.days) == (Path("x"), 10, 3, 2)
    assert (args.start_date, args.seed, args.scd_rows_per_file) == (dt.date(2025, 2, 3), 9, 4)
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--start-date", "03/02/2025"])

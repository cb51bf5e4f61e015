"""Landing the bundled fixtures: discovery (SPEC §5) depends on
modification times, which a clone loses, so landing restores them from the names;
MVI becomes Parquet (SPEC §2.4) and PT becomes Delta tables (SPEC §2.3)."""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path

import pytest

from patronage.devtools import fixture_landing as landing
from patronage.fs import FileSystem

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).replace(tzinfo=None)


def _csv_rows(path: Path) -> int:
    with open(path, newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CPIDODIEX_20250106.csv", dt.datetime(2025, 1, 6, 6, 0, 0)),
        ("cpidodiex_20250113_143000.CSV", dt.datetime(2025, 1, 13, 14, 30, 0)),
        ("Caregiver_Extract_20250114_120000.CSV", dt.datetime(2025, 1, 14, 12, 0, 0)),
        ("caregiver_20250228.csv", dt.datetime(2025, 2, 28, 6, 0, 0)),
        ("CPIDODIEX_20250110.json", dt.datetime(2025, 1, 10, 6, 0, 0)),
        ("notes.txt", landing.UNDATED_MTIME),
        ("caregivers_seed.csv", landing.UNDATED_MTIME),
    ],
)
def test_modification_time_comes_from_the_date_and_time_in_the_name(name, expected):
    assert landing.mtime_from_name(name) == expected


def test_every_fixture_file_is_described_in_the_fixtures_readme():
    readme = (FIXTURES / "README.md").read_text()
    files = [p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md"]
    assert files
    missing = [str(p.relative_to(FIXTURES)) for p in files if p.name not in readme]
    assert missing == []


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory):
    state = tmp_path_factory.mktemp("landing-state")
    landing.land_fixtures(FIXTURES, state, spark)
    return state


@pytest.mark.spark
def test_inbound_files_are_copied_with_mtimes_from_their_names(landed):
    for source in ("scd", "cg", "seed"):
        src_files = sorted(p.name for p in (FIXTURES / source).iterdir())
        dest = landed / "landing" / source
        assert sorted(p.name for p in dest.iterdir()) == src_files
        for name in src_files:
            assert _mtime(dest / name) == landing.mtime_from_name(name), name
    assert _mtime(landed / "landing" / "scd" / "cpidodiex_20250113_143000.CSV") == dt.datetime(
        2025, 1, 13, 14, 30
    )


@pytest.mark.spark
def test_mvi_sources_are_parquet_with_the_spec_columns_and_types(landed, spark):
    for name, schema in landing.MVI_SCHEMAS.items():
        df = spark.read.parquet((landed / "landing" / "mvi" / name).as_posix())
        assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [
            (f.name, f.dataType.simpleString()) for f in schema.fields
        ]
        assert df.count() == _csv_rows(FIXTURES / "mvi" / f"{name}.csv")
    psa = spark.read.parquet((landed / "landing" / "mvi" / "psa").as_posix())
    assert dict(psa.dtypes)["CorrelationModifiedDateTime"] == "timestamp"
    assert dict(psa.dtypes)["MVITreatingFacilityInstitutionSID"] == "int"


@pytest.mark.spark
def test_pt_tables_are_external_delta_tables_in_the_state_directory(landed, spark):
    for name in landing.PT_TABLES:
        fqn = landing.pt_fqn(name)
        detail = spark.sql(f"DESCRIBE DETAIL {fqn}").first()
        assert detail["format"] == "delta"
        location = detail["location"].removeprefix("file:")
        assert location == landing.pt_location(landed, name).as_posix()
        df = spark.table(fqn)
        assert df.dtypes == [("PTCPNT_VET_ID", "string"), ("PT_35_FLAG", "string")]
        assert df.count() == _csv_rows(FIXTURES / "pt" / f"{name}.csv")
    # empty CSV fields are nulls (SPEC §2.3: null flags are ignored downstream)
    assert spark.table(landing.pt_fqn("pt_delta")).where("PT_35_FLAG IS NULL").count() == 1


@pytest.mark.spark
def test_landing_twice_does_nothing(landed, spark):
    probe = landed / "landing" / "scd" / "CPIDODIEX_20250106.csv"
    os.utime(probe, (0, 0))
    spark.sql(f"DROP TABLE {landing.pt_fqn('pt_seed')}")  # as in a new Spark session
    landing.land_fixtures(FIXTURES, landed, spark)
    try:
        assert probe.stat().st_mtime == 0
        # the marker path only registers the existing PT table again
        assert spark.table(landing.pt_fqn("pt_seed")).count() == _csv_rows(
            FIXTURES / "pt" / "pt_seed.csv")
    finally:
        FileSystem().set_mtime(str(probe), landing.mtime_from_name(probe.name))


@pytest.mark.spark
def test_land_later_adds_files_appends_pt_delta_and_replaces_mvi(landed, spark):
    landing.land_later(FIXTURES, landed, spark)
    later_scd = landed / "landing" / "scd" / "CPIDODIEX_20250310.csv"
    assert _mtime(later_scd) == dt.datetime(2025, 3, 10, 6, 0)
    assert spark.table(landing.pt_fqn("pt_delta")).count() == _csv_rows(
        FIXTURES / "pt" / "pt_delta.csv"
    ) + _csv_rows(FIXTURES / "later" / "pt" / "pt_delta_append.csv")
    psa = spark.read.parquet((landed / "landing" / "mvi" / "psa").as_posix())
    assert psa.count() == _csv_rows(FIXTURES / "mvi_later" / "psa.csv")

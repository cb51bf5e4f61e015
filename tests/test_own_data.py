"""A local run on one's own inputs: exactly those are read, the demo fixtures stay out.

One run of the real job through `patronage run` on a directory the test writes
(SCD and CG files with real modification times, MVI Parquet, the PT tables as
Delta paths), plus the refusals that keep demo and own data apart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest

from patronage import cli, config, pt_sources, runner
from patronage.devtools.fixture_landing import MARKER, MVI_SCHEMAS, PT_SCHEMA
from patronage.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = "2025-03-04"  # a Tuesday: no DMDC export, backup or EDIPI backfill due

SCD_HEADER = "PTCPNT_ID,CMBNED_DEGREE_DSBLTY,DSBL_DTR_DT\n"
CG_HEADER = (
    "Discharge_Revocation_Date__c,Caregiver_Status__c,CreatedById,Dispositioned_Date__c,"
    "CARMA_Case_ID__c,Applicant_Type__c,CreatedDate,Veteran_ICN__c,Benefits_End_Date__c,"
    "Caregiver_Id__c,CARMA_Case_Number__c,Caregiver_ICN__c\n"
)
CG_ROW = (
    ",Approved,005FAKEUSER000001,2025-03-01,500FAKECASE000101,Primary Caregiver,"
    "2025-03-02T09:00:00Z,3000000001V200001,,a0FAKECG000101,CASE-FAKE-00101,4000000001V100001\n"
)


def _at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, tzinfo=dt.UTC)


def write_inbound(path: Path, text: str, mtime: dt.datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def own_inputs(spark, base: Path) -> dict[str, str]:
    """A small delivery of one's own: the variables that point at it."""
    write_inbound(base / "scd" / "CPIDODIEX_20250302.csv",
                  SCD_HEADER + "8100001,70,02152025\n8100002,30,02162025\n", _at(2, 7))
    write_inbound(base / "scd" / "CPIDODIEX_20250303.csv",
                  SCD_HEADER + "8100003,50,02172025\n", _at(3, 8))
    write_inbound(base / "cg" / "caregiver_20250303.csv", CG_HEADER + CG_ROW, _at(3, 9))
    # Delivered after 00:00 of the run date: waits for a later run.
    write_inbound(base / "scd" / "CPIDODIEX_20250304.csv",
                  SCD_HEADER + "8100004,90,02182025\n", _at(4, 1))
    ts = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    mvi = {
        "psa": [(f"300000000{k}", 5667, f"810000{k}", "Active", ts) for k in (1, 2, 3)],
        "person": [(f"300000000{k}", "P", ts) for k in (1, 2, 3)],
        "institution": [(5667, "200CORP"), (6061, "200DOD")],
    }
    for name, rows in mvi.items():
        spark.createDataFrame(rows, MVI_SCHEMAS[name]).write.parquet(str(base / "mvi" / name))
    spark.createDataFrame([("8100001", "Y")], PT_SCHEMA).write.format("delta").save(
        str(base / "pt_seed"))
    spark.createDataFrame([("8100002", "Y")], PT_SCHEMA).write.format("delta").save(
        str(base / "pt_delta"))
    return {
        "inbound_scd_dir": str(base / "scd"),
        "inbound_cg_dir": str(base / "cg"),
        "cg_seed_file": str(base / "seed" / "caregivers_seed.csv"),
        "pt_seed_table": str(base / "pt_seed"),
        "pt_delta_table": str(base / "pt_delta"),
        "mvi_psa_dir": str(base / "mvi" / "psa"),
        "mvi_person_dir": str(base / "mvi" / "person"),
        "mvi_institution_dir": str(base / "mvi" / "institution"),
    }


def run_args(state: Path, schema: str, inputs: dict[str, str]) -> list[str]:
    out = ["run", "--bundle-dir", str(ROOT), "--state-dir", str(state), "--run-date", RUN_DATE,
           "--var", f"schema={schema}"]
    for name, value in inputs.items():
        out += ["--var", f"{name}={value}"]
    return out


@pytest.fixture(scope="module")
def own_run(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("own")
    inputs = own_inputs(spark, base / "data")
    state, schema = base / "state", "own_" + uuid.uuid4().hex[:8]
    summary = base / "summary.json"
    code = cli.main([*run_args(state, schema, inputs), "--summary-json", str(summary)])
    return code, json.loads(summary.read_text()), state, schema, inputs


# --------------------------------------------------------------------------- no Spark


@pytest.mark.parametrize("value", [
    "/data/pt_delta", "dbfs:/mnt/pt/pt_delta", "/Volumes/main/src/pt/delta",
    "abfss://pt@acct.dfs.core.windows.net/pt_delta", "relative/pt_delta",
])
def test_a_value_with_a_slash_is_a_delta_path(value):
    assert pt_sources.is_delta_path(value)
    assert pt_sources.parse("pt_delta_table", value) == value


@pytest.mark.parametrize("value", ["pt_delta", "src.pt_delta", "hive_metastore.src.pt_delta"])
def test_a_dotted_name_is_a_table(value):
    assert not pt_sources.is_delta_path(value)
    assert pt_sources.parse("pt_delta_table", value) == value


def test_a_pt_setting_that_is_neither_names_the_setting():
    with pytest.raises(ConfigError, match="'pt_seed_table' must be a table name .* or a Delta"):
        pt_sources.parse("pt_seed_table", "a.b.c.d")
    with pytest.raises(ConfigError, match="pt_delta_table"):
        config.settings_from_params({"pt_delta_table": "pt delta"} | {
            n: "x" for n in config.REQUIRED if n != "pt_delta_table"})


def _demo_refusal(tmp_path, capsys, args: list[str]) -> str:
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert sorted(p.name for p in (tmp_path / "state" / "runs").glob("*.json")) == []
    assert not (tmp_path / "state" / "landing").exists()
    return err


def test_overriding_only_some_inputs_is_refused_naming_the_demo_ones(tmp_path, capsys):
    args = run_args(tmp_path / "state", "own_part",
                    {"inbound_scd_dir": str(tmp_path / "scd"), "pt_delta_table": "/data/pt"})

    err = _demo_refusal(tmp_path, capsys, args)

    assert "your own inbound_scd_dir, pt_delta_table" in err
    assert ("inbound_cg_dir, cg_seed_file, pt_seed_table, mvi_psa_dir, mvi_person_dir, "
            "mvi_institution_dir still point(s) at the demo") in err


def test_own_inputs_on_a_demo_state_directory_are_refused(tmp_path, capsys):
    (tmp_path / "state" / "landing").mkdir(parents=True)
    (tmp_path / "state" / "landing" / MARKER).write_text("fixtures\n")
    inputs = {n: str(tmp_path / n) for n in runner.INPUT_VARIABLES}

    code = cli.main(run_args(tmp_path / "state", "own_demo", inputs))

    assert code == 2
    assert "holds the demo" in capsys.readouterr().err


def test_the_demo_on_an_own_inputs_state_directory_is_refused(tmp_path, capsys):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / runner.OWN_INPUTS_MARKER).write_text("own\n")

    err = _demo_refusal(tmp_path, capsys, run_args(tmp_path / "state", "demo_own", {}))

    assert "holds runs on your own inputs" in err


def test_giving_a_default_value_explicitly_is_still_the_demo(tmp_path):
    state = tmp_path / "state"
    default = runner.load_bundle(ROOT, "local", None, state)
    same = runner.load_bundle(ROOT, "local", {"pt_delta_table": default.variables[
        "pt_delta_table"]}, state)
    assert runner.check_local_inputs(same, state.resolve()) is True


# --------------------------------------------------------------------------- the run


@pytest.mark.spark
def test_a_local_run_on_own_inputs_lands_no_fixtures(own_run):
    code, summary, state, _, _ = own_run
    assert code == 0, summary
    assert not (state / "landing").exists()
    assert (state / runner.OWN_INPUTS_MARKER).exists()


@pytest.mark.spark
def test_the_target_holds_exactly_the_rows_of_the_supplied_files(spark, own_run):
    _, _, _, schema, inputs = own_run
    target = spark.table(f"spark_catalog.{schema}.patronage_unified")
    rows = sorted(
        (r["Batch_CD"], r["participant_id"] or r["ICN"], r["PT_Indicator"], r["filename"])
        for r in target.collect()
    )
    scd = Path(inputs["inbound_scd_dir"])
    assert rows == [
        ("CG", "4000000001", None, str(Path(inputs["inbound_cg_dir"]) / "caregiver_20250303.csv")),
        ("SCD", "8100001", "N", str(scd / "CPIDODIEX_20250302.csv")),  # seed is rebuild-only
        ("SCD", "8100002", "Y", str(scd / "CPIDODIEX_20250302.csv")),  # from the PT Delta path
        ("SCD", "8100003", "N", str(scd / "CPIDODIEX_20250303.csv")),
    ]
    ledger = spark.table(f"spark_catalog.{schema}.patronage_file_ledger")
    merged = {r["file_name"] for r in ledger.where("status = 'merged'").collect()}
    assert merged == {"CPIDODIEX_20250302.csv", "CPIDODIEX_20250303.csv",
                      "caregiver_20250303.csv"}


@pytest.mark.spark
def test_an_absent_pt_delta_path_fails_naming_the_setting(spark, tmp_path):
    src = pt_sources.source("pt_delta_table", str(tmp_path / "none"))
    assert not pt_sources.exists(spark, src)
    with pytest.raises(InputError, match="PT Delta path of setting 'pt_delta_table'"):
        pt_sources.read(spark, src)

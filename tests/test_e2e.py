"""End to end: the real job DAG from resources/, run by `patronage run` on the fixtures.

The expectations are fixtures/README.md's: phase 1 (run date 2025-03-01), a
rerun of the same day, phase 2 (2025-03-28, last Friday) — and on the way a
failed task repaired with `patronage repair`. Every step ends with
`patronage check`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest

from patronage import cli
from patronage.devtools.fixture_landing import land_later

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"

PHASE1_DMDC = (
    "7200000008CG    20250220                  \n"
    "7200000009CG    20250220          20250301\n"
    "7200000010CG    20250220          20250131\n"
    "7200000011CG    20250220          20250215\n"
    "7000000001SCD05020241220N 20250225        \n"
    "7000000014SCD10020250226Y 20250226        "
)
PHASE2_LAGGED = (
    "7200000014CG    20250221                  \n"
    "7000000015SCD06020250226N 20250226        "
)
PHASE2_DMDC = (
    "7000000003SCD09020241222Y 20250305        \n"
    "7000000004SCD06020241223Y 20250305        \n"
    "7000000005SCD02020241223Y 20241223        \n"
    "7000000006SCD02020241224N 20250306        "
)


class Env:
    """One local state directory and product schema, driven through the CLI."""

    def __init__(self, base: Path) -> None:
        self.state = base / "state"
        self.schema = "e2e_" + uuid.uuid4().hex[:8]
        self.summaries = base

    def common(self) -> list[str]:
        return ["--state-dir", str(self.state), "--var", f"schema={self.schema}",
                "--bundle-dir", str(ROOT)]

    def run(self, *args: str) -> tuple[int, dict]:
        out = self.summaries / f"summary-{uuid.uuid4().hex[:6]}.json"
        code = cli.main(["run", *self.common(), "--summary-json", str(out), *args])
        return code, json.loads(out.read_text())

    def repair(self) -> tuple[int, dict]:
        out = self.summaries / f"summary-{uuid.uuid4().hex[:6]}.json"
        code = cli.main(["repair", *self.common(), "--summary-json", str(out)])
        return code, json.loads(out.read_text())

    def check(self) -> int:
        return cli.main(["check", *self.common()])

    def sql(self, spark, query: str, **args):
        spark.sql(f"USE spark_catalog.`{self.schema}`")
        return spark.sql(query, args=args or None).collect()

    @property
    def export(self) -> Path:
        return self.state / "export"


def statuses(summary: dict) -> dict[str, str]:
    return {k: v["status"] for k, v in summary["tasks"].items()}


def snapshot(env: Env, spark) -> dict[str, int]:
    """Table versions of everything a rerun must leave alone."""
    out = {}
    for name in ("patronage_unified", "dmdc_checkpoint", "patronage_rejects"):
        out[name] = env.sql(spark, f"DESCRIBE HISTORY {name} LIMIT 1")[0]["version"]
    return out


@pytest.fixture(scope="module")
def env(spark, tmp_path_factory):
    return Env(tmp_path_factory.mktemp("e2e"))


def test_phase1_a_failed_export_is_repaired_with_the_same_run_id_and_facts(env, spark):
    # The export directory is blocked by a plain file: dmdc_export must fail.
    env.state.mkdir(parents=True, exist_ok=True)
    env.export.write_text("not a directory")
    code, first = env.run("--run-date", "2025-03-01", "--param", "force_dmdc_export=true")
    assert code != 0
    st = statuses(first)
    assert st["merge"] == "SUCCESS" and st["edipi_backfill"] == "SUCCESS"
    assert st["dmdc_export"] == "FAILED"
    assert st["finalize"] == "FAILED"  # it logs the run, then keeps the run failed
    log_row = env.sql(spark, "SELECT status, error_message FROM patronage_pipeline_log")
    assert [r["status"] for r in log_row] == ["FAILED"]
    assert "dmdc_export" in log_row[0]["error_message"]

    env.export.unlink()
    code, repaired = env.repair()
    assert code == 0, repaired
    assert repaired["run_id"] == first["run_id"]
    assert repaired["tasks"]["discover"]["values"] == first["tasks"]["discover"]["values"]
    assert {k for k, v in statuses(repaired).items() if v == "SUCCESS"} == set(st)
    log_row = env.sql(spark, "SELECT run_id, status FROM patronage_pipeline_log")
    assert [(r["run_id"], r["status"]) for r in log_row] == [(str(first["run_id"]), "SUCCESS")]
    assert env.check() == 0


def test_phase1_discovery_and_counts_match_the_fixtures_readme(env, spark):
    d = env.sql(spark, "SELECT value_json FROM patronage_task_values "
                "WHERE task_key = 'discover' AND name = 'scd_files'")
    assert {json.loads(r["value_json"]) for r in d} == {6}
    rows = env.sql(
        spark,
        "SELECT Batch_CD, count(*) AS n, count(DISTINCT coalesce(participant_id, "
        "concat_ws('|', ICN, Veteran_ICN, Applicant_Type))) AS keys, "
        "sum(CASE WHEN RecordStatus THEN 1 ELSE 0 END) AS active "
        "FROM patronage_unified GROUP BY Batch_CD ORDER BY Batch_CD",
    )
    assert [(r["Batch_CD"], r["n"], r["active"]) for r in rows] == [("CG", 17, 15), ("SCD", 15, 13)]
    rejects = env.sql(
        spark, "SELECT source, reason_code, count(*) AS n FROM patronage_rejects "
        "GROUP BY source, reason_code ORDER BY source, reason_code",
    )
    assert [(r["source"], r["reason_code"], r["n"]) for r in rejects] == [
        ("CG", "bad_date", 3), ("CG", "missing_key", 1),
        ("SCD", "bad_date", 1), ("SCD", "bad_percent", 2), ("SCD", "identity_unresolved", 2),
        ("SCD", "missing_key", 1),
    ]
    rejected_files = env.sql(
        spark, "SELECT DISTINCT file_name FROM patronage_file_ledger WHERE status = 'rejected'"
    )
    assert sorted(r["file_name"] for r in rejected_files) == [
        "CPIDODIEX_20250120.csv", "caregiver_20250121.csv",
    ]
    active = env.sql(
        spark,
        "SELECT SC_Combined_Disability_Percentage AS pct, PT_Indicator AS pt, Status_Begin_Date "
        "AS b, Status_Last_Update AS u, edipi, RecordChangeStatus AS s FROM patronage_unified "
        "WHERE RecordStatus AND participant_id = :p",
        p="9000001",
    )
    assert [tuple(r) for r in active] == [
        ("050", "N", "20241220", "20250225", "7000000001", "Updated Record")
    ]


def test_phase1_dmdc_file_and_checkpoint_are_byte_exact(env, spark):
    assert (env.export / "PATRONAGE_20250301.txt").read_bytes() == PHASE1_DMDC.encode()
    cp = env.sql(spark, "SELECT filename, record_count FROM dmdc_checkpoint")
    assert [(Path(r["filename"]).name, r["record_count"]) for r in cp] == [
        ("PATRONAGE_20250301.txt", 6)
    ]
    assert not list(env.export.glob("LAGGED_*"))
    assert (env.state / "backups").is_dir()


def test_rerunning_the_same_day_changes_no_table_and_writes_no_file(env, spark):
    before = snapshot(env, spark)
    files = {p.name: p.stat().st_mtime_ns for p in env.export.iterdir()}
    code, again = env.run("--run-date", "2025-03-01", "--param", "force_dmdc_export=true")
    assert code == 0, again
    assert again["tasks"]["discover"]["values"]["scd_files"] == 0
    assert again["tasks"]["dmdc_export"]["values"]["triggered"] is False
    assert snapshot(env, spark) == before
    assert {p.name: p.stat().st_mtime_ns for p in env.export.iterdir()} == files
    assert env.check() == 0


def test_phase2_late_file_pt_changes_identity_fallback_backfill_and_export(env, spark):
    land_later(FIXTURES, env.state, spark)
    code, summary = env.run("--run-date", "2025-03-28")
    assert code == 0, summary
    disc = summary["tasks"]["discover"]["values"]
    assert (disc["scd_files"], disc["cg_files"], disc["late_files"]) == (1, 0, 1)
    late = env.sql(spark, "SELECT file_name FROM patronage_file_ledger WHERE status = 'late'")
    assert {r["file_name"] for r in late} == {"CPIDODIEX_20250225.csv"}

    got = env.sql(
        spark,
        "SELECT participant_id AS p, SC_Combined_Disability_Percentage AS pct, PT_Indicator AS pt,"
        " Status_Last_Update AS u, ICN, edipi, change_log FROM patronage_unified "
        "WHERE RecordStatus AND participant_id IN ('9000003','9000004','9000005','9000006') "
        "ORDER BY participant_id",
    )
    assert [(r["p"], r["pct"], r["pt"], r["u"], r["ICN"], r["edipi"]) for r in got] == [
        ("9000003", "090", "Y", "20250305", "1000000003", "7000000003"),
        ("9000004", "060", "Y", "20250305", "1000000004", "7000000004"),
        ("9000005", "020", "Y", "20241223", "1000000005", "7000000005"),  # PT-driven
        ("9000006", "020", "N", "20250306", "1000000006", "7000000006"),  # identity fallback
    ]
    assert got[2]["change_log"] == "PT_Indicator old value: N changed to new value: Y"

    assert (env.export / "LAGGED_EDIPI_PATRONAGE_20250328.txt").read_bytes() == (
        PHASE2_LAGGED.encode()
    )
    assert (env.export / "PATRONAGE_20250328.txt").read_bytes() == PHASE2_DMDC.encode()
    counts = env.sql(spark, "SELECT Batch_CD, count(*) AS n FROM patronage_unified "
                     "GROUP BY Batch_CD ORDER BY Batch_CD")
    assert [(r["Batch_CD"], r["n"]) for r in counts] == [("CG", 17), ("SCD", 19)]
    assert env.check() == 0

    logs = env.sql(spark, "SELECT status FROM patronage_pipeline_log ORDER BY run_timestamp_utc")
    assert [r["status"] for r in logs] == ["SUCCESS", "SUCCESS", "SUCCESS"]


def test_rerunning_phase2_day_changes_nothing(env, spark):
    before = snapshot(env, spark)
    files = {p.name: p.stat().st_mtime_ns for p in env.export.iterdir()}
    code, again = env.run("--run-date", "2025-03-28")
    assert code == 0, again
    assert again["tasks"]["edipi_backfill"]["values"]["rows_updated"] == 0
    assert snapshot(env, spark) == before
    assert {p.name: p.stat().st_mtime_ns for p in env.export.iterdir()} == files



def test_status_shows_the_last_runs_the_last_export_and_what_is_due(env, spark, capsys):
    capsys.readouterr()
    args = ["status", *env.common(), "--runs", "3", "--as-of", "2025-03-28"]
    assert cli.main([*args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    runs = report["tables"]["runs"]
    # Four runs so far (phase 1, its rerun, phase 2, its rerun): the newest three.
    assert [r["run_date"] for r in runs] == ["2025-03-28", "2025-03-28", "2025-03-01"]
    assert {r["status"] for r in runs} == {"SUCCESS"}
    phase2 = runs[1]
    assert phase2["files"] == {"SCD": {"discovered": 1, "merged": 1, "refused": 0},
                               "CG": {"discovered": 0, "merged": 0, "refused": 0}}
    assert phase2["late_files"] == 1
    merged = env.sql(spark, "SELECT name, value_json FROM patronage_task_values WHERE run_id = :r "
                     "AND task_key = 'merge' AND name LIKE '%_scd'", r=phase2["run_id"])
    by_merge = {r["name"].removesuffix("_scd"): json.loads(r["value_json"]) for r in merged}
    assert phase2["rows"]["SCD"] == {k: by_merge[k] for k in ("new", "updated", "expired")}
    assert phase2["rows"]["SCD"]["updated"] > 0  # phase 2 updates participants, adds none
    assert all(e["status"] == "SUCCESS" and e["duration_seconds"] > 0
               for e in phase2["tasks"].values())
    assert runs[0]["files"]["SCD"] == {"discovered": 0, "merged": 0, "refused": 0}
    assert runs[2]["rejects_by_reason"] == {}  # the rerun of phase 1 read no file
    assert report["tables"]["dmdc"]["file"] == "PATRONAGE_20250328.txt"
    assert report["tables"]["dmdc"]["record_count"] == 4
    assert report["schedule"] == {
        "dmdc_export": {"rule": "Wednesdays and Fridays", "due_today": True, "next": "2025-04-02"},
        "edipi_backfill": {"rule": "last Friday of the month", "due_today": True,
                           "next": "2025-04-25"},
        "backup": {"rule": "first day of the month", "due_today": False, "next": "2025-04-01"},
    }  # fmt: skip

    assert cli.main([*args, "--runs", "5"]) == 0
    text = capsys.readouterr().out
    assert "Last 4 run(s) in spark_catalog." in text
    assert "bad_date 4, bad_percent 2, identity_unresolved 2, missing_key 2" in text  # phase 1
    assert "Last DMDC export: PATRONAGE_20250328.txt with 4 records" in text
    ids = env.sql(spark, "SELECT ICN, edipi, participant_id FROM patronage_unified")
    identifiers = {v for r in ids for v in r if v}
    assert identifiers and not identifiers & set(text.replace("/", " ").split())


def test_every_dashboard_query_and_widget_runs_on_the_tables_the_pipeline_wrote(env, spark):
    """The operations dashboard (resources/*.lvdash.json) on the real schema.

    Its datasets name tables without catalog or schema, as the bundle's
    dataset_catalog/dataset_schema expect; USE does the same here.
    """
    dashboard = json.loads((ROOT / "resources" / "patronage_operations.lvdash.json").read_text())
    spark.sql(f"USE spark_catalog.`{env.schema}`")
    queries = {d["name"]: "".join(d["queryLines"]) for d in dashboard["datasets"]}
    rows = {name: spark.sql(query).collect() for name, query in queries.items()}
    # After two phases every view has something to show, refused files included
    # (the fixtures carry a file with a wrong header).
    assert {name for name, found in rows.items() if not found} == set()
    by_source = {r["source"]: r["active_rows"] for r in rows["active_rows_by_source"]}
    assert set(by_source) == {"SCD", "CG"}

    for page in dashboard["pages"]:
        for item in page["layout"]:
            for query in (q["query"] for q in item["widget"].get("queries", [])):
                fields = query["fields"]
                select = ", ".join(f"{f['expression']} AS `{f['name']}`" for f in fields)
                dims = [f["expression"] for f in fields if "(" not in f["expression"]]
                # The widget's query over its dataset, as the dashboard runs it.
                sql = f"SELECT {select} FROM ({queries[query['datasetName']]}) AS dataset"
                if not query["disaggregated"] and dims:
                    sql += " GROUP BY " + ", ".join(dims)
                spark.sql(sql).collect()  # the dashboard's own text, no data values


# --------------------------------------------------------------------------- reject policy
# The same fixtures with the policy that deployed targets use (the local target
# only reports, as its fixtures refuse files on purpose).

STRICT = ("--var", "reject_policy=fail")


@pytest.fixture(scope="module")
def strict(spark, tmp_path_factory):
    return Env(tmp_path_factory.mktemp("e2e_strict"))


def finalize_error(summary: dict) -> str:
    return str(summary["tasks"]["finalize"]["values"]["task_error"])


def test_refused_and_over_threshold_files_fail_the_run_after_all_good_data_landed(strict, spark):
    code, summary = strict.run(*STRICT, "--run-date", "2025-03-01",
                               "--param", "force_dmdc_export=true")  # fmt: skip
    assert code != 0
    st = statuses(summary)
    assert st.pop("finalize") == "FAILED" and set(st.values()) == {"SUCCESS"}
    # Every good row landed and every scheduled output was made, as in phase 1.
    assert (strict.export / "PATRONAGE_20250301.txt").read_bytes() == PHASE1_DMDC.encode()
    counts = strict.sql(spark, "SELECT Batch_CD, count(*) AS n FROM patronage_unified "
                        "GROUP BY Batch_CD ORDER BY Batch_CD")  # fmt: skip
    assert [(r["Batch_CD"], r["n"]) for r in counts] == [("CG", 17), ("SCD", 15)]
    assert (strict.state / "backups").is_dir()

    (row,) = strict.sql(spark, "SELECT status, error_message FROM patronage_pipeline_log")
    assert row["status"] == "FAILED"
    breaches = summary["tasks"]["finalize"]["values"]["reject_policy_breaches"]
    fired = {(b.split(": ", 1)[0], b.rsplit("[rule ", 1)[1].rstrip("]")) for b in breaches}
    assert fired == {
        ("SCD file CPIDODIEX_20250120.csv", "refused_file"),  # wrong header
        ("CG file caregiver_20250121.csv", "refused_file"),
        ("SCD file CPIDODIEX_20250106.csv", "rejected_rows"),  # 2 of 13 rows
        ("SCD file CPIDODIEX_20250106.csv", "identity_unresolved"),  # 2 of 13 rows
        ("SCD file cpidodiex_20250113_143000.CSV", "rejected_rows"),  # 2 of 6
        ("CG file caregiver_20250107.csv", "rejected_rows"),  # 2 of 6
        ("CG file Caregiver_Extract_20250114_120000.CSV", "rejected_rows"),  # 2 of 8
    }
    msg = row["error_message"]
    assert "SCD file CPIDODIEX_20250106.csv: 2 rows rejected of 13 data rows" in msg
    assert "rejects: bad_date 1, identity_unresolved 2, missing_key 1" in msg
    assert "CPIDODIEX_20250120.csv: refused as a whole (" in msg
    assert "reject policy" in finalize_error(summary)
    assert strict.check() == 0


def test_a_repair_of_the_refused_run_fails_again_and_duplicates_nothing(strict, spark):
    before = snapshot(strict, spark)
    rejects = strict.sql(spark, "SELECT count(*) AS n FROM patronage_rejects")[0]["n"]
    code, repaired = strict.repair()
    assert code != 0 and statuses(repaired)["finalize"] == "FAILED"
    assert snapshot(strict, spark) == before
    assert strict.sql(spark, "SELECT count(*) AS n FROM patronage_rejects")[0]["n"] == rejects
    logs = strict.sql(spark, "SELECT status FROM patronage_pipeline_log")
    assert [r["status"] for r in logs] == ["FAILED"]


def test_an_identity_jump_fails_its_day_once_and_the_next_day_succeeds(strict, spark):
    land_later(FIXTURES, strict.state, spark)
    # Four participants MVI does not know: every row of the file is unresolved.
    jump = strict.state / "landing" / "scd" / "CPIDODIEX_20250311.csv"
    jump.write_text("PTCPNT_ID,CMBNED_DEGREE_DSBLTY,DSBL_DTR_DT\n"
                    + "".join(f"90000{n},50,03052025\n" for n in (50, 51, 52, 53)))  # fmt: skip
    stamp = dt.datetime(2025, 3, 11, 6, tzinfo=dt.UTC).timestamp()
    os.utime(jump, (stamp, stamp))

    code, day = strict.run(*STRICT, "--run-date", "2025-03-28")
    assert code != 0
    breaches = day["tasks"]["finalize"]["values"]["reject_policy_breaches"]
    # Only the new file: the files refused on 2025-03-01 alerted then, not again.
    assert len(breaches) == 1 and breaches[0].startswith(
        "SCD file CPIDODIEX_20250311.csv: 4 changes without ICN of 4 data rows"
    )
    assert breaches[0].endswith("[rule identity_unresolved]")
    assert (strict.export / "PATRONAGE_20250328.txt").read_bytes() == PHASE2_DMDC.encode()

    code, next_day = strict.run(*STRICT, "--run-date", "2025-03-29")
    assert code == 0, next_day
    logs = strict.sql(spark, "SELECT status FROM patronage_pipeline_log ORDER BY run_timestamp_utc")
    assert [r["status"] for r in logs] == ["FAILED", "FAILED", "SUCCESS"]
    assert strict.check() == 0

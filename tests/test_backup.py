"""SPEC §9.3 backups and the restore command: full, independent, verified copies."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from conftest import task_argv
from patronage import tables as t
from patronage.commands import restore as restore_cmd
from patronage.repositories.task_values import RunState
from patronage.stages import backup
from patronage.task import run_stage

pytestmark = pytest.mark.spark

RUN_DATE = "2026-12-01"  # first of the month


def target_row(key: str, created: dt.datetime, *, batch="SCD", edipi=None, active=True) -> tuple:
    values = {c: None for c in t.TARGET_COLUMNS}
    values.update(
        ICN=f"ICN{key}", participant_id=key if batch == "SCD" else None, Batch_CD=batch,
        edipi=edipi, SC_Combined_Disability_Percentage="070", PT_Indicator="N",
        SDP_Event_Created_Timestamp=created, filename=f"/in/{key}.csv",
        RecordLastUpdated=created.date(), RecordStatus=active, sentToDoD=not active,
        RecordChangeStatus="New Record" if active else "Expired Record",
    )
    return tuple(values[c] for c in t.TARGET_COLUMNS)


def load_target(spark, tables, rows: list[tuple]) -> None:
    tables.append(t.PATRONAGE_UNIFIED, spark.createDataFrame(rows, t.TARGET_SCHEMA))


def seed_tables(spark, tables) -> None:
    load_target(spark, tables, [
        target_row("1", dt.datetime(2026, 11, 2, 5)),
        target_row("2", dt.datetime(2026, 11, 3, 5), edipi="E2"),
        target_row("3", dt.datetime(2026, 11, 4, 5), batch="CG", active=False),
    ])
    ts = dt.datetime(2026, 11, 27)
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(
        [(ts, "PATRONAGE_20261127.txt", 2, "q", "h", "r1", ts)], t.CHECKPOINT_SCHEMA))
    log_row = (("r1", ts, "update", "SUCCESS", None, 1.5) + ("{}",) * 10)
    tables.append(t.PIPELINE_LOG, spark.createDataFrame([log_row], t.PIPELINE_LOG_SCHEMA))


def run_backup(spark, tables, base, *, due: bool, run_id: str = "1001") -> dict:
    RunState(tables, run_id).publish("discover", {"run_date": RUN_DATE, "backup_due": due})
    return run_stage("backup", backup.run,
                     task_argv(tables.schema, base, run_date=RUN_DATE, run_id=run_id),
                     spark=spark)  # fmt: skip


def sorted_rows(df) -> list:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_checksum_is_order_independent_and_tells_null_positions_apart(spark):
    schema = "a string, b string"
    one = backup.fingerprint(spark.createDataFrame([("x", None), ("y", "z")], schema))
    same_rows_other_order = backup.fingerprint(
        spark.createDataFrame([("y", "z"), ("x", None)], schema))
    null_moved = backup.fingerprint(spark.createDataFrame([(None, "x"), ("y", "z")], schema))
    assert one == same_rows_other_order
    assert one.rows == null_moved.rows and one.checksum != null_moved.checksum


def test_backup_not_due_copies_nothing(spark, tables, tmp_path):
    values = run_backup(spark, tables, tmp_path, due=False)
    assert values["triggered"] is False
    assert not (tmp_path / "backups").exists()


def test_backup_copies_the_three_tables_verified_independent_and_replaces_the_previous(
    spark, tables, tmp_path
):
    seed_tables(spark, tables)
    source_target = sorted_rows(tables.read(t.PATRONAGE_UNIFIED))

    values = run_backup(spark, tables, tmp_path, due=True)

    assert values["triggered"] is True
    assert set(values["tables"]) == {t.PATRONAGE_UNIFIED, t.DMDC_CHECKPOINT, t.PIPELINE_LOG}
    figures = values["tables"][t.PATRONAGE_UNIFIED]
    path = f"{tmp_path}/backups/{t.PATRONAGE_UNIFIED}"
    assert figures["path"] == path
    assert figures["rows"] == 3
    assert figures["source_version"] == tables.version(t.PATRONAGE_UNIFIED)
    assert values["tables"][t.DMDC_CHECKPOINT]["rows"] == 1
    assert values["tables"][t.PIPELINE_LOG]["rows"] == 1
    copy = backup.read_backup(spark, path)
    assert sorted_rows(copy) == source_target
    assert backup.fingerprint(copy).checksum == figures["checksum"]

    # Independent: changing the source leaves the copy as it was.
    tables.delta(t.PATRONAGE_UNIFIED).delete("participant_id = '1'")
    assert sorted_rows(backup.read_backup(spark, path)) == source_target

    # A repair of the run, or a new run of the same run date, copies nothing and
    # writes nothing; the repair publishes the figures of the copies its run made.
    from delta.tables import DeltaTable

    versions = DeltaTable.forPath(spark, path).history(1).select("version").collect()
    repair = run_backup(spark, tables, tmp_path, due=True)
    assert repair["triggered"] is True
    assert repair["tables"][t.PATRONAGE_UNIFIED]["checksum"] == figures["checksum"]
    rerun = run_backup(spark, tables, tmp_path, due=True, run_id="1002")
    assert (rerun["triggered"], rerun["reason"]) == (False, "already backed up")
    assert DeltaTable.forPath(spark, path).history(1).select("version").collect() == versions
    assert sorted_rows(backup.read_backup(spark, path)) == source_target

    # Next month's backup replaces the copy with the then-current state.
    again = backup.backup_table(tables, f"{tmp_path}/backups", t.PATRONAGE_UNIFIED)
    assert again["rows"] == 2
    assert backup.fingerprint(backup.read_backup(spark, path)).rows == 2


def ledger_event(path: str, source: str, mtime: dt.datetime, status: str,
                 recorded: dt.datetime) -> tuple:
    return (path, path.rsplit("/", 1)[-1], source, 10, mtime, "r", "update", status, None, 1,
            None, None, None, None, recorded)


def test_restore_round_trip_replaces_the_table_and_reopens_files_merged_after_the_backup(
    spark, tables, tmp_path
):
    seed_tables(spark, tables)
    backup_dir = f"{tmp_path}/backups"
    taken = backup.backup_table(tables, backup_dir, t.PATRONAGE_UNIFIED)
    # After the backup: a later SCD file is merged and a row is lost to corruption.
    load_target(spark, tables, [target_row("4", dt.datetime(2026, 11, 20, 5))])
    tables.delta(t.PATRONAGE_UNIFIED).delete("participant_id = '2'")
    rec = dt.datetime(2026, 11, 21)
    tables.append(t.FILE_LEDGER, spark.createDataFrame([
        ledger_event("/in/old.csv", "SCD", dt.datetime(2026, 11, 3, 5), "merged", rec),
        ledger_event("/in/new.csv", "SCD", dt.datetime(2026, 11, 20, 5), "merged", rec),
        ledger_event("/in/cg_new.csv", "CG", dt.datetime(2026, 11, 20, 5), "merged", rec),
        ledger_event("/in/bad.csv", "SCD", dt.datetime(2026, 11, 20, 6), "rejected", rec),
    ], t.LEDGER_SCHEMA))

    result = restore_cmd.restore(tables, backup_dir, t.PATRONAGE_UNIFIED, "restore-1")

    restored = tables.read(t.PATRONAGE_UNIFIED)
    assert backup.fingerprint(restored) == backup.Fingerprint(taken["rows"], taken["checksum"])
    assert result["rows"] == 3 and result["checksum"] == taken["checksum"]
    detail = tables.delta(t.PATRONAGE_UNIFIED).detail().select("partitionColumns").collect()
    assert detail[0][0] == list(t.SPECS[t.PATRONAGE_UNIFIED].partition_by)
    # Files merged after the backup's newest timestamp of their source are superseded,
    # so the next update run applies them again; older and rejected files are not.
    superseded = tables.read(t.FILE_LEDGER).where("status = 'superseded'").collect()
    assert sorted(r["path"] for r in superseded) == ["/in/cg_new.csv", "/in/new.csv"]
    assert {r["run_id"] for r in superseded} == {"restore-1"}
    assert result["reopened_files"] == 2


def test_restore_command_refuses_without_confirmation(spark, tables, tmp_path, monkeypatch,
                                                      capsys):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)

    def must_not_resolve(*_a, **_k):
        raise AssertionError("nothing may be touched before confirmation")

    monkeypatch.setattr(restore_cmd, "resolve", must_not_resolve)
    args = argparse.Namespace(table=t.PATRONAGE_UNIFIED, yes=False)
    assert restore_cmd.main(args) == 1
    assert "aborted" in capsys.readouterr().err


def test_restore_command_with_yes_restores_and_says_what_to_run_next(
    spark, tables, tmp_path, monkeypatch, capsys
):
    from conftest import task_argv as argv
    from patronage import config

    settings = config.settings_from_argv(argv(tables.schema, tmp_path))
    tables.append(t.DMDC_CHECKPOINT, spark.createDataFrame(
        [(dt.datetime(2026, 11, 27), "PATRONAGE_20261127.txt", 2, "q", "h", "r1",
          dt.datetime(2026, 11, 27))], t.CHECKPOINT_SCHEMA))
    backup.backup_table(tables, settings.backup_dir, t.DMDC_CHECKPOINT)
    tables.delta(t.DMDC_CHECKPOINT).delete()
    monkeypatch.setattr(restore_cmd, "resolve", lambda _args, _run_id: (settings, spark))

    code = restore_cmd.main(argparse.Namespace(table=t.DMDC_CHECKPOINT, yes=True))

    out = capsys.readouterr().out
    assert code == 0
    assert "restored dmdc_checkpoint" in out and "1 rows" in out
    assert "patronage run" in out
    assert tables.read(t.DMDC_CHECKPOINT).count() == 1

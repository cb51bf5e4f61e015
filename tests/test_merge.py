"""SPEC §8 (SCD Type 2 apply) and §11 (rebuild) through the merge stage.

Staging rows are built here directly (as ingest would write them), so these
tests exercise merge alone.
"""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from patronage import delta_log, scd2
from patronage import tables as t
from patronage.repositories import ledger
from patronage.repositories.staging import Staging
from patronage.stages import merge
from patronage.task import run_stage

pytestmark = pytest.mark.spark

TS0 = dt.datetime(2025, 1, 10, 8, 0, 0)


def ts(day: int, hour: int = 6) -> dt.datetime:
    return dt.datetime(2025, 2, day, hour, 0, 0)


def version(
    batch: str, *, ts_: dt.datetime, status: str = "New Record", active: bool = True, **cols
) -> dict:
    """One row as ingest stages it / as the target holds it."""
    row = dict.fromkeys(t.TARGET_COLUMNS)
    row.update(
        Batch_CD=batch,
        SDP_Event_Created_Timestamp=ts_,
        filename=f"/in/{batch}_{ts_:%Y%m%d%H}.csv",
        RecordLastUpdated=ts_.date(),
        RecordStatus=active,
        sentToDoD=not active,
        RecordChangeStatus=status,
        change_log="",
    )
    row.update(cols)
    return row


def scd(pid: str, *, icn: str, pct: str = "050", pt: str = "N", **kw) -> dict:
    return version(
        "SCD",
        participant_id=pid,
        ICN=icn,
        SC_Combined_Disability_Percentage=pct,
        PT_Indicator=pt,
        **kw,
    )


def cg(
    icn: str, vet: str | None, applicant: str | None, *, status_: str = "Approved", **kw
) -> dict:
    return version(
        "CG",
        ICN=icn,
        Veteran_ICN=vet,
        Applicant_Type=applicant,
        Caregiver_Status=status_,
        **kw,
    )


def put_target(tables, rows: list[dict]) -> None:
    tables.append(t.PATRONAGE_UNIFIED, tables.spark.createDataFrame(rows, t.TARGET_SCHEMA))


def stage(tables, run_id: str, rows: list[tuple[int, dict]]) -> None:
    """Stage (file_order, row) pairs for the run, SCD and CG into their tables."""
    for name, batch in ((t.STAGING_SCD, "SCD"), (t.STAGING_CG, "CG")):
        data = [
            {**r, "run_id": run_id, "file_order": fo} for fo, r in rows if r["Batch_CD"] == batch
        ]
        if data:
            tables.append(name, tables.spark.createDataFrame(data, t.STAGING_SCHEMA))


def ledger_event(
    path: str, source: str, run_id: str, status: str, order: int, at: dt.datetime
) -> dict:
    return dict(
        path=path,
        file_name=path.rsplit("/", 1)[-1],
        source=source,
        size=100,
        modification_time=dt.datetime(2025, 2, order, 1),
        run_id=run_id,
        processing_mode="update",
        status=status,
        reason=None,
        file_order=order,
        raw_rows=10,
        valid_rows=9,
        rejected_rows=1,
        staged_rows=order,
        recorded_at=at,
    )


def add_ledger(tables, events: list[dict]) -> None:
    tables.append(t.FILE_LEDGER, tables.spark.createDataFrame(events, t.LEDGER_SCHEMA))


def latest_status(tables) -> dict[str, str]:
    rows = ledger.latest_events(tables.read(t.FILE_LEDGER)).collect()
    return {r["path"]: r["status"] for r in rows}


def run_merge(tables, run_id: str, **params: str) -> dict:
    argv = {
        "run_id": run_id,
        "catalog": tables.catalog,
        "schema": tables.schema,
        "inbound_scd_dir": "/in/scd",
        "inbound_cg_dir": "/in/cg",
        "cg_seed_file": "/in/seed.csv",
        "pt_seed_table": "src.pt_seed",
        "pt_delta_table": "src.pt_delta",
        "mvi_psa_dir": "/mvi/psa",
        "mvi_person_dir": "/mvi/person",
        "mvi_institution_dir": "/mvi/inst",
        "export_dir": "/out",
        "backup_dir": "/bak",
        **params,
    }
    return run_stage(
        "merge", merge.run, [f"--{k}={v}" for k, v in argv.items()], spark=tables.spark
    )


def target_rows(tables) -> list[dict]:
    df = tables.read(t.PATRONAGE_UNIFIED)
    return [
        r.asDict()
        for r in df.orderBy(
            "Batch_CD", "participant_id", "ICN", "Veteran_ICN", "SDP_Event_Created_Timestamp"
        ).collect()
    ]


def merge_commits(tables, run_id: str) -> int:
    hist = tables.delta(t.PATRONAGE_UNIFIED).history()
    return hist.where(F.col("userMetadata") == merge.merge_marker(run_id)).count()


def test_spec8_change_expires_active_row_and_inserts_new_version(tables):
    put_target(
        tables,
        [
            scd("P1", icn="1000000001", pct="050", ts_=TS0),
            cg("2000000001", None, "Primary Caregiver", ts_=TS0),
            cg("2000000002", "3000000002", "Primary Caregiver", ts_=TS0),
        ],
    )
    stage(
        tables,
        "r1",
        [
            (
                1,
                cg(
                    "2000000001",
                    None,
                    "Primary Caregiver",
                    status_="Revoked",
                    ts_=ts(2, 9),
                    status="Updated Record",
                ),
            ),
            (1, scd("P1", icn="1000000001", pct="070", ts_=ts(3, 10), status="Updated Record")),
            (1, scd("P2", icn="1000000002", ts_=ts(3, 10))),
        ],
    )
    add_ledger(
        tables,
        [
            ledger_event("/in/cg/caregiver_1.csv", "CG", "r1", "discovered", 1, ts(4)),
            ledger_event("/in/cg/caregiver_1.csv", "CG", "r1", "ingested", 1, ts(4, 7)),
            ledger_event("/in/scd/CPIDODIEX_1.csv", "SCD", "r1", "ingested", 1, ts(4, 7)),
        ],
    )

    values = run_merge(tables, "r1")

    rows = target_rows(tables)
    old_cg, new_cg, other_cg, old_p1, new_p1, p2 = rows
    # The active row of the key is expired on the date of the new version's timestamp.
    assert (old_p1["RecordStatus"], old_p1["RecordChangeStatus"], old_p1["sentToDoD"]) == (
        False,
        "Expired Record",
        True,
    )
    assert old_p1["RecordLastUpdated"] == dt.date(2025, 2, 3)
    assert (new_p1["RecordStatus"], new_p1["RecordChangeStatus"], new_p1["sentToDoD"]) == (
        True,
        "Updated Record",
        False,
    )
    assert new_p1["SC_Combined_Disability_Percentage"] == "070"
    assert (p2["RecordStatus"], p2["RecordChangeStatus"]) == (True, "New Record")
    # CG key with a null Veteran_ICN matches null-safely (SPEC §4 improvement).
    assert (old_cg["RecordStatus"], old_cg["RecordLastUpdated"]) == (False, dt.date(2025, 2, 2))
    assert (new_cg["RecordStatus"], new_cg["Caregiver_Status"]) == (True, "Revoked")
    assert other_cg["RecordStatus"] is True and other_cg["RecordChangeStatus"] == "New Record"
    # Expire and insert are one commit.
    assert merge_commits(tables, "r1") == 1
    assert values["new_scd"] == 1 and values["updated_scd"] == 1 and values["expired_scd"] == 1
    assert (values["new_cg"], values["updated_cg"], values["expired_cg"]) == (0, 1, 1)
    assert (values["active_scd"], values["active_cg"], values["merged"]) == (2, 2, True)
    assert values["target_version"] == tables.version(t.PATRONAGE_UNIFIED)
    # Ledger: the run's ingested files are merged, with ingest's counts.
    assert latest_status(tables) == {
        "/in/cg/caregiver_1.csv": "merged",
        "/in/scd/CPIDODIEX_1.csv": "merged",
    }
    merged = tables.read(t.FILE_LEDGER).where(F.col("status") == "merged").collect()
    assert {(r["raw_rows"], r["valid_rows"], r["file_order"], r["run_id"]) for r in merged} == {
        (10, 9, 1, "r1")
    }


@pytest.mark.parametrize("large_day", [False, True], ids=["broadcast", "shuffled"])
def test_spec8_several_files_in_one_run_equal_one_run_per_file(
    tables, spark, monkeypatch, large_day
):
    threshold = spark.conf.get(merge.BROADCAST_THRESHOLD_CONF)
    if large_day:  # a run with more versions than may be broadcast: the MERGE shuffles
        monkeypatch.setattr(merge, "NARROW_MAX_KEYS", 0)
    merge_settings: list[dict[str, str]] = []
    real_session_conf = merge.session_conf

    def recording_session_conf(session, settings):
        merge_settings.append(dict(settings))
        return real_session_conf(session, settings)

    monkeypatch.setattr(merge, "session_conf", recording_session_conf)
    base = [scd("P1", icn="1000000001", pct="050", ts_=TS0)]
    files = [
        (1, scd("P1", icn="1000000001", pct="060", ts_=ts(1), status="Updated Record")),
        (2, scd("P1", icn="1000000001", pct="070", ts_=ts(2), status="Updated Record")),
        (2, scd("P9", icn="1000000009", pct="010", ts_=ts(2))),
        (3, scd("P1", icn="1000000001", pct="070", pt="Y", ts_=ts(5), status="Updated Record")),
        (3, scd("P9", icn="1000000009", pct="020", ts_=ts(5), status="Updated Record")),
    ]
    put_target(tables, base)
    stage(tables, "all", files)
    values = run_merge(tables, "all")

    one_by_one = t.Tables(spark, tables.catalog, tables.schema + "_b")
    one_by_one.ensure_schema()
    put_target(one_by_one, base)
    for order in (1, 2, 3):
        stage(one_by_one, f"r{order}", [(order, r) for fo, r in files if fo == order])
        run_merge(one_by_one, f"r{order}")

    assert target_rows(tables) == target_rows(one_by_one)
    p1 = [r for r in target_rows(tables) if r["participant_id"] == "P1"]
    # Intermediate versions are inserted already expired, on the next version's date.
    assert [(r["RecordStatus"], r["RecordChangeStatus"], r["RecordLastUpdated"]) for r in p1] == [
        (False, "Expired Record", dt.date(2025, 2, 1)),
        (False, "Expired Record", dt.date(2025, 2, 2)),
        (False, "Expired Record", dt.date(2025, 2, 5)),
        (True, "Updated Record", dt.date(2025, 2, 5)),
    ]
    assert all(r["sentToDoD"] for r in p1[:3])
    assert (values["new_scd"], values["updated_scd"], values["expired_scd"]) == (1, 4, 4)
    assert merge_commits(tables, "all") == 1
    # Each of the four MERGEs (one run, then three) turns broadcast joins off exactly
    # when its day is large, and only for its own commit.
    shuffled = [c.get(merge.BROADCAST_THRESHOLD_CONF) == "-1" for c in merge_settings]
    assert shuffled == [large_day] * 4
    assert spark.conf.get(merge.BROADCAST_THRESHOLD_CONF) == threshold
    assert spark.conf.get(merge.USER_METADATA_CONF, None) is None


def test_rerunning_merge_changes_nothing(tables):
    put_target(tables, [scd("P1", icn="1000000001", ts_=TS0)])
    stage(
        tables,
        "r1",
        [(1, scd("P1", icn="1000000001", pct="100", ts_=ts(3), status="Updated Record"))],
    )
    run_merge(tables, "r1")
    version, rows = tables.version(t.PATRONAGE_UNIFIED), target_rows(tables)

    again = run_merge(tables, "r1")

    assert tables.version(t.PATRONAGE_UNIFIED) == version
    assert target_rows(tables) == rows
    assert again["merged"] is False and again["target_version"] == version
    assert merge_commits(tables, "r1") == 1


def test_repair_after_crash_between_merge_and_ledger_completes_the_ledger(tables):
    stage(tables, "r1", [(1, scd("P1", icn="1000000001", ts_=ts(3)))])
    add_ledger(tables, [ledger_event("/in/scd/CPIDODIEX_1.csv", "SCD", "r1", "ingested", 1, ts(4))])
    planned = scd2.plan_versions(Staging(tables).read_run("r1"))
    merge.apply_merge(tables, planned, "r1", 1)  # the crash comes right after the commit
    version = tables.version(t.PATRONAGE_UNIFIED)

    values = run_merge(tables, "r1")

    assert values["merged"] is False and values["merged_files"] == 1
    assert tables.version(t.PATRONAGE_UNIFIED) == version
    assert latest_status(tables) == {"/in/scd/CPIDODIEX_1.csv": "merged"}
    assert tables.read(t.PATRONAGE_UNIFIED).count() == 1


def test_spec11_rebuild_without_confirmation_fails_before_touching_anything(tables):
    put_target(tables, [scd("P1", icn="1000000001", ts_=TS0)])
    add_ledger(tables, [ledger_event("/in/scd/CPIDODIEX_0.csv", "SCD", "r0", "merged", 1, ts(1))])
    stage(tables, "rb", [(1, scd("P2", icn="1000000002", ts_=ts(3)))])
    version = tables.version(t.PATRONAGE_UNIFIED)
    ledger_version = tables.version(t.FILE_LEDGER)

    with pytest.raises(merge.RebuildNotConfirmed, match="confirm_rebuild=patronage_unified"):
        run_merge(tables, "rb", processing_mode="rebuild", confirm_rebuild="yes")

    assert tables.version(t.PATRONAGE_UNIFIED) == version
    assert tables.version(t.FILE_LEDGER) == ledger_version


def test_spec11_confirmed_rebuild_resets_target_then_applies(tables):
    put_target(tables, [scd("P1", icn="1000000001", ts_=TS0), cg("2000000001", "3", "X", ts_=TS0)])
    add_ledger(
        tables,
        [
            ledger_event("/in/scd/CPIDODIEX_0.csv", "SCD", "r0", "merged", 1, ts(1)),
            ledger_event("/in/scd/CPIDODIEX_1.csv", "SCD", "rb", "ingested", 2, ts(4)),
        ],
    )
    stage(tables, "rb", [(2, scd("P1", icn="1000000001", pct="030", ts_=ts(3)))])

    values = run_merge(tables, "rb", processing_mode="rebuild", confirm_rebuild="patronage_unified")

    rows = target_rows(tables)
    assert [
        (r["participant_id"], r["SC_Combined_Disability_Percentage"], r["RecordStatus"])
        for r in rows
    ] == [("P1", "030", True)]
    assert latest_status(tables) == {
        "/in/scd/CPIDODIEX_0.csv": "superseded",
        "/in/scd/CPIDODIEX_1.csv": "merged",
    }
    assert values["superseded_files"] == 1 and values["active_cg"] == 0
    detail = tables.spark.sql(f"DESCRIBE DETAIL {tables.fqn(t.PATRONAGE_UNIFIED)}").first()
    # The rebuilt target has the declared layout (how an older target migrates to it).
    assert list(detail["partitionColumns"]) == ["RecordStatus", "Batch_CD"]

    # A repair of the rebuild's merge after it committed does not reset again.
    again = run_merge(tables, "rb", processing_mode="rebuild", confirm_rebuild="patronage_unified")
    assert again["merged"] is False and target_rows(tables) == rows


def test_merge_condition_is_an_equi_join_on_the_business_key(tables):
    """One MERGE over both sources must not degrade to a nested-loop join."""
    target = tables.spark.createDataFrame([scd("P1", icn="1000000001", ts_=TS0)], t.TARGET_SCHEMA)
    staged = tables.spark.createDataFrame(
        [{**cg("2000000001", None, "X", ts_=ts(1)), "run_id": "r", "file_order": 1}],
        t.STAGING_SCHEMA,
    ).drop("run_id")
    source = scd2.merge_source(scd2.plan_versions(staged))
    joined = target.alias("t").join(source.alias("s"), scd2.merge_condition("t", "s"))
    plan = joined._jdf.queryExecution().executedPlan().toString()
    assert "NestedLoopJoin" not in plan
    assert "SortMergeJoin" in plan or "HashJoin" in plan


@pytest.mark.parametrize("published", [0, 5, None])
def test_what_staging_holds_is_applied_whatever_the_ingests_published(tables, published):
    """The ingests' staged_rows only size the MERGE's join; staging decides what is applied."""
    from patronage.repositories.task_values import RunState
    from patronage.task import STATUS_VALUE

    put_target(tables, [scd("P1", icn="1000000001", ts_=TS0)])
    stage(
        tables,
        "r1",
        [
            (1, scd("P1", icn="1000000001", pct="100", ts_=ts(3), status="Updated Record")),
            (1, scd("P2", icn="1000000002", ts_=ts(3))),
        ],
    )
    if published is not None:  # e.g. values of an earlier attempt, before staging was replaced
        state = RunState(tables, "r1")
        for task_key in merge.INGEST_TASKS.values():
            state.publish(task_key, {STATUS_VALUE: "SUCCESS", "staged_rows": published})

    values = run_merge(tables, "r1")

    assert values["merged"] is True and values["staged_rows"] == 2
    assert (values["new_scd"], values["updated_scd"], values["expired_scd"]) == (1, 1, 1)
    assert (values["active_scd"], values["active_cg"]) == (2, 0)
    active = [r for r in target_rows(tables) if r["RecordStatus"]]
    assert [(r["participant_id"], r["SC_Combined_Disability_Percentage"]) for r in active] == [
        ("P1", "100"),
        ("P2", "050"),
    ]
    assert merge_commits(tables, "r1") == 1


def test_published_staged_rows_need_both_ingests_to_have_succeeded():
    from patronage.task import STATUS_VALUE

    ok = {STATUS_VALUE: "SUCCESS", "staged_rows": 3}
    assert merge.published_staged_rows({"ingest_scd": ok, "ingest_cg": ok}) == 6
    assert merge.published_staged_rows({"ingest_scd": ok}) is None
    failed = {**ok, STATUS_VALUE: "FAILED"}
    assert merge.published_staged_rows({"ingest_scd": ok, "ingest_cg": failed}) is None


def test_active_rows_after_a_merge_gain_inserted_versions_and_lose_expired_ones():
    counts = {
        "SCD": {"rows": 5, "new": 2, "updated": 3, "expired": 4, "expires_active": 3},
        "CG": {"rows": 1, "new": 1, "updated": 0, "expired": 0, "expires_active": 0},
    }
    # SCD: 3 active rows expired, 5 inserted of which 1 intermediate (inserted expired).
    assert merge.active_after({"SCD": 10}, counts) == {"SCD": 11, "CG": 1}
    assert merge.layout_after(
        delta_log.Layout(7, 1000),
        {"numTargetFilesAdded": "3", "numTargetFilesRemoved": "2", "numTargetBytesAdded": "90",
         "numTargetBytesRemoved": "40"},
    ) == delta_log.Layout(8, 1050)  # fmt: skip


def test_active_rows_are_counted_again_when_another_commit_came_before_the_merge(
    tables, monkeypatch
):
    put_target(tables, [scd("P1", icn="1000000001", ts_=TS0)])
    stage(
        tables,
        "r1",
        [(1, scd("P1", icn="1000000001", pct="100", ts_=ts(3), status="Updated Record"))],
    )
    apply = merge.apply_merge

    def someone_else_commits_first(*args, **kwargs):
        put_target(tables, [scd("P9", icn="1000000009", ts_=TS0)])
        return apply(*args, **kwargs)

    monkeypatch.setattr(merge, "apply_merge", someone_else_commits_first)

    values = run_merge(tables, "r1")

    active = tables.read(t.PATRONAGE_UNIFIED).where(F.col("RecordStatus")).count()
    assert active == 2 and values["active_scd"] == 2
    assert values["target_version"] == tables.version(t.PATRONAGE_UNIFIED)


def test_merge_compacts_the_target_locally_only_past_the_threshold(tables, monkeypatch):
    put_target(tables, [scd("P1", icn="1000000001", ts_=TS0)])
    stage(tables, "r1", [(1, scd("P2", icn="1000000002", ts_=ts(3)))])
    stage(tables, "r2", [(1, scd("P3", icn="1000000003", ts_=ts(4)))])

    def last_operation() -> str:
        return tables.delta(t.PATRONAGE_UNIFIED).history(1).first()["operation"]

    values = run_merge(tables, "r1")
    assert last_operation() == "MERGE"  # a few files: nothing to compact

    monkeypatch.setattr(delta_log, "COMPACT_EXCESS_FILES", -100)  # any layout is past it
    values = run_merge(tables, "r2")

    assert last_operation() == "OPTIMIZE"
    assert values["target_version"] == tables.version(t.PATRONAGE_UNIFIED)
    assert tables.read(t.PATRONAGE_UNIFIED).where(F.col("RecordStatus")).count() == 3

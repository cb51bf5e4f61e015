"""Invariants of patronage_unified (`patronage check`): each passes and fails on small tables."""

from __future__ import annotations

import datetime as dt

import pytest

from patronage import invariants as inv
from patronage import tables as t

pytestmark = pytest.mark.spark


def ts(day: int) -> dt.datetime:
    return dt.datetime(2025, 3, day, 6, 0, 0)


def row(batch: str, day: int, active: bool, *, last_updated: int | None = None, **cols) -> dict:
    r = dict.fromkeys(t.TARGET_COLUMNS)
    r.update(
        Batch_CD=batch,
        ICN="1000000001",
        SDP_Event_Created_Timestamp=ts(day),
        RecordLastUpdated=ts(last_updated or day).date(),
        RecordStatus=active,
        sentToDoD=not active,
        RecordChangeStatus="Updated Record" if active else "Expired Record",
    )
    r.update(cols)
    return r


def scd(pid: str, day: int, active: bool, pt: str = "N", **kw) -> dict:
    return row("SCD", day, active, participant_id=pid, PT_Indicator=pt, **kw)


def cg(icn: str, vet: str | None, day: int, active: bool, **kw) -> dict:
    return row(
        "CG", day, active, ICN=icn, Veteran_ICN=vet, Applicant_Type="Primary Caregiver", **kw
    )


HEALTHY = [
    scd("P1", 1, False, "N", last_updated=2),
    scd("P1", 2, False, "Y", last_updated=3),
    scd("P1", 3, True, "Y"),
    scd("P2", 1, True, "N"),
    cg("2000000001", None, 1, False, last_updated=4),
    cg("2000000001", None, 4, True),
    cg("2000000001", "3000000001", 4, True),
]


def results(spark, rows: list[dict]) -> dict[str, int]:
    df = spark.createDataFrame(rows, t.TARGET_SCHEMA)
    return {r.name: r.violating_keys for r in inv.check_invariants(df)}


def test_a_consistent_history_passes_every_invariant(spark):
    out = inv.check_invariants(spark.createDataFrame(HEALTHY, t.TARGET_SCHEMA))
    assert [r.name for r in out if not r.passed] == []
    assert all(r.line().startswith("PASS ") for r in out)


def test_spec4_two_active_rows_of_one_key_fail_counting_keys_not_rows(spark):
    bad = [
        *HEALTHY,
        scd("P2", 2, True, "N"),
        scd("P2", 3, True, "N"),
        # Same CG key with a null part: compared null-safely, so a duplicate.
        cg("2000000001", None, 5, True),
    ]
    out = results(spark, bad)
    assert out[inv.ONE_ACTIVE_PER_KEY] == 2
    line = next(
        r
        for r in inv.check_invariants(spark.createDataFrame(bad, t.TARGET_SCHEMA))
        if r.name == inv.ONE_ACTIVE_PER_KEY
    ).line()
    assert line.startswith("FAIL one_active_row_per_business_key: 2 violating keys")
    assert "P2" not in line and "2000000001" not in line


def test_spec6_pt_going_from_y_to_n_fails(spark):
    bad = [
        scd("P3", 1, False, "Y", last_updated=2),
        scd("P3", 2, True, "N"),
        # A tie on the timestamp proves no order: not a violation.
        scd("P4", 1, False, "Y", last_updated=1),
        scd("P4", 1, False, "N", last_updated=1),
        scd("P4", 2, True, "Y"),
    ]
    assert results(spark, [*HEALTHY, *bad])[inv.PT_NEVER_Y_TO_N] == 1


def test_spec8_expired_row_without_newer_version_fails(spark):
    bad = [
        scd("P5", 1, False, "N"),  # expired, nothing after it
        scd("P6", 1, True, "N"),
        scd("P6", 2, False, "N"),  # expired after the active version
        scd("P7", 1, False, "N"),
        scd("P7", 1, True, "N"),  # same timestamp, the active row comes last: fine
    ]
    assert results(spark, [*HEALTHY, *bad])[inv.EXPIRED_FOLLOWED_BY_NEWER] == 2


def test_active_row_without_icn_fails(spark):
    bad = [
        scd("P8", 1, True, "N", ICN=None),
        scd("P9", 1, True, "N", ICN=" "),
        scd("P10", 1, False, "N", ICN=None, last_updated=2),
        scd("P10", 2, True, "N"),
    ]
    assert results(spark, [*HEALTHY, *bad])[inv.ACTIVE_HAS_ICN] == 2

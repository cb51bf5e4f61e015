"""The reject policy's rules on published per-file counts (no Spark)."""

from __future__ import annotations

import pytest

from patronage import reject_policy as rp
from patronage.redaction import scrub

LIMITS = rp.Thresholds(row_share=0.01, unresolved_share=0.05)


@pytest.mark.parametrize(
    ("rows", "share", "allowed"),
    [(0, 0.01, 1), (13, 0.01, 1), (199, 0.01, 1), (200, 0.01, 2), (50_000, 0.01, 500)],
)
def test_a_file_may_reject_its_share_of_rows_and_at_least_one(rows, share, allowed):
    assert rp.allowance(rows, share) == allowed


def test_a_file_refused_as_a_whole_always_fires_and_names_file_and_reason():
    lines = rp.breaches(
        {"SCD": {rp.REFUSED_FILES: [{"file": "CPIDODIEX_20250120.csv", "reason": "bad header"}]}},
        LIMITS,
    )
    assert lines == [
        "SCD file CPIDODIEX_20250120.csv: refused as a whole (bad header) [rule refused_file]"
    ]


def test_rows_over_the_allowance_fire_with_counts_by_reason():
    files = [{"file": "caregiver_20250107.csv", "rows": 6,
              "by_reason": {"missing_key": 1, "bad_date": 1}}]  # fmt: skip
    (line,) = rp.breaches({"CG": {rp.FILE_REJECTS: files}}, LIMITS)
    assert line.startswith("CG file caregiver_20250107.csv: 2 rows rejected of 6 data rows")
    assert "bad_date 1, missing_key 1" in line and line.endswith("[rule rejected_rows]")


def test_rows_within_the_allowance_do_not_fire():
    files = [
        {"file": "a_20250101.csv", "rows": 6, "by_reason": {"bad_date": 1}},
        {"file": "b_20250101.csv", "rows": 1000, "by_reason": {"bad_date": 10}},
        {"file": "c_20250101.csv", "rows": 100, "by_reason": {"identity_unresolved": 5}},
    ]
    assert rp.breaches({"SCD": {rp.FILE_REJECTS: files}}, LIMITS) == []


def test_identity_unresolved_has_its_own_allowance():
    # Six unresolved of 100: within the row rules' 1% (they do not count there),
    # over the 5% allowed for identity gaps.
    files = [{"file": "CPIDODIEX_20250311.csv", "rows": 100,
              "by_reason": {"identity_unresolved": 6}}]  # fmt: skip
    (line,) = rp.breaches({"SCD": {rp.FILE_REJECTS: files}}, LIMITS)
    assert "6 changes without ICN of 100 data rows, more than the 5 allowed" in line
    assert line.endswith("[rule identity_unresolved]")


def test_per_file_values_list_only_files_with_rejects_by_name_never_by_path():
    files = rp.file_rejects(
        [
            ("/mnt/in/CPIDODIEX_20250106.csv", {"raw_rows": 13, "valid": 11, "reject:bad_date": 1}),
            ("/mnt/in/CPIDODIEX_20250203.csv", {"raw_rows": 2, "valid": 2}),
        ]
    )
    assert files == [{"file": "CPIDODIEX_20250106.csv", "rows": 13, "by_reason": {"bad_date": 1}}]
    assert rp.refused_files([("dbfs:/x/caregiver_20250121.csv", None)]) == [
        {"file": "caregiver_20250121.csv", "reason": "refused"}
    ]


def test_policy_messages_carry_nothing_identifier_shaped():
    lines = rp.breaches(
        {
            "SCD": {
                rp.REFUSED_FILES: [{"file": "CPIDODIEX_20250120.csv", "reason": "bad header"}],
                rp.FILE_REJECTS: [{"file": "cpidodiex_20250113_143000.CSV", "rows": 1_234_567,
                                   "by_reason": {"bad_percent": 999_999}}],  # fmt: skip
            }
        },
        LIMITS,
    )
    text = rp.message(lines)
    assert "999,999 rows rejected of 1,234,567 data rows" in text
    assert scrub(text) == text  # nothing in it is masked where errors are recorded


def test_policy_settings_default_when_empty_and_name_a_bad_value():
    from conftest import task_argv
    from patronage.config import ConfigError, settings_from_argv

    s = settings_from_argv(task_argv("s", "/b", reject_policy="", reject_max_row_share=""))
    assert (s.reject_policy, s.reject_max_row_share, s.reject_max_unresolved_share) == (
        "fail", 0.01, 0.05)  # fmt: skip
    assert settings_from_argv(task_argv("s", "/b", reject_policy="WARN")).reject_policy == "warn"
    with pytest.raises(ConfigError, match="reject_max_row_share.*share from 0 to 1"):
        settings_from_argv(task_argv("s", "/b", reject_max_row_share="5%"))
    with pytest.raises(ConfigError, match="reject_policy.*fail, warn"):
        settings_from_argv(task_argv("s", "/b", reject_policy="ignore"))

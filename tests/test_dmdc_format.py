"""SPEC §9.1 record, file, window and names as pure rules (no Spark needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from patronage import dmdc_format as fmt

RUN = dt.date(2026, 12, 2)  # a Wednesday


def test_record_is_42_characters_each_field_right_padded_and_null_as_spaces():
    record = fmt.format_record(
        ["1234567890", "SCD", "70", "20200101", "Y", None, "20260101", None]
    )
    assert fmt.RECORD_LENGTH == 42
    assert record == "1234567890SCD70 20200101Y 20260101        "
    assert len(record) == 42


def test_value_longer_than_its_field_refuses_the_file_naming_the_column_not_the_value():
    values = ["1234567890", "SCD", "1000", None, None, None, None, None]
    with pytest.raises(fmt.RecordFormatError) as err:
        fmt.format_record(values, position=7)
    message = str(err.value)
    assert "record 7" in message and "SC_Combined_Disability_Percentage" in message
    assert "1000" not in message


@pytest.mark.parametrize("bad", ["12345\n7890", "12345\r", "12345é"])
def test_line_breaks_and_non_ascii_would_break_the_fixed_width_and_are_refused(bad):
    with pytest.raises(fmt.RecordFormatError, match="column edipi"):
        fmt.format_record([bad, "SCD", None, None, None, None, None, None])


def test_file_sorted_by_batch_then_edipi_newline_between_records_none_after_last():
    rows = [
        ("0000000003", "SCD", "10", None, None, None, None, None),
        ("0000000009", "CG", None, "20200101", None, None, None, None),
        ("0000000001", "SCD", "20", None, None, None, None, None),
    ]
    content = fmt.file_content(fmt.format_records(rows))
    lines = content.decode("utf-8").split("\n")
    assert [line[:13] for line in lines] == ["0000000009CG ", "0000000001SCD", "0000000003SCD"]
    assert not content.endswith(b"\n")
    assert all(len(line) == 42 for line in lines)


def test_no_records_means_no_file_never_an_empty_or_blank_one():
    with pytest.raises(ValueError):
        fmt.file_content([])
    with pytest.raises(fmt.RecordFormatError):
        fmt.file_content([" " * 42])


def test_file_names_carry_the_run_date():
    assert fmt.export_filename(RUN) == "PATRONAGE_20261202.txt"
    assert fmt.lagged_filename(RUN) == "LAGGED_EDIPI_PATRONAGE_20261202.txt"


def test_window_starts_at_newest_checkpoint_else_the_day_before_and_ends_at_run_date():
    assert fmt.export_window(RUN, None) == (dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 2))
    newest = dt.datetime(2026, 11, 27)
    assert fmt.export_window(RUN, newest) == (newest, dt.datetime(2026, 12, 2))


def test_generate_query_freezes_the_run_date_and_holds_no_other_literal():
    text = fmt.generate_query(RUN)
    assert "TIMESTAMP '2026-12-02 00:00:00'" in text
    assert "TIMESTAMP '2026-12-01 00:00:00'" in text
    assert "Status_Termination_Date >= '20261202'" in text
    assert "'Pending Revocation/Discharge'" in text
    assert "(SELECT max(checkpoint_timestamp) FROM dmdc_checkpoint)" in text
    assert "ORDER BY Batch_CD, edipi" in text


def test_lagged_rerun_union_keeps_every_record_once_in_file_order():
    a = fmt.format_record(["0000000002", "SCD", "10", None, None, None, None, None])
    b = fmt.format_record(["0000000001", "SCD", "10", None, None, None, None, None])
    c = fmt.format_record(["0000000005", "CG", None, None, None, None, None, None])
    before = fmt.parse_records(fmt.file_content([a]), "x.txt")
    assert fmt.union_records(before, [b, a, c]) == [c, b, a]
    assert fmt.count_by_batch([a, b, c]) == {"SCD": 2, "CG": 1}
    with pytest.raises(fmt.RecordFormatError, match="x.txt line 1"):
        fmt.parse_records(b"short", "x.txt")

"""No identifier in any log or error text (ICN, EDIPI, participant ids).

What a failed task leaves behind (its task values, the error the job shows,
everything the product logged) is the error class and a scrubbed first line,
whether the message was ours or Spark's own, which quotes row values. (The
JVM's own log4j lines on the driver are Spark's, not ours.)
"""

from __future__ import annotations

import logging
import re

import pytest

from conftest import task_argv
from patronage import redaction
from patronage.errors import TaskFailed
from patronage.repositories.task_values import RunState
from patronage.task import ERROR_VALUE, entry_point

ICN = "1012345678V123456"
EDIPI = "1234567890"
PARTICIPANT_ID = "87654321"
IDENTIFIERS = (ICN, EDIPI, PARTICIPANT_ID, ICN[:10])


def identifier_shaped(text: str) -> list[str]:
    """ICN-shaped tokens and runs of six or more digits, dated file names aside."""
    without_file_names = redaction._DATED_FILE_NAME.sub("", text)
    return re.findall(r"\d{10}V\d{6}|\d{6,}", without_file_names, flags=re.IGNORECASE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"ICN {ICN} not found", "ICN <ICN> not found"),
        (f"edipi={EDIPI}, participant {PARTICIPANT_ID}", "edipi=<digits>, participant <digits>"),
        (f"'{ICN.lower()}'", "'<ICN>'"),
        ("row 12: bad date '2025-13-01'", "row 12: bad date '2025-13-01'"),
        (
            "CPIDODIEX_20250106.csv row 3: missing_key; caregiver_20250115_120000.CSV late",
            "CPIDODIEX_20250106.csv row 3: missing_key; caregiver_20250115_120000.CSV late",
        ),
        (f"file_{EDIPI}.csv", "file_<digits>.csv"),
        ("12345 rows", "12345 rows"),
    ],
)
def test_scrub_replaces_identifier_shaped_tokens_and_keeps_dated_file_names(text, expected):
    assert redaction.scrub(text) == expected


def test_describe_is_the_class_and_the_scrubbed_first_line():
    exc = ValueError(f"row 7 of CPIDODIEX_20250106.csv: {ICN}\nfull row: {EDIPI},{PARTICIPANT_ID}")
    assert redaction.describe(exc) == "ValueError: row 7 of CPIDODIEX_20250106.csv: <ICN>"


def _own_message(ctx):
    raise ValueError(f"row 3 of CPIDODIEX_20250106.csv: ICN {ICN}, EDIPI {EDIPI}")


def _spark_quotes_a_value(ctx):
    # ANSI casts fail with Spark's own text, which quotes the offending value.
    frame = ctx.spark.createDataFrame([(ICN, PARTICIPANT_ID)], "icn string, pid string")
    frame.selectExpr("CAST(icn AS INT)", "CAST(pid AS DATE)").collect()


def _spark_raises_with_a_value(ctx):
    ctx.spark.sql("SELECT raise_error(:message)", args={"message": f"edipi {EDIPI}"}).collect()


@pytest.mark.spark
@pytest.mark.parametrize("stage", [_own_message, _spark_quotes_a_value, _spark_raises_with_a_value])
def test_a_failing_task_leaves_no_identifier_in_values_logs_or_its_error(
    spark, tables, tmp_path, caplog, stage
):
    caplog.set_level(logging.DEBUG)
    main = entry_point("probe", stage)
    with pytest.raises(Exception) as failure:
        main(task_argv(tables.schema, tmp_path))

    recorded = RunState(tables, "1001").get("probe")[ERROR_VALUE]
    texts = {
        "task value": recorded,
        "error": str(failure.value),
        "logs": caplog.text.replace(tables.schema, "<schema>"),
    }
    for where, text in texts.items():
        assert not any(value in text for value in IDENTIFIERS), (where, text)
        assert identifier_shaped(text) == [], (where, text)
    # What is left still says what failed: the class, then a description.
    assert re.fullmatch(r"\w+: \S.*", recorded), recorded
    # Ours keeps its type; Spark's own (which renders its own text) becomes TaskFailed.
    expected = ValueError if stage is _own_message else TaskFailed
    assert type(failure.value) is expected
    assert failure.value.__cause__ is None and failure.value.__suppress_context__

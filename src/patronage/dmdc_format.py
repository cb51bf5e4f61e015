"""The DMDC file: record layout, eligibility, export window, file names (SPEC §9.1, §9.2).

Pure rules shared by the ``dmdc_export`` and ``edipi_backfill`` stages. The
record is fixed width and the DoD reads it by position, so a value that does
not fit its field (too long, a line break, a non-ASCII character that would be
more than one byte) rejects the whole file with an error naming the column and
the record's position: truncating would send a wrong identity or date to the
DoD without anyone noticing. Error messages never carry the value itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from patronage.errors import RecordFormatError

#: (column of ``patronage_unified``, width), in record order: 42 characters.
FIELDS: tuple[tuple[str, int], ...] = (
    ("edipi", 10),
    ("Batch_CD", 3),
    ("SC_Combined_Disability_Percentage", 3),
    ("Status_Begin_Date", 8),
    ("PT_Indicator", 1),
    ("Individual_Unemployability", 1),
    ("Status_Last_Update", 8),
    ("Status_Termination_Date", 8),
)
RECORD_COLUMNS: tuple[str, ...] = tuple(name for name, _ in FIELDS)
RECORD_LENGTH = sum(width for _, width in FIELDS)
SEPARATOR = "\n"
ENCODING = "utf-8"

SCD = "SCD"
CG = "CG"
BATCHES = (SCD, CG)
PRIMARY_CAREGIVER = "Primary Caregiver"
#: CG statuses that stay eligible whatever the termination date says.
ELIGIBLE_CG_STATUSES = ("Approved", "Pending Revocation/Discharge")

EXPORT_PREFIX = "PATRONAGE_"
LAGGED_PREFIX = "LAGGED_EDIPI_PATRONAGE_"

_BATCH_SLICE = slice(10, 13)
_EDIPI_SLICE = slice(0, 10)


def yyyymmdd(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def export_filename(run_date: dt.date) -> str:
    return f"{EXPORT_PREFIX}{yyyymmdd(run_date)}.txt"


def lagged_filename(run_date: dt.date) -> str:
    return f"{LAGGED_PREFIX}{yyyymmdd(run_date)}.txt"


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def export_window(
    run_date: dt.date, newest_checkpoint: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    """``[start, end)`` on ``SDP_Event_Created_Timestamp``.

    Start is the newest checkpoint (the previous export's end), else 00:00 of
    the day before the run date; end is 00:00 of the run date. A back-dated run
    older than the newest checkpoint gets ``start >= end``, an empty window:
    those rows already went out in the newer export.
    """
    end = midnight(run_date)
    start = newest_checkpoint if newest_checkpoint is not None else end - dt.timedelta(days=1)
    return start, end


def eligible(run_date: dt.date) -> Column:
    """SPEC §9.1 eligibility as a never-null boolean Column."""
    batch = F.col("Batch_CD")
    termination = F.col("Status_Termination_Date")
    cg_still_eligible = (
        termination.isNull()
        | (termination >= F.lit(yyyymmdd(run_date)))
        | F.col("Caregiver_Status").isin(*ELIGIBLE_CG_STATUSES)
    )
    rule = (batch == F.lit(SCD)) | (
        (batch == F.lit(CG))
        & (F.col("Applicant_Type") == F.lit(PRIMARY_CAREGIVER))
        & cg_still_eligible
    )
    return F.coalesce(rule, F.lit(False))


def in_window(start: dt.datetime, end: dt.datetime) -> Column:
    ts = F.col("SDP_Event_Created_Timestamp")
    return (ts >= F.lit(start)) & (ts < F.lit(end))


def generate_query(run_date: dt.date) -> str:
    """The selection as SQL text, for the checkpoint's audit trail only.

    Built from this module's constants and the run date, never from data, and
    never executed: the stage selects with the DataFrame API. The window start
    is written as the rule (newest checkpoint before this export's own row,
    else the day before) so the text is fixed by the run date alone.
    """
    end = midnight(run_date)
    fallback = end - dt.timedelta(days=1)
    columns = ", ".join(RECORD_COLUMNS)
    statuses = ", ".join(f"'{s}'" for s in ELIGIBLE_CG_STATUSES)
    return (
        f"SELECT {columns}\n"
        "FROM patronage_unified\n"
        "WHERE RecordStatus = true\n"
        "  AND edipi IS NOT NULL\n"
        "  AND SDP_Event_Created_Timestamp >= COALESCE("
        "(SELECT max(checkpoint_timestamp) FROM dmdc_checkpoint), "
        f"TIMESTAMP '{fallback:%Y-%m-%d %H:%M:%S}')\n"
        f"  AND SDP_Event_Created_Timestamp < TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'\n"
        f"  AND (Batch_CD = '{SCD}'\n"
        f"       OR (Batch_CD = '{CG}' AND Applicant_Type = '{PRIMARY_CAREGIVER}'\n"
        "           AND (Status_Termination_Date IS NULL\n"
        f"                OR Status_Termination_Date >= '{yyyymmdd(run_date)}'\n"
        f"                OR Caregiver_Status IN ({statuses}))))\n"
        "ORDER BY Batch_CD, edipi"
    )


def _check_field(column: str, width: int, value: str, position: int) -> None:
    where = f"DMDC record {position}, column {column}"
    if len(value) > width:
        raise RecordFormatError(
            f"{where}: value of {len(value)} characters does not fit its {width}-character "
            "field; the file is not written (fix the source row, then rerun)"
        )
    if not all(" " <= ch <= "~" for ch in value):
        raise RecordFormatError(
            f"{where}: value holds a control or non-ASCII character, which would break "
            "the fixed-width record; the file is not written (fix the source row, then rerun)"
        )


def format_record(values: Sequence[str | None], position: int = 1) -> str:
    """One 42-character record; ``values`` in :data:`RECORD_COLUMNS` order."""
    if len(values) != len(FIELDS):
        raise ValueError(f"a DMDC record has {len(FIELDS)} fields, got {len(values)}")
    parts = []
    for (column, width), value in zip(FIELDS, values, strict=True):
        text = "" if value is None else str(value)
        _check_field(column, width, text, position)
        parts.append(text.ljust(width))
    record = "".join(parts)
    if not record.strip():
        raise RecordFormatError(f"DMDC record {position} is blank; the file is not written")
    return record


def sort_key(values: Sequence[str | None]) -> tuple[str, str]:
    """Batch_CD then edipi (nulls first, though eligibility never lets one through)."""
    return (values[1] or "", values[0] or "")


def format_records(rows: Iterable[Sequence[str | None]]) -> list[str]:
    """Records in file order (Batch_CD, then edipi); positions in errors are 1-based."""
    ordered = sorted((tuple(r) for r in rows), key=sort_key)
    return [format_record(values, i) for i, values in enumerate(ordered, start=1)]


def file_content(records: Sequence[str]) -> bytes:
    """``\\n`` between records, none after the last, UTF-8; an empty file is a bug."""
    if not records:
        raise ValueError("a DMDC file needs at least one record: write no file instead")
    for i, record in enumerate(records, start=1):
        if len(record) != RECORD_LENGTH or not record.strip():
            raise RecordFormatError(f"DMDC record {i} is not a {RECORD_LENGTH}-character record")
    return SEPARATOR.join(records).encode(ENCODING)


def parse_records(content: bytes, name: str) -> list[str]:
    """Records of a file we wrote earlier; an unexpected line fails naming the file."""
    if not content:
        return []
    records = content.decode(ENCODING).split(SEPARATOR)
    for i, record in enumerate(records, start=1):
        if len(record) != RECORD_LENGTH or not record.strip():
            raise RecordFormatError(
                f"{name} line {i} is not a {RECORD_LENGTH}-character DMDC record"
            )
    return records


def union_records(existing: Iterable[str], new: Iterable[str]) -> list[str]:
    """Both sets of records, each once, in file order.

    Records are padded with spaces and hold printable ASCII only, so ordering
    the padded Batch_CD and edipi slices equals ordering the raw values.
    """
    unique = set(existing) | set(new)
    return sorted(unique, key=lambda r: (r[_BATCH_SLICE], r[_EDIPI_SLICE], r))


def count_by_batch(records: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(BATCHES, 0)
    for record in records:
        batch = record[_BATCH_SLICE].rstrip()
        counts[batch] = counts.get(batch, 0) + 1
    return counts

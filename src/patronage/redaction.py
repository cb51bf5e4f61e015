"""Error text without personal identifiers: what may reach logs, task values and the log table.

Our own messages name files, rows, rules and settings; Spark's and Delta's
exception text can quote the values of a row. Whatever an error says, what
leaves a task is its class and a scrubbed first line: an ICN-shaped token and
any run of six or more digits (EDIPI, participant id, ICN, long numbers) are
replaced. Inbound and export file names keep their dates, which are what an
operator needs to find the file; an identifier is never written that way.
"""

from __future__ import annotations

import re
import traceback

from patronage.errors import TaskFailed

#: An MVI ICN: ten digits, "V", six digits (checked before the plain digit runs).
_ICN = re.compile(r"\d{10}V\d{6}", re.IGNORECASE)
#: Six or more digits in a row: EDIPI (10), participant ids, bare ICNs, epoch values.
_DIGIT_RUN = re.compile(r"\d{6,}")
#: A file name whose digits are a date (and time): NAME_YYYYMMDD[_HHMMSS].ext
_DATED_FILE_NAME = re.compile(r"(?<![\w])[A-Za-z][\w-]*?_\d{8}(?:_\d{6})?\.[A-Za-z]{2,4}\b")

ICN_MARK = "<ICN>"
DIGITS_MARK = "<digits>"
MAX_MESSAGE = 500


def scrub(text: str) -> str:
    """``text`` with every identifier-shaped token replaced."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    protected = _DATED_FILE_NAME.sub(keep, text)
    scrubbed = _DIGIT_RUN.sub(DIGITS_MARK, _ICN.sub(ICN_MARK, protected))
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], scrubbed)


def _scrubbed_first_line(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return scrub(first_line)[:MAX_MESSAGE]


def describe(exc: BaseException) -> str:
    """``Class: first line of the message``, scrubbed and cut to a readable length."""
    return f"{type(exc).__name__}: {_scrubbed_first_line(exc)}".rstrip(": ")


def stack_summary(exc: BaseException) -> str:
    """Where it failed (file, line, function per frame), without any message or value."""
    frames = traceback.extract_tb(exc.__traceback__)
    return "\n".join(f"  {f.filename}:{f.lineno} in {f.name}" for f in frames)


def scrubbed(exc: BaseException) -> BaseException:
    """``exc`` itself with a scrubbed one-line message, or a :class:`TaskFailed` saying it.

    Exceptions whose text is their arguments (ours, Python's) keep their type,
    so callers and records still see ``ValueError: ...``; one that renders its
    own text (Spark's captured exceptions) is replaced. Raise the result
    ``from None``: a chained cause would print its own, unscrubbed, text.
    """
    if type(exc).__str__ is BaseException.__str__:
        exc.args = (_scrubbed_first_line(exc),)
        return exc
    return TaskFailed(describe(exc))

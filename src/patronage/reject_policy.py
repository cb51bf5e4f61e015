"""The reject policy: when refused input fails the run (after all good data landed).

Ingest keeps every good row and quarantines every bad one; this policy decides
whether the people on call must hear about it. Each ingest publishes, per
file, what it refused (:func:`file_rejects`, :func:`refused_files`); finalize
calls :func:`breaches` on those values and fails the run, so the job's failure
notification fires, when any rule below fires for any file of the run:

- ``refused_file``: the whole file was refused (header, encoding);
- ``rejected_rows``: rows refused by the row rules exceed the file's allowance,
  a share of its data rows (``reject_max_row_share``) and at least one row;
- ``identity_unresolved``: changes without an ICN exceed their own allowance
  (``reject_max_unresolved_share``, at least one row): a few are normal, a jump
  means MVI is stale.

A file is finalised in the ledger (``rejected`` or ``merged``) by the run that
read it, so later runs never see it again: the alert fires once per file.
Messages name the file (its name, never its path), counts by reason code and
the rule; never a field value. Counts are written with thousands separators,
so no count reads as an identifier-shaped run of digits.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from patronage.repositories.rejects import RejectReason

#: Values each ingest publishes for the policy.
FILE_REJECTS = "file_rejects"
REFUSED_FILES = "refused_files"
#: Finalize's value: the fired rules (also when the policy only warns).
BREACHES = "reject_policy_breaches"
#: Lists, not figures: the one-line task summaries leave them out.
VALUES = (FILE_REJECTS, REFUSED_FILES, BREACHES)
#: At most this many files per list in a task value (Databricks caps a value at 48 KiB).
MAX_LISTED = 100


class PolicyRule(StrEnum):
    REFUSED_FILE = "refused_file"
    REJECTED_ROWS = "rejected_rows"
    IDENTITY_UNRESOLVED = "identity_unresolved"


@dataclass(frozen=True)
class Thresholds:
    row_share: float
    unresolved_share: float


def allowance(rows: int, share: float) -> int:
    """Rejected rows a file of ``rows`` data rows may have: ``share`` of them, at least one."""
    return max(1, math.floor(share * rows))


def file_name(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) or path


def file_rejects(files: Iterable[tuple[str, Mapping[str, int]]]) -> list[dict[str, Any]]:
    """Per file with any reject: its name, data rows and rejects by reason code.

    ``files``: (path, per) where ``per`` holds ``raw_rows`` and ``reject:<code>`` counts.
    """
    out = []
    for path, per in files:
        by_reason = {
            k.removeprefix("reject:"): n for k, n in sorted(per.items()) if k.startswith("reject:")
        }
        if any(by_reason.values()):
            rows = int(per.get("raw_rows", 0))
            out.append({"file": file_name(path), "rows": rows, "by_reason": by_reason})
    return _capped(out)


def refused_files(files: Iterable[tuple[str, str | None]]) -> list[dict[str, str]]:
    """Per refused file: its name and why (the ledger's reason)."""
    return _capped([{"file": file_name(p), "reason": r or "refused"} for p, r in files])


def _capped(items: list[Any]) -> list[Any]:
    # The tail is dropped from the value only: the ledger and the rejects table keep all.
    return items[:MAX_LISTED]


def _counts_text(by_reason: Mapping[str, int]) -> str:
    return ", ".join(f"{code} {n:,}" for code, n in sorted(by_reason.items()))


def breaches(
    ingests: Mapping[str, Mapping[str, Any] | None], limits: Thresholds
) -> list[str]:
    """One line per fired rule and file; ``ingests``: source -> that ingest's values."""
    out: list[str] = []
    for source, values in ingests.items():
        values = values or {}
        for f in values.get(REFUSED_FILES) or ():
            out.append(
                f"{source} file {f['file']}: refused as a whole ({f['reason']}) "
                f"[rule {PolicyRule.REFUSED_FILE}]"
            )
        for f in values.get(FILE_REJECTS) or ():
            out += file_breaches(source, f["file"], int(f["rows"]), f["by_reason"], limits)
    return out


def file_breaches(
    source: str, name: str, rows: int, by_reason: Mapping[str, int], limits: Thresholds
) -> list[str]:
    """The rules one file with ``rows`` data rows and these rejects fires."""
    out = []
    unresolved = int(by_reason.get(RejectReason.IDENTITY_UNRESOLVED, 0))
    rule_rows = {k: v for k, v in by_reason.items() if k != RejectReason.IDENTITY_UNRESOLVED}
    counts = _counts_text(by_reason)
    checks: Sequence[tuple[PolicyRule, int, float, str]] = (
        (PolicyRule.REJECTED_ROWS, sum(rule_rows.values()), limits.row_share, "rows rejected"),
        (
            PolicyRule.IDENTITY_UNRESOLVED,
            unresolved,
            limits.unresolved_share,
            "changes without ICN",
        ),
    )
    for rule, n, share, what in checks:
        allowed = allowance(rows, share)
        if n > allowed:
            out.append(
                f"{source} file {name}: {n:,} {what} of {rows:,} data rows, more than the "
                f"{allowed:,} allowed ({share:.2%} of data rows, at least 1; rejects: {counts}) "
                f"[rule {rule}]"
            )
    return out


def message(lines: Sequence[str]) -> str:
    return f"reject policy: {len(lines)} file rule(s) fired: " + "; ".join(lines)


def summary_lines(values: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """For a run's summary (task key -> values): refused files, then the fired rules."""
    out = []
    for task, source in (("ingest_scd", "SCD"), ("ingest_cg", "CG")):
        for f in (values.get(task) or {}).get(REFUSED_FILES) or ():
            out.append(f"refused file: {source} {f['file']} ({f['reason']})")
    fired = (values.get("finalize") or {}).get(BREACHES) or ()
    return out + [f"reject policy: {line}" for line in fired]

"""One preflight check's outcome, shared by the local probes and the workspace checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import StrEnum


class CheckStatus(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    #: The check cannot be made from here; the detail says why (never a silent PASS).
    SKIP = "SKIP"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str

    @property
    def ok(self) -> bool:
        return self.status is not CheckStatus.FAIL

    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


def passed(name: str, ok: bool, detail: str) -> Check:
    return Check(name, CheckStatus.PASS if ok else CheckStatus.FAIL, detail)


def verdict(checks: Sequence[Check]) -> str:
    """The closing line: PASS, or FAIL naming the checks that failed."""
    failed = [c.name for c in checks if not c.ok]
    return f"preflight: FAIL ({', '.join(failed)})" if failed else "preflight: PASS"

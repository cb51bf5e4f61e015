"""What the load case of ``patronage bench`` prints: time per daily run and its trend.

Pure functions over the measured days (no Spark), so the arithmetic is tested
on its own: the least-squares slope of run time against the day number says
whether a run costs more the more runs came before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

#: The job's tasks in DAG order (the columns of the per-day table).
TASKS = (
    "discover", "identity", "ingest_scd", "ingest_cg", "merge", "edipi_backfill",
    "dmdc_export", "backup", "finalize",
)  # fmt: skip
#: Scheduled tasks and the discover value that says they are due (one letter each).
GATES = {"edipi_backfill_due": "B", "dmdc_export_due": "E", "backup_due": "K"}
#: The run's bookkeeping tables (they grow every day) and the target.
BOOKKEEPING = (
    "patronage_file_ledger", "patronage_task_values", "patronage_pipeline_log",
    "patronage_staging_scd", "patronage_staging_cg", "patronage_rejects",
)  # fmt: skip
TARGET = "patronage_unified"


@dataclasses.dataclass(frozen=True)
class TableSize:
    """A Delta table after a run: rows, table version, data files."""

    rows: int
    version: int
    files: int


@dataclasses.dataclass(frozen=True)
class Day:
    """One measured daily run."""

    index: int  # 1-based; 0 is the baseline load
    run_date: dt.date
    seconds: float  # wall time of the whole run (as `patronage run` runs it)
    tasks: Mapping[str, float]  # task key -> seconds
    due: str  # letters of the scheduled tasks due (GATES), "" for a plain day
    check_seconds: float
    tables: Mapping[str, TableSize]
    #: CPU seconds the driver JVM (all of local Spark) used in the run: far less
    #: sensitive than wall time to other work on a shared machine. None if unknown.
    cpu_seconds: float | None = None
    load_average: float | None = None  # 1-minute load average at the end of the run


@dataclasses.dataclass(frozen=True)
class Trend:
    """Run time from the first to the last day and its least-squares slope."""

    n: int
    first: float
    last: float
    mean: float
    slope: float  # seconds per additional day

    @property
    def relative(self) -> float:
        """The slope as a share of the mean run time, per day."""
        return self.slope / self.mean if self.mean else 0.0

    def line(self, what: str) -> str:
        if self.n < 2:
            return f"{what}: {self.n} day(s), no trend"
        span = self.slope * (self.n - 1)
        return (
            f"{what} (n={self.n}): first {self.first:.1f}s, last {self.last:.1f}s, "
            f"mean {self.mean:.1f}s; slope {self.slope:+.3f} s/day "
            f"({self.relative:+.2%} of the mean per day, fit {span:+.1f}s over the span)"
        )


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys on xs (0.0 for fewer than two distinct xs)."""
    if len(xs) != len(ys):
        raise ValueError(f"{len(xs)} x values but {len(ys)} y values")
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def trend(xs: Sequence[float], ys: Sequence[float]) -> Trend:
    if not ys:
        return Trend(0, 0.0, 0.0, 0.0, 0.0)
    return Trend(len(ys), ys[0], ys[-1], sum(ys) / len(ys), slope(xs, ys))


def run_trend(days: Sequence[Day]) -> Trend:
    return trend([d.index for d in days], [d.seconds for d in days])


def cpu_trend(days: Sequence[Day]) -> Trend:
    known = [d for d in days if d.cpu_seconds is not None]
    return trend([d.index for d in known], [float(d.cpu_seconds or 0.0) for d in known])


def plain_trend(days: Sequence[Day]) -> Trend:
    """The trend of days on which no scheduled task was due (like for like)."""
    plain = [d for d in days if not d.due]
    return trend([d.index for d in plain], [d.seconds for d in plain])


def task_trends(days: Sequence[Day]) -> dict[str, Trend]:
    """Per task: the trend of its seconds (a growing task shows here first)."""
    out = {}
    for task in TASKS:
        ran = [d for d in days if task in d.tasks]
        out[task] = trend([d.index for d in ran], [d.tasks[task] for d in ran])
    return out


def _short(task: str) -> str:
    return {"edipi_backfill": "backfill", "dmdc_export": "export"}.get(task, task)


def _num(value: float | None, width: int) -> str:
    return f"{value:{width}.1f}" if value is not None else f"{'-':>{width}}"


def day_lines(days: Sequence[Day]) -> list[str]:
    names = [*BOOKKEEPING, TARGET]
    head = (
        f"{'day':>3} {'run_date':<10} {'due':<3} {'total s':>8} {'cpu s':>7} {'load':>5} "
        + " ".join(f"{_short(k)[:10]:>10}" for k in TASKS)
        + f" {'check s':>7}  rows/version of " + ", ".join(n.removeprefix("patronage_")
                                                          for n in names)
    )
    out = [head]
    for d in days:
        sizes = " ".join(
            f"{d.tables[n].rows}/v{d.tables[n].version}" if n in d.tables else "-"
            for n in names
        )
        out.append(
            f"{d.index:>3} {d.run_date.isoformat():<10} {d.due:<3} {d.seconds:8.1f} "
            f"{_num(d.cpu_seconds, 7)} {_num(d.load_average, 5)} "
            + " ".join(f"{d.tasks.get(k, 0.0):10.1f}" for k in TASKS)
            + f" {d.check_seconds:7.1f}  {sizes}"
        )
    return out


def growth_lines(days: Sequence[Day]) -> list[str]:
    """How each bookkeeping table grew from the first to the last day."""
    if not days:
        return []
    first, last = days[0], days[-1]
    span = max(last.index - first.index, 1)
    out = ["table                       rows first -> last (per day)   version  files"]
    for name in (*BOOKKEEPING, TARGET):
        a, b = first.tables.get(name), last.tables.get(name)
        if a is None or b is None:
            continue
        out.append(
            f"{name:<26} {a.rows:>9,} -> {b.rows:>9,} ({(b.rows - a.rows) / span:+9,.0f})"
            f"  v{a.version}->v{b.version}  {a.files}->{b.files}"
        )
    return out


def report_lines(days: Sequence[Day], header: Sequence[str] = ()) -> list[str]:
    """The whole load report: per-day table, overall/plain/per-task trends, table growth."""
    out = [*header, "", *day_lines(days), ""]
    out.append(run_trend(days).line("run time"))
    out.append(cpu_trend(days).line("  JVM CPU time"))
    # The first days also carry JIT and cache warm-up (a falling start); a cost
    # that grows with past runs shows in the second half as well.
    late = list(days[len(days) // 2:])
    out.append(run_trend(late).line("  second half, run time"))
    out.append(cpu_trend(late).line("  second half, JVM CPU time"))
    out.append(plain_trend(days).line("  days with no scheduled task"))
    out.append("per task (slope s/day, mean s):")
    for task, tr in task_trends(days).items():
        if tr.n:
            out.append(f"  {task:<15} {tr.slope:+.3f} s/day  mean {tr.mean:6.1f}s  n={tr.n}")
    out += ["", "bookkeeping growth:", *growth_lines(days)]
    legend = ", ".join(f"{v}={k.removesuffix('_due')}" for k, v in GATES.items())
    out += ["", f"due: {legend}"]
    return out

"""What ``patronage bench`` prints: ratios against targets, and the driver's heap."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from patronage.devtools.benchmark import Case


@dataclass(frozen=True)
class Ratio:
    name: str
    numerator: float
    denominator: float
    target: float
    how: str

    @property
    def value(self) -> float:
        return self.numerator / self.denominator

    def line(self) -> str:
        verdict = "OK  " if self.value <= self.target else "OVER"
        return (
            f"{verdict} {self.name:<38} {self.how:<44} {self.numerator:7.2f}s /"
            f" {self.denominator:7.2f}s = {self.value:5.2f} (target <= {self.target})"
        )


def heap() -> Any:
    """The driver JVM's memory beans (local mode: driver and executor are one JVM)."""
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    assert sc is not None and sc._jvm is not None
    return sc._jvm.java.lang.management.ManagementFactory


class HeapSampler:
    """Peak of the driver JVM's used heap, sampled every 0.2 s from a side thread."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        bean = heap().getMemoryMXBean()
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, int(bean.getHeapMemoryUsage().getUsed()))

    def __enter__(self) -> HeapSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def max_heap() -> int:
    return int(heap().getMemoryMXBean().getHeapMemoryUsage().getMax())


@dataclass
class Report:
    cases: dict[str, Case]
    ratios: list[Ratio]
    max_heap: int
    setup_seconds: float

    def lines(self) -> list[str]:
        mib = 1024 * 1024
        out = [f"driver heap max {self.max_heap / mib:,.0f} MiB; setup {self.setup_seconds:.0f}s",
               "", "case                         best s  rounds      peak heap"]  # fmt: skip
        for c in self.cases.values():
            rounds = " ".join(f"{s:.1f}" for s in c.seconds)
            heap = f"{c.peak_heap / mib:8,.0f} MiB" if c.peak_heap else "(in update)"
            out.append(f"{c.name:<28} {c.best:7.2f}  [{rounds}]  {heap}")
            for task in ("ingest_scd", "ingest_cg", "merge", "bare_ingest"):
                d = c.best_detail.get(task)
                if d:
                    parts = ", ".join(f"{k} {v:.2f}" for k, v in d["phases"].items())
                    out.append(f"    {task:<12} {d['seconds']:6.2f}s  ({parts})")
            both = c.best_detail.get("ingests_seconds")
            if both is not None:
                # Each ingest's own seconds include the other's competition for the cores.
                out.append(f"    (both ingests at once: {both:.2f}s until both were done)")
        out += ["", *[r.line() for r in self.ratios]]
        return out

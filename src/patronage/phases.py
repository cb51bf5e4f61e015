"""Wall-clock phases inside a task: logged, and kept for ``patronage bench``.

A stage marks where its time goes (``phases.lap("read")``); the breakdown is
logged once at the end and the last one per task is kept in this process, so
the benchmark can print it next to the task's total without changing the
values the task publishes.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

#: The last breakdown of each task run in this process (task_key -> phase -> seconds).
LAST: dict[str, dict[str, float]] = {}


class Phases:
    def __init__(self, task_key: str) -> None:
        self.task_key = task_key
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        """The time since the previous lap (or the start) was spent in ``name``."""
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._clock, 3)
        self._clock = now

    def done(self) -> dict[str, float]:
        LAST[self.task_key] = dict(self.seconds)
        log.info(
            "%s phases (seconds): %s",
            self.task_key,
            ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()),
        )
        return self.seconds


def last(task_key: str) -> dict[str, float]:
    return dict(LAST.get(task_key, {}))

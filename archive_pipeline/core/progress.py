"""Per-item progress lines while a stage works through a decade (n/N, file, seconds, ETA)."""

from __future__ import annotations

import time
from typing import Protocol


class ProgressLog(Protocol):
    """Where progress lines go: Dagster's `context.log`, or a `logging.Logger`."""

    def info(self, msg: str) -> None: ...
    def warning(self, msg: str) -> None: ...


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class ItemProgress:
    """Logs one line per finished item: `stage decade: n/N file ok in 4.2 s (ETA 1 min 03 s)`.

    The ETA is the elapsed time per finished item times the items left (items run in parallel
    on Ray, so this is wall time, not the sum of item times). Failures are logged as warnings
    with the error class and message (and the worker's traceback, when there is one).
    """

    def __init__(self, log: ProgressLog | None, *, stage: str, decade: str, total: int) -> None:
        self.log = log
        self.prefix = f"{stage} {decade}"
        self.total = total
        self.done = 0
        self.failed = 0
        self.start = time.perf_counter()

    def item_done(
        self,
        name: str,
        *,
        seconds: float,
        error: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Record one finished item (`error`: 'Class: message' when it failed)."""
        self.done += 1
        if self.log is None:
            return
        elapsed = time.perf_counter() - self.start
        left = self.total - self.done
        eta = f"ETA {_duration(elapsed / self.done * left)}" if left else "last item"
        head = f"{self.prefix}: {self.done}/{self.total} {name}"
        if error is None:
            self.log.info(f"{head} ok in {_duration(seconds)} ({eta})")
            return
        self.failed += 1
        message = f"{head} FAILED after {_duration(seconds)}: {error} ({eta})"
        if detail:
            message += f"\n{detail}"
        self.log.warning(message)

    def summary(self) -> str:
        """One line: how many items finished, failed, and in what wall time."""
        return (
            f"{self.prefix}: {self.done} item(s) processed, {self.failed} failed, in "
            f"{_duration(time.perf_counter() - self.start)}"
        )

"""Progress of long work: done / failed / pending, rate and ETA.

A rich progress bar on a terminal; plain timestamped lines (at most every ``every`` s) in
batch jobs and CI, where a bar would only fill the log.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int, every: float = 10.0, stream=None):
        self.label, self.total, self.every = label, total, every
        self.stream = stream or sys.stderr
        self.done = self.failed = 0
        self.start = self.last = time.monotonic()
        self.bar = None
        if total and self.stream.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress
            from rich.progress import TextColumn, TimeRemainingColumn

            self.bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[extra]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total, extra="")
        elif total:
            self._line(force=True)

    def _status(self) -> str:
        elapsed = time.monotonic() - self.start
        finished = self.done + self.failed
        pending = self.total - finished
        rate = finished / elapsed if elapsed > 0 else 0.0
        eta = f"{pending / rate:.0f}s" if rate > 0 else "?"
        return (
            f"{self.label}: {self.done}/{self.total} done, {self.failed} failed, {pending} pending, "
            f"{rate:.2f}/s, ETA {eta}"
        )

    def _line(self, force=False):
        now = time.monotonic()
        if force or now - self.last >= self.every or self.done + self.failed == self.total:
            print(self._status(), file=self.stream, flush=True)
            self.last = now

    def update(self, done: int = 0, failed: int = 0) -> None:
        self.done += done
        self.failed += failed
        if self.bar is not None:
            self.bar.update(self.task, advance=done + failed, extra=f"{self.failed} failed")
        else:
            self._line()

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(message)
        else:
            print(f"{self.label}: {message}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

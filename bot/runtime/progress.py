"""A progress bar with an ETA on stderr, for the long admin verbs (`reindex`).

On a terminal it redraws one line; elsewhere (a log, CI) it prints a line at most every LINE_SECONDS.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
LINE_SECONDS = 10.0


class ProgressBar:
    def __init__(self, total: int, unit: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self.done = 0
        self._last_line = 0.0
        self._tty = self.stream.isatty()
        self._draw(force=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, done: int) -> None:
        self.done = done
        self._draw()

    def close(self) -> None:
        self._draw(force=True)
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()

    def line(self) -> str:
        total = max(self.total, self.done)
        share = self.done / total if total else 1.0
        filled = int(WIDTH * share)
        rate = self.done / self.elapsed if self.elapsed > 0 else 0.0
        eta = (total - self.done) / rate if rate > 0 else None
        return (
            f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done:,}/{total:,} {self.unit} {share:4.0%}"
            f"  {rate:,.1f}/s  elapsed {duration(self.elapsed)}  ETA {duration(eta) if eta is not None else '?'}"
        )

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
        elif force or now - self._last_line >= LINE_SECONDS:
            self._last_line = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()


def duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, rest = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"

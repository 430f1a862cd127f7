"""The demo's progress on stderr: one bar redrawn in place on a terminal, a plain line every
tenth of the way otherwise (a log file or CI keeps readable lines)."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 30


class Progress:
    def __init__(self, stream: TextIO, total: int, *, tty: bool | None = None) -> None:
        self._stream = stream
        self._total = max(1, total)
        self._tty = stream.isatty() if tty is None else tty
        self._started = time.monotonic()
        self._drawn = 0.0
        self._next_line = 0
        self._open = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def say(self, message: str) -> None:
        """A line of its own (above the bar, on a terminal)."""
        self._clear()
        self._stream.write(message + "\n")
        self._stream.flush()

    def update(self, done: int, detail: str) -> None:
        fraction = min(1.0, done / self._total)
        if self._tty:
            now = time.monotonic()
            if done < self._total and now - self._drawn < 0.1:
                return
            self._drawn = now
            filled = round(fraction * _WIDTH)
            bar = "█" * filled + "░" * (_WIDTH - filled)
            self._stream.write(f"\r{bar} {fraction:4.0%}  {detail}  {_clock(self.elapsed)}\x1b[K")
            self._open = True
            self._stream.flush()
        elif fraction * 10 >= self._next_line or done >= self._total:
            self._next_line = int(fraction * 10) + 1
            self._stream.write(f"[{fraction:4.0%}] {detail} ({_clock(self.elapsed)})\n")
            self._stream.flush()

    def finish(self) -> None:
        if self._open:
            self._stream.write("\n")
            self._stream.flush()
            self._open = False

    def _clear(self) -> None:
        if self._open:
            self._stream.write("\r\x1b[K")
            self._open = False


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"

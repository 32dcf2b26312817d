"""One live line on stderr while a long command runs: a carriage-return line on a terminal, sparse lines in a log."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < (0.2 if self.tty else 2.0):
            return
        self._last = now
        sys.stderr.write(("\r" + text.ljust(110)) if self.tty else text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")

"""A live block on a terminal while a depot plays: the simulated time, then one line per charger, redrawn in place."""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Mapping
from typing import TextIO

UP = "\x1b[{}A"  # cursor up n lines
CLEAR_LINE = "\x1b[2K"
CLEAR_BELOW = "\x1b[J"  # a block shorter than the last one leaves no old line behind


class DepotProgress:
    """Redraws at most once per `min_interval_s` of wall time; writes nothing at all when disabled (default: off
    unless the stream is a terminal)."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None, min_interval_s: float = 0.1) -> None:
        self.stream = stream = stream or sys.stderr  # looked up now: the process's stderr may have been replaced
        self.enabled = stream.isatty() if enabled is None else enabled
        self.min_interval_s = min_interval_s
        self._drawn = 0  # lines of the block on screen (0: none)
        self._last = -math.inf
        self._pending: list[str] | None = None  # the latest block not drawn for the rate limit

    def show(self, t_s: float, horizon_s: float, lines: Mapping[str, str], force: bool = False) -> None:
        """The block for simulated time `t_s`: a header, then `lines` (charger id -> text) one per line."""
        if not self.enabled:
            return
        block = [header(t_s, horizon_s)] + [f"{cid:8s} {text}" for cid, text in lines.items()]
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            self._pending = block
            return
        self._last = now
        self._draw(block)

    def done(self) -> None:
        """Leave the last block on screen (drawing one held back by the rate limit) and end it with a newline."""
        if not self.enabled:
            return
        if self._pending is not None:
            self._draw(self._pending)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = 0

    def _draw(self, block: list[str]) -> None:
        width = max(shutil.get_terminal_size().columns - 1, 1)  # a full line would wrap on some terminals
        out = []
        if self._drawn:
            out.append("\r" + (UP.format(self._drawn - 1) if self._drawn > 1 else ""))
        out.append("\n".join(CLEAR_LINE + _one_line(line)[:width] for line in block))
        out.append(CLEAR_BELOW)
        self.stream.write("".join(out))
        self.stream.flush()
        self._drawn = len(block)
        self._pending = None


def header(t_s: float, horizon_s: float) -> str:
    """`simulated hh:mm of hh:mm (p %)`: hours run past 24 on a multi-day horizon."""
    share = t_s / horizon_s * 100 if horizon_s > 0 else 100.0
    return f"depot: simulated {_hhmm(t_s)} of {_hhmm(horizon_s)} ({share:5.1f} %)"


def _hhmm(seconds: float) -> str:
    minutes = int(max(seconds, 0.0) // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _one_line(text: str) -> str:
    """Control characters would move the cursor and break the block's line count."""
    return "".join(c if c.isprintable() else " " for c in text)


def goal_line(t_s: float, event: str) -> str | None:
    """The line that tells a person of an EMS event as it happens: a target found out of reach (None: no line)."""
    if "cannot be met" not in event:
        return None
    return f"mcs-v2g: goal: at {int(t_s // 3600):02d}:{int(t_s % 3600 // 60):02d} truck {event}"

"""The timing chart of a case as inline SVG: one bar per exchange (request -> response time), the request's
V2G_EVCC_Msg_Timeout as a mark on the same axis, late answers in red."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .html_build import h
from .timeline import Timing

MAX_BARS = 100  # a longer session shows its first exchanges and says how many it left out
ROW = 14
LABEL = 230  # width of the request names
PLOT = 440
VALUE = 170  # width of the numbers right of the plot
TOP = 18


def timing_chart(timings: Sequence[Timing]) -> Any:
    """The chart as an <svg> element (None when the case had no exchange)."""
    if not timings:
        return None
    shown = timings[:MAX_BARS]
    scale = max([t.limit for t in shown] + [t.took for t in shown if t.took is not None])
    height = TOP + ROW * len(shown) + (ROW if len(timings) > len(shown) else 0) + 4
    width = LABEL + PLOT + VALUE

    def x(seconds: float) -> float:
        return LABEL + PLOT * min(seconds, scale) / scale

    parts: list[Any] = [
        h("line", x1=LABEL, y1=TOP - 4, x2=LABEL + PLOT, y2=TOP - 4, class_="axis"),
        h("text", "0", x=LABEL, y=TOP - 7, class_="tick"),
        h("text", f"{scale:g} s", x=LABEL + PLOT, y=TOP - 7, text_anchor="end", class_="tick"),
    ]
    for i, timing in enumerate(shown):
        y = TOP + i * ROW
        parts.append(h("text", timing.request, x=LABEL - 6, y=y + 10, text_anchor="end"))
        if timing.took is None:
            parts.append(h("text", "no answer", x=LABEL + 4, y=y + 10, class_="none"))
            value = f"+{timing.at:.3f} s: no answer"
        else:
            bar_class = "late" if timing.late else "ok"
            parts.append(
                h("rect", x=LABEL, y=y + 2, width=f"{max(x(timing.took) - LABEL, 1):.1f}", height=10, class_=bar_class)
            )
            value = f"{timing.took * 1000:.1f} ms / {timing.limit:g} s"
        limit_x = f"{x(timing.limit):.1f}"
        parts.append(h("line", x1=limit_x, y1=y, x2=limit_x, y2=y + ROW, class_="limit"))
        parts.append(h("text", value, x=LABEL + PLOT + 6, y=y + 10))
    if len(timings) > len(shown):
        left_out = f"... {len(timings) - len(shown)} more exchanges, {sum(t.late for t in timings[MAX_BARS:])} late"
        parts.append(h("text", left_out, x=LABEL, y=TOP + len(shown) * ROW + 10))
    return h(
        "svg",
        h("title", "Response time per exchange; the mark is the request's V2G_EVCC_Msg_Timeout"),
        parts,
        class_="chart",
        width=width,
        height=height,
        viewBox=f"0 0 {width} {height}",
    )

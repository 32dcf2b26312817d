"""What the reports show of a case, read from its trace: the rows of its timeline (capped), each exchange's
response time against V2G_EVCC_Msg_Timeout, the rule texts, and device text made safe to print in XML and HTML.

Everything here is plain data; `junit.py` and `html_report.py` only lay it out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache

from stack.exi import to_xml
from stack.session.rulebook import BY_NAME, all_rules
from stack.session.rules import Rule

from .trace import Entry, Kind, Trace

MAX_ROWS = 400  # a timeline longer than this shows its first and last entries and says how many it left out
MESSAGE_KINDS = frozenset({Kind.SENT, Kind.RECEIVED})
RESPONSES = {x.response_name: x.name for x in BY_NAME.values()}

# characters XML 1.0 cannot carry (a device's bytes may hold any of them): shown as escapes instead
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """`text` with every character XML 1.0 cannot hold written as an escape (`\\x00`)."""
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def family(case_id: str) -> str:
    """The family of a case: the first two parts of its id (`SECC-TIME` of `SECC-TIME-CableCheck`)."""
    return "-".join(case_id.split("-")[:2])


@cache
def rule_book() -> dict[str, Rule]:
    """Every rule of the rulebook by id."""
    return {rule.id: rule for rule in all_rules()}


def direction(entry: Entry) -> str:
    """Who sent it: the tester to the device under test (`→ DUT`) or back (`← DUT`); empty for notes."""
    if entry.kind in (Kind.SENT, Kind.SENT_RAW):
        return "→ DUT"
    if entry.kind in (Kind.RECEIVED, Kind.MALFORMED):
        return "← DUT"
    return ""


def response_code(message: object) -> str:
    """The ResponseCode a message carries, or ''."""
    code = getattr(message, "response_code", None)
    if code is None:
        return ""
    return str(code.value) if isinstance(code, Enum) else str(code)


def label(entry: Entry) -> str:
    """The message name of a message entry, else its kind (and name, e.g. the rule of a violation)."""
    if entry.kind in MESSAGE_KINDS:
        return entry.name
    return f"{entry.kind.value} {entry.name}".strip()


def decoded_xml(message: object) -> str:
    """The message as XML, or why it cannot be shown (a mutated message may not render)."""
    try:
        return clean(to_xml(message))
    except Exception as exc:  # the report must show the rest of the case whatever one message holds
        return f"(cannot render as XML: {type(exc).__name__}: {clean(str(exc))})\n{clean(repr(message))}"


def hexdump(data: bytes, limit: int = 512) -> str:
    """The first `limit` bytes as hex, 32 a line."""
    shown = data[:limit]
    lines = [shown[i : i + 32].hex(" ") for i in range(0, len(shown), 32)]
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Rows:
    """A timeline capped at `MAX_ROWS`: its first entries, its last ones, and how many lie between."""

    head: Sequence[Entry]
    tail: Sequence[Entry]
    left_out: int


def rows(trace: Trace, limit: int = MAX_ROWS) -> Rows:
    entries = trace.entries
    if len(entries) <= limit:
        return Rows(entries, (), 0)
    keep_tail = limit // 4  # the end of a case holds its verdict more often than the middle does
    keep_head = limit - keep_tail
    return Rows(entries[:keep_head], entries[-keep_tail:], len(entries) - limit)


def since(trace: Trace, t: float | None) -> str:
    """A clock time as seconds since the case started (`+1.234 s`), or ''."""
    return "" if t is None else f"+{t - trace.started:.3f} s"


def text_line(trace: Trace, entry: Entry) -> str:
    """One entry as a line of plain text."""
    parts = [f"{since(trace, entry.t):>11}", f"{direction(entry):5}", label(entry)]
    if entry.message is not None and (code := response_code(entry.message)):
        parts.append(code)
    if entry.data and entry.kind not in MESSAGE_KINDS:
        parts.append(f"({len(entry.data)} bytes)")
    if entry.detail:
        parts.append(f"- {entry.detail}")
    return clean(" ".join(parts))


def text_timeline(trace: Trace) -> str:
    """The timeline as plain text, capped like the HTML one."""
    capped = rows(trace)
    lines = [text_line(trace, e) for e in capped.head]
    if capped.left_out:
        lines.append(f"... {capped.left_out} entries left out ...")
    lines.extend(text_line(trace, e) for e in capped.tail)
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Timing:
    """One exchange: the request, when it went (seconds since the case started), how long the answer took
    (None: no answer came) and the V2G_EVCC_Msg_Timeout of that request."""

    request: str
    at: float
    took: float | None
    limit: float

    @property
    def late(self) -> bool:
        return self.took is not None and self.took > self.limit


def timings(trace: Trace) -> list[Timing]:
    """Each request of the trace with the time to its response (the first one of that name from the other side).

    Works for both roles: the tester's requests to a charger, or a truck's requests to the tester."""
    pending: list[Entry] = []
    answered: dict[int, float] = {}
    for entry in trace.entries:
        if entry.kind not in MESSAGE_KINDS:
            continue
        if entry.name in BY_NAME:
            pending.append(entry)
        elif (request := RESPONSES.get(entry.name)) is not None:
            match = next((p for p in pending if p.name == request and p.kind is not entry.kind), None)
            if match is not None:
                pending.remove(match)
                answered[id(match)] = entry.t - match.t
    requests = [e for e in trace.entries if e.kind in MESSAGE_KINDS and e.name in BY_NAME]
    return [Timing(e.name, e.t - trace.started, answered.get(id(e)), BY_NAME[e.name].evcc_timeout) for e in requests]

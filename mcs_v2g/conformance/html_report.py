"""One self-contained HTML file of a run: inline CSS, no script, no external resource; `<details>` collapse.

    summary (counts per verdict, meta) | table of cases | per case: verdict, rules with their text,
    connection notes, timing chart (SVG), timeline with the decoded XML of each message

Everything the device sent is escaped (lxml serializes it). The size stays bounded: a timeline shows at most
`timeline.MAX_ROWS` entries, the chart `timing_chart.MAX_BARS` exchanges, and a case shows decoded XML up to a
budget of characters (the message of the verdict always).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .html_build import document, h
from .timeline import (
    MESSAGE_KINDS,
    decoded_xml,
    direction,
    hexdump,
    label,
    response_code,
    rows,
    rule_book,
    since,
    timings,
)
from .timing_chart import timing_chart
from .trace import Entry, Kind
from .verdict import CaseResult, Outcome

XML_BUDGET = 40_000  # characters of decoded XML in a failing case (about 30 charge loop messages)
XML_BUDGET_OK = 10_000  # in a case that passed or was inconclusive, where the reader looks less
NOTE_KINDS = frozenset({Kind.CONNECTED, Kind.TLS, Kind.PEER_CLOSED, Kind.WE_CLOSED, Kind.SILENCE})
MAX_NOTES = 50

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;margin:.3em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}
.v{display:inline-block;min-width:7em;text-align:center;font-weight:bold;color:#fff;border-radius:3px;padding:0 4px}
.v.pass{background:#2e7d32}.v.fail{background:#c62828}.v.inconclusive{background:#757575}.v.error{background:#e65100}
details.case{border:1px solid #ddd;border-radius:4px;margin:.4em 0;padding:.2em .6em}
details.case>summary{cursor:pointer}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;margin:2px 0;padding:4px;font-size:12px}
code{font-size:13px}
tr.note td{color:#555;font-style:italic}
tr.verdict td{background:#fff3e0}
tr.gap td{text-align:center;color:#888}
.chart text{font:11px monospace;fill:#222}.chart .tick{fill:#666}.chart .none{fill:#c62828}
.chart .ok{fill:#66bb6a}.chart .late{fill:#e53935}
.chart .limit{stroke:#000;stroke-width:2}.chart .axis{stroke:#999}
"""


def write_html(results: Sequence[CaseResult], path: Path, title: str, meta: Mapping[str, str]) -> None:
    """Write the report of one run to `path`; `meta` (device, date, tester version, ...) heads the summary."""
    page = h(
        "html",
        h("head", h("meta", charset="utf-8"), h("title", title), h("style", CSS)),
        h(
            "body",
            h("h1", title),
            _summary(results, meta),
            h("h2", "Cases"),
            _case_table(results),
            h("h2", "Details"),
            [_case(i, result) for i, result in enumerate(results)],
        ),
        lang="en",
    )
    path.write_text(document(page), encoding="utf-8")


def _badge(outcome: Outcome) -> Any:
    return h("span", outcome.value, class_=f"v {outcome.value}")


def _summary(results: Sequence[CaseResult], meta: Mapping[str, str]) -> Any:
    counts = Counter(r.verdict.outcome for r in results)
    facts = [h("tr", h("th", key), h("td", value)) for key, value in meta.items()]
    facts.append(h("tr", h("th", "cases"), h("td", str(len(results)))))
    facts.append(h("tr", h("th", "duration"), h("td", f"{sum(r.duration_s for r in results):.1f} s")))
    verdicts = [h("tr", h("td", _badge(o)), h("td", str(counts[o]), class_=f"count-{o.value}")) for o in Outcome]
    return h("div", h("table", facts, class_="meta"), h("table", verdicts, class_="counts"), class_="summary")


def _case_table(results: Sequence[CaseResult]) -> Any:
    head = h("tr", [h("th", c) for c in ("id", "title", "verdict", "rule", "expected", "seen")])
    lines = [
        h(
            "tr",
            h("td", h("a", r.case_id, href=f"#case-{i}")),
            h("td", r.title),
            h("td", _badge(r.verdict.outcome)),
            h("td", r.verdict.rule),
            h("td", r.verdict.expected),
            h("td", r.verdict.seen),
        )
        for i, r in enumerate(results)
    ]
    return h("table", head, lines, class_="cases")


def _case(index: int, result: CaseResult) -> Any:
    verdict = result.verdict
    shown = verdict.outcome in (Outcome.FAIL, Outcome.ERROR)
    chart = timing_chart(timings(result.trace))
    return h(
        "details",
        h("summary", _badge(verdict.outcome), " ", h("code", result.case_id), " ", result.title),
        h("table", _verdict_lines(result), class_="verdict"),
        h("h3", "Rules"),
        _rules(result),
        h("h3", "Connection"),
        _notes(result),
        [h("h3", "Response times"), chart] if chart is not None else None,
        h("h3", "Timeline"),
        _timeline(result),
        class_="case",
        id=f"case-{index}",
        **({"open": "open"} if shown else {}),
    )


def _verdict_lines(result: CaseResult) -> list[Any]:
    v = result.verdict
    facts = [
        ("verdict", v.outcome.value),
        ("rule", v.rule),
        ("expected", v.expected),
        ("seen", v.seen),
        ("message", v.message),
        ("at", since(result.trace, v.t)),
        ("tags", ", ".join(result.tags)),
        ("duration", f"{result.duration_s:.3f} s"),
    ]
    return [h("tr", h("th", name), h("td", value)) for name, value in facts if value]


def _rules(result: CaseResult) -> Any:
    ids = list(result.rules)
    if result.verdict.rule and result.verdict.outcome is Outcome.FAIL and result.verdict.rule not in ids:
        ids.append(result.verdict.rule)
    book = rule_book()
    lines = []
    for rule_id in ids:
        rule = book.get(rule_id)
        text, source = (rule.text, rule.source) if rule is not None else ("(not in the rulebook)", "")
        lines.append(h("tr", h("td", h("code", rule_id)), h("td", text), h("td", source)))
    return h("table", h("tr", h("th", "rule"), h("th", "text"), h("th", "source")), lines, class_="rules")


def _notes(result: CaseResult) -> Any:
    trace = result.trace
    items = [
        h("li", f"{since(trace, e.t)} {label(e)}: {e.detail}".strip(" :"))
        for e in trace.entries
        if e.kind in NOTE_KINDS
    ]
    if len(items) > MAX_NOTES:
        items = [*items[:MAX_NOTES], h("li", f"... {len(items) - MAX_NOTES} more")]
    recording = result.recording
    if recording is not None:
        items.extend(h("li", f"capture: {note}") for note in recording.notes)
        if recording.keylog:
            items.append(h("li", f"TLS secrets recorded ({len(recording.keylog.splitlines())} key log lines)"))
    return h("ul", items or h("li", "nothing recorded"), class_="notes")


def _timeline(result: CaseResult) -> Any:
    trace, verdict = result.trace, result.verdict
    if not trace.entries:
        return h("p", "no entries")
    capped = rows(trace)
    allowed = XML_BUDGET_OK if verdict.ok else XML_BUDGET
    left = allowed

    def payload(entry: Entry, always: bool) -> Any:
        """The decoded XML of a message (while the budget lasts), or the raw bytes of what did not decode."""
        nonlocal left
        if entry.message is not None:
            if left <= 0 and not always:
                return None
            xml = decoded_xml(entry.message)
            left -= len(xml)
            return h("details", h("summary", "XML"), h("pre", xml))
        if entry.data:
            return h("details", h("summary", f"{len(entry.data)} bytes"), h("pre", hexdump(entry.data)))
        return None

    def row(entry: Entry) -> Any:
        # the entry the verdict names: its message, or else a note at its time (a violation, a close, a silence)
        named = entry.name == verdict.message if verdict.message else entry.kind not in MESSAGE_KINDS
        is_verdict = entry.t == verdict.t and named
        classes = [] if entry.kind in MESSAGE_KINDS else ["note"]
        classes += ["verdict"] if is_verdict else []
        return h(
            "tr",
            h("td", since(trace, entry.t)),
            h("td", direction(entry)),
            h("td", label(entry)),
            h("td", response_code(entry.message) if entry.message is not None else ""),
            h("td", entry.detail or None, payload(entry, is_verdict)),
            **({"class_": " ".join(classes)} if classes else {}),
        )

    head = h("tr", [h("th", c) for c in ("time", "dir", "message", "code", "detail")])
    gap = None
    if capped.left_out:
        gap = h("tr", h("td", f"... {capped.left_out} entries left out ...", colspan=5), class_="gap")
    table = h("table", head, [row(e) for e in capped.head], gap, [row(e) for e in capped.tail], class_="timeline")
    spent = None
    if left <= 0:
        spent = h("p", f"Decoded XML is shown up to {allowed} characters in this case, and for the verdict's message.")
    return [spent, table]

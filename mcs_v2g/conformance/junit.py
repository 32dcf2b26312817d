"""JUnit XML of a run, the file CI systems (Jenkins, GitLab, GitHub actions) read.

    testsuites > testsuite > testcase (classname: the case's family, name: its id, time)
        properties (rule, tag)   failure | error | skipped   system-out (the timeline)

fail -> <failure type="RULE-ID" message="RULE-ID: expected ..., seen ...">, error (the tester failed) -> <error>,
inconclusive -> <skipped message="why">. Properties inside a testcase follow the common convention documented by
testmoapp/junitxml ("Properties for suites & cases"); Jenkins and pytest's xunit1 flavour write them too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from lxml import etree

from .timeline import clean, family, rule_book, since, text_timeline
from .verdict import CaseResult, Outcome


def write_junit(results: Sequence[CaseResult], path: Path, suite: str) -> None:
    """Write the results of one run as JUnit XML to `path`."""
    counts = Counter(r.verdict.outcome for r in results)
    totals = {
        "tests": str(len(results)),
        "failures": str(counts[Outcome.FAIL]),
        "errors": str(counts[Outcome.ERROR]),
        "skipped": str(counts[Outcome.INCONCLUSIVE]),
        "time": f"{sum(r.duration_s for r in results):.3f}",
    }
    root = etree.Element("testsuites", name=clean(suite), **totals)
    testsuite = etree.SubElement(root, "testsuite", name=clean(suite), **totals)
    for result in results:
        testsuite.append(_testcase(result))
    etree.ElementTree(root).write(str(path), encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _testcase(result: CaseResult) -> etree._Element:
    case = etree.Element(
        "testcase", classname=family(result.case_id), name=clean(result.case_id), time=f"{result.duration_s:.3f}"
    )
    properties = etree.SubElement(case, "properties")
    for rule in result.rules:
        etree.SubElement(properties, "property", name="rule", value=clean(rule))
    for tag in result.tags:
        etree.SubElement(properties, "property", name="tag", value=clean(tag))
    etree.SubElement(properties, "property", name="title", value=clean(result.title))
    verdict = result.verdict
    if verdict.outcome is Outcome.FAIL:
        message = f"{verdict.rule}: expected {verdict.expected}, seen {verdict.seen}"
        failure = etree.SubElement(case, "failure", message=clean(message), type=clean(verdict.rule))
        failure.text = _failure_text(result)
    elif verdict.outcome is Outcome.ERROR:
        error = etree.SubElement(case, "error", message=clean(verdict.seen), type="tester-error")
        error.text = clean(verdict.seen)
    elif verdict.outcome is Outcome.INCONCLUSIVE:
        etree.SubElement(case, "skipped", message=clean(verdict.seen))
    if result.trace.entries:
        etree.SubElement(case, "system-out").text = text_timeline(result.trace)
    return case


def _failure_text(result: CaseResult) -> str:
    verdict = result.verdict
    rule = rule_book().get(verdict.rule)
    lines = [f"rule: {verdict.rule}"]
    if rule is not None:
        lines.append(f"  {rule.text} ({rule.source})")
    lines += [f"expected: {verdict.expected}", f"seen: {verdict.seen}"]
    if verdict.message:
        lines.append(f"message: {verdict.message}")
    if verdict.t is not None:
        lines.append(f"at: {since(result.trace, verdict.t)}")
    return clean("\n".join(lines))

"""The JUnit XML and HTML reports of a run: built from hand-made case results with real messages, written, parsed
back and checked for content, structure, escaping of what a device sent, and self-containedness."""

from __future__ import annotations

import pytest
from lxml import etree
from lxml import html as lxml_html

from mcs_v2g.conformance.html_report import write_html
from mcs_v2g.conformance.junit import write_junit
from mcs_v2g.conformance.timeline import MAX_ROWS, clean, family, rule_book, timings
from mcs_v2g.conformance.trace import Entry, Kind, Trace
from mcs_v2g.conformance.verdict import CaseResult, error, failed, inconclusive, passed
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages.minimal import minimal
from stack.session.rulebook import message_name
from stack.session.timers import TimerId

HOSTILE = "<script>alert('dut')</script>\x00"
LATE_RULE = TimerId.EVCC_MESSAGE.value
START = 1000.0


def message_entry(t: float, kind: Kind, message: object) -> Entry:
    return Entry(START + t, kind, message_name(message), message, b"\x01\xfe\x80\x02")


def session_trace() -> Trace:
    trace = Trace(started=START)
    trace.add(Entry(START, Kind.CONNECTED, detail="tcp [fe80::1]:15118"))
    trace.add(message_entry(0.01, Kind.SENT, minimal(cm.SessionSetupReq)))
    trace.add(message_entry(0.05, Kind.RECEIVED, minimal(cm.SessionSetupRes)))
    trace.add(Entry(START + 0.06, Kind.WE_CLOSED, detail="the case is done"))
    return trace


def late_trace() -> Trace:
    trace = Trace(started=START)
    trace.add(message_entry(0.0, Kind.SENT, minimal(dc.DcCableCheckReq)))
    trace.add(Entry(START + 0.5, Kind.MALFORMED, data=b"\x00<script>", detail=HOSTILE))
    trace.add(message_entry(2.7, Kind.RECEIVED, minimal(dc.DcCableCheckRes)))
    trace.add(Entry(START + 2.8, Kind.PEER_CLOSED, detail="the device closed the connection"))
    return trace


def long_trace(exchanges: int) -> Trace:
    trace = Trace(started=START)
    for i in range(exchanges):
        trace.add(message_entry(i * 0.25, Kind.SENT, minimal(dc.DcChargeLoopReq)))
        trace.add(message_entry(i * 0.25 + 0.01, Kind.RECEIVED, minimal(dc.DcChargeLoopRes)))
    return trace


def results() -> list[CaseResult]:
    late = failed(LATE_RULE, "DC_CableCheckRes within 2 s", f"after 2.7 s {HOSTILE}", "DC_CableCheckRes", START + 2.7)
    return [
        CaseResult("SECC-SEQ-SessionSetup", "SessionSetup in sequence", ("MV-SEQUENCE",), ("seq",), passed(),
                   session_trace(), duration_s=0.06),
        CaseResult("SECC-TIME-CableCheck", "CableCheck in time", (LATE_RULE,), ("timing",), late, late_trace(),
                   duration_s=2.8),
        CaseResult("SECC-SESSION-MCS-DYNAMIC", "MCS dynamic", ("MV-SEQUENCE",), (),
                   inconclusive("the device does not offer MCS")),
        CaseResult("SECC-SID-SessionStop", "SessionStop with a wrong SessionID", ("MV-SAME-SESSION",), (),
                   error("cannot reach the device: refused"), Trace(started=START)),
        CaseResult("SECC-SESSION-DC-SCHEDULED", "a long session", ("MV-SEQUENCE",), (), passed(), long_trace(400),
                   duration_s=100.0),
    ]  # fmt: skip


# --- JUnit -------------------------------------------------------------------------------------------------------

# The structure the common JUnit schemas (Jenkins xunit junit-10.xsd, Apache Ant's JUnit.xsd) and the conventions
# collected by testmoapp/junitxml agree on: element -> (allowed children, required attributes, integer attributes).
JUNIT = {
    "testsuites": ({"testsuite"}, set(), {"tests", "failures", "errors", "skipped"}),
    "testsuite": ({"properties", "testcase", "system-out", "system-err"}, {"name", "tests"},
                  {"tests", "failures", "errors", "skipped"}),
    "properties": ({"property"}, set(), set()),
    "property": (set(), {"name", "value"}, set()),
    "testcase": ({"properties", "skipped", "error", "failure", "system-out", "system-err"}, {"name", "classname"},
                 set()),
    "failure": (set(), set(), set()),
    "error": (set(), set(), set()),
    "skipped": (set(), set(), set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}  # fmt: skip
RESULTS = ("skipped", "error", "failure")


def junit_problems(element: etree._Element) -> list[str]:
    """What in a JUnit tree breaks the common structure (empty when it is fine)."""
    problems = []
    if element.tag not in JUNIT:
        return [f"unknown element {element.tag}"]
    children, required, integers = JUNIT[element.tag]
    for name in sorted(required - set(element.attrib)):
        problems.append(f"{element.tag} lacks {name}")
    for name in sorted(integers & set(element.attrib)):
        if not element.get(name, "").isdigit():
            problems.append(f"{element.tag}/@{name} is not a count")
    if "time" in element.attrib:
        try:
            float(element.get("time", ""))
        except ValueError:
            problems.append(f"{element.tag}/@time is not a number")
    tags = [child.tag for child in element]
    if element.tag == "testcase":
        if sum(tag in RESULTS for tag in tags) > 1:
            problems.append("a testcase with more than one result")
        order = {"properties": 0, "skipped": 1, "error": 1, "failure": 1, "system-out": 2, "system-err": 3}
        if [order.get(t, 9) for t in tags] != sorted(order.get(t, 9) for t in tags):
            problems.append(f"testcase children out of order: {tags}")
    if element.tag == "testsuite" and tags.count("properties") > 1:
        problems.append("two properties in a testsuite")
    for child in element:
        if child.tag not in children:
            problems.append(f"{child.tag} inside {element.tag}")
        else:
            problems.extend(junit_problems(child))
    return problems


@pytest.fixture(scope="module")
def junit(tmp_path_factory: pytest.TempPathFactory) -> etree._Element:
    path = tmp_path_factory.mktemp("junit") / "run.xml"
    write_junit(results(), path, "secc <dut>")
    return etree.parse(str(path)).getroot()


def test_junit_keeps_the_common_structure(junit: etree._Element) -> None:
    assert junit.tag == "testsuites"
    assert junit_problems(junit) == []


def test_the_structure_check_finds_a_broken_file() -> None:
    bad = etree.fromstring(
        '<testsuites><testsuite tests="x"><testcase name="a"><failure/><properties/><skipped/></testcase>'
        "<testcase classname='b'/><bogus/></testsuite></testsuites>"
    )
    problems = junit_problems(bad)
    for expected in ("testsuite lacks name", "testsuite/@tests is not a count", "out of order", "more than one",
                     "testcase lacks classname", "testcase lacks name", "bogus inside testsuite"):  # fmt: skip
        assert any(expected in p for p in problems), (expected, problems)


def test_junit_counts(junit: etree._Element) -> None:
    for element in (junit, junit[0]):
        assert (element.get("tests"), element.get("failures"), element.get("errors"), element.get("skipped")) == (
            "5",
            "1",
            "1",
            "1",
        )
    assert junit[0].get("name") == "secc <dut>"
    assert len(junit.findall("testsuite/testcase")) == 5


def case_of(junit: etree._Element, case_id: str) -> etree._Element:
    (case,) = junit.xpath("testsuite/testcase[@name=$id]", id=case_id)
    return case


def test_a_failure_carries_its_rule(junit: etree._Element) -> None:
    case = case_of(junit, "SECC-TIME-CableCheck")
    assert case.get("classname") == "SECC-TIME" and float(case.get("time")) == pytest.approx(2.8)
    (failure,) = case.findall("failure")
    assert failure.get("type") == LATE_RULE
    assert failure.get("message").startswith(f"{LATE_RULE}: expected DC_CableCheckRes within 2 s, seen after 2.7 s")
    assert rule_book()[LATE_RULE].text in failure.text
    assert "at: +2.700 s" in failure.text
    assert [p.get("value") for p in case.findall("properties/property[@name='rule']")] == [LATE_RULE]
    assert "DC_CableCheckReq" in case.findtext("system-out")


def test_error_and_inconclusive(junit: etree._Element) -> None:
    (err,) = case_of(junit, "SECC-SID-SessionStop").findall("error")
    assert err.get("message") == "cannot reach the device: refused"
    (skipped,) = case_of(junit, "SECC-SESSION-MCS-DYNAMIC").findall("skipped")
    assert skipped.get("message") == "the device does not offer MCS"
    passing = case_of(junit, "SECC-SEQ-SessionSetup")
    assert [child.tag for child in passing] == ["properties", "system-out"]


def test_junit_keeps_hostile_text_as_text(junit: etree._Element) -> None:
    (failure,) = case_of(junit, "SECC-TIME-CableCheck").findall("failure")
    assert "<script>alert('dut')</script>\\x00" in failure.get("message")  # a NUL cannot be XML: written escaped
    assert junit.xpath("//script") == []


def test_junit_caps_a_long_timeline(junit: etree._Element) -> None:
    out = case_of(junit, "SECC-SESSION-DC-SCHEDULED").findtext("system-out")
    assert len(out.splitlines()) == MAX_ROWS + 1
    assert "400 entries left out" in out


# --- HTML --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, lxml_html.HtmlElement]:
    path = tmp_path_factory.mktemp("html") / "run.html"
    meta = {"device": "Charger <b>X</b>", "date": "2026-12-05", "tester version": "0.9.0"}
    write_html(results(), path, "Conformance of <dut>", meta)
    text = path.read_text(encoding="utf-8")
    return text, lxml_html.document_fromstring(text)


def test_html_summary(page: tuple[str, lxml_html.HtmlElement]) -> None:
    _, doc = page
    counts = {o: doc.xpath(f"string(//td[@class='count-{o}'])") for o in ("pass", "fail", "inconclusive", "error")}
    assert counts == {"pass": "2", "fail": "1", "inconclusive": "1", "error": "1"}
    meta = {tr.findtext("th"): tr.findtext("td") for tr in doc.xpath("//table[@class='meta']/tr")}
    assert meta["device"] == "Charger <b>X</b>" and meta["tester version"] == "0.9.0" and meta["date"] == "2026-12-05"
    assert doc.findtext(".//title") == "Conformance of <dut>"


def test_html_case_table(page: tuple[str, lxml_html.HtmlElement]) -> None:
    _, doc = page
    lines = doc.xpath("//table[@class='cases']/tr[td]")
    assert len(lines) == 5
    cells = [td.text_content() for td in lines[1].findall("td")]
    assert cells[:4] == ["SECC-TIME-CableCheck", "CableCheck in time", "fail", LATE_RULE]
    assert cells[4] == "DC_CableCheckRes within 2 s"
    assert lines[1].xpath("td/a/@href") == ["#case-1"]


def test_html_case_details(page: tuple[str, lxml_html.HtmlElement]) -> None:
    _, doc = page
    failing = doc.get_element_by_id("case-1")
    assert failing.tag == "details" and failing.get("open") is not None
    assert doc.get_element_by_id("case-0").get("open") is None  # a pass stays collapsed
    assert rule_book()[LATE_RULE].text in failing.text_content()
    timeline = failing.xpath(".//table[@class='timeline']/tr[td]")
    assert [tr.findall("td")[2].text_content() for tr in timeline] == [
        "DC_CableCheckReq",
        "malformed",
        "DC_CableCheckRes",
        "peer-closed",
    ]
    assert [tr.findall("td")[0].text for tr in timeline][2] == "+2.700 s"
    assert "verdict" in timeline[2].get("class")  # the row the verdict is about
    xml = doc.get_element_by_id("case-0").xpath(".//details/pre/text()")
    assert any(x.lstrip().startswith("<cm:SessionSetupReq") for x in xml)
    assert "peer-closed" in failing.xpath("string(.//ul[@class='notes'])")


def test_html_escapes_what_the_device_sent(page: tuple[str, lxml_html.HtmlElement]) -> None:
    text, doc = page
    assert "<script" not in text and "<b>X</b>" not in text
    assert "&lt;script&gt;alert('dut')&lt;/script&gt;\\x00" in text
    assert doc.xpath("//script") == [] and doc.xpath("//b") == []


def test_html_timing_chart(page: tuple[str, lxml_html.HtmlElement]) -> None:
    _, doc = page
    (chart,) = doc.get_element_by_id("case-1").xpath(".//svg")
    (bar,) = chart.xpath(".//rect")
    assert bar.get("class") == "late"
    (limit,) = chart.xpath(".//line[@class='limit']")
    assert float(limit.get("x1")) < float(bar.get("x")) + float(bar.get("width"))  # the bar runs past the limit
    assert "2700.0 ms / 2 s" in chart.text_content()
    (ok_chart,) = doc.get_element_by_id("case-0").xpath(".//svg")
    assert ok_chart.xpath(".//rect/@class") == ["ok"]


def test_html_has_no_external_reference(page: tuple[str, lxml_html.HtmlElement]) -> None:
    text, doc = page
    assert doc.xpath("//script | //link | //img | //iframe | //object | //embed") == []
    for ref in doc.xpath("//@src | //@href | //@action | //@srcset | //@poster"):
        assert ref.startswith("#"), ref
    assert "http://" not in text and "https://" not in text and "url(" not in text


def test_html_caps_a_long_timeline(page: tuple[str, lxml_html.HtmlElement]) -> None:
    _, doc = page
    long_case = doc.get_element_by_id("case-4")
    rows = long_case.xpath(".//table[@class='timeline']/tr[td]")
    assert len(rows) == MAX_ROWS + 1
    assert "400 entries left out" in long_case.xpath("string(.//tr[@class='gap'])")
    bars = long_case.xpath(".//svg//rect")
    assert 0 < len(bars) < 400  # the chart is capped too
    assert "more exchanges" in long_case.xpath("string(.//svg)")


# --- what the reports read ---------------------------------------------------------------------------------------


def test_timings_pair_requests_and_responses_in_both_roles() -> None:
    trace = Trace(started=START)
    trace.add(message_entry(1.0, Kind.RECEIVED, minimal(dc.DcPreChargeReq)))  # a truck asks the tester (as SECC)
    trace.add(message_entry(1.2, Kind.SENT, minimal(dc.DcPreChargeRes)))
    trace.add(message_entry(2.0, Kind.SENT, minimal(dc.DcChargeLoopReq)))  # the tester asks a charger
    trace.add(message_entry(2.9, Kind.RECEIVED, minimal(dc.DcChargeLoopRes)))
    trace.add(message_entry(3.0, Kind.SENT, minimal(cm.SessionStopReq)))  # never answered
    found = timings(trace)
    assert [(t.request, t.at, t.took, t.limit, t.late) for t in found] == [
        ("DC_PreChargeReq", pytest.approx(1.0), pytest.approx(0.2), 2.0, False),
        ("DC_ChargeLoopReq", pytest.approx(2.0), pytest.approx(0.9), 0.5, True),
        ("SessionStopReq", pytest.approx(3.0), None, 2.0, False),
    ]


def test_a_response_from_the_same_side_answers_nothing() -> None:
    trace = Trace(started=START)
    trace.add(message_entry(0.0, Kind.SENT, minimal(dc.DcPreChargeReq)))
    trace.add(message_entry(0.1, Kind.SENT, minimal(dc.DcPreChargeRes)))
    assert [t.took for t in timings(trace)] == [None]


def test_clean_and_family() -> None:
    assert clean("a\x00b\x1bc\ud800\tok\n") == "a\\x00b\\x1bc\\ud800\tok\n"
    assert family("SECC-TIME-DC_CableCheck") == "SECC-TIME" and family("V2GTP") == "V2GTP"


def test_html_bounds_decoded_xml_but_keeps_the_verdicts_message(tmp_path) -> None:
    trace = long_trace(300)
    last = trace.entries[-1]
    verdict = failed(LATE_RULE, "DC_ChargeLoopRes within 0.5 s", "after 0.6 s", last.name, last.t)
    path = tmp_path / "long.html"
    write_html([CaseResult("SECC-TIME-ChargeLoop", "late", (LATE_RULE,), (), verdict, trace)], path, "t", {})
    case = lxml_html.document_fromstring(path.read_text(encoding="utf-8")).get_element_by_id("case-0")
    rows = case.xpath(".//table[@class='timeline']/tr[td]")
    with_xml = [i for i, tr in enumerate(rows) if tr.xpath(".//pre")]
    assert 10 < len(with_xml) < 100 and with_xml[-1] == len(rows) - 1
    assert rows[-1].get("class") == "verdict"
    assert "Decoded XML is shown up to" in case.text_content()

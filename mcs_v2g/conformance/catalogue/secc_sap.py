"""Charger under test, the tester as the EV: the SupportedAppProtocol handshake. The tester offers crafted entry
lists (no common protocol, priorities, list order, minor and major versions, 20 entries) and judges the charger's
choice: the SchemaID of the highest-priority entry it supports, or Failed_NoNegotiation and the close."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stack.messages import app_protocol as ap
from stack.session import conduct
from stack.session.config import DC_NAMESPACE
from stack.session.exchanges import sap

from ..bench import Bench
from ..case import Breaker, Case
from ..driver import Fault, Script
from ..judges import CLOSE_WITHIN_S, closed_after
from ..trace import Kind, Trace
from ..verdict import Verdict, failed, passed
from .common import continue_with, run_ev

AP = ap.ResponseCode
SAP_REQ, SAP_RES = "supportedAppProtocolReq", "supportedAppProtocolRes"
UNKNOWN = "urn:example:unknown-protocol:{}"  # namespaces no charger speaks
OK, MINOR, NONE = AP.OK_SuccessfulNegotiation, AP.OK_SuccessfulNegotiationWithMinorDeviation, AP.Failed_NoNegotiation
MAX_ENTRIES = 20  # XSD: 1..20 AppProtocol


@dataclass(frozen=True)
class Entry:
    namespace: str
    schema_id: int
    priority: int
    major: int = 1
    minor: int = 0

    def xsd(self) -> ap.AppProtocol:
        return ap.AppProtocol(
            protocol_namespace=self.namespace,
            version_number_major=self.major,
            version_number_minor=self.minor,
            schema_id=self.schema_id,
            priority=self.priority,
        )


def dc(schema_id: int, priority: int, major: int = 1, minor: int = 0) -> Entry:
    return Entry(DC_NAMESPACE, schema_id, priority, major, minor)


def unknown(schema_id: int, priority: int) -> Entry:
    return Entry(UNKNOWN.format(schema_id), schema_id, priority)


@dataclass(frozen=True)
class Offer:
    """One crafted SAP request, the charger's expected answer (code, SchemaID), and the wrong answer of our broken
    charger (code, SchemaID) that makes the case fail."""

    tail: str
    title: str
    entries: tuple[Entry, ...]
    code: AP
    schema_id: int | None
    wrong: tuple[AP, int | None]
    rule: str = conduct.SAP_PRIORITY.id


def sap_answer(trace: Trace, code: AP, schema_id: int | None, rule: str) -> Verdict:
    """The charger answered the crafted SAP request with `code` and `schema_id`."""
    sent = trace.sent(SAP_REQ)
    if not sent:
        return failed(rule, f"{SAP_REQ} sent", "the case never got to send it")
    answer = next((e for e in trace.after(sent[-1]) if e.kind in (Kind.RECEIVED, Kind.MALFORMED)), None)
    expected = f"{code.value}" + ("" if schema_id is None else f" SchemaID {schema_id}")
    if answer is None:
        ended = trace.ended()
        return failed(rule, expected, ended.detail if ended else "no answer", SAP_REQ)
    if answer.kind is Kind.MALFORMED:  # e.g. a SchemaID naming a protocol the tester cannot speak either
        return failed(rule, expected, answer.detail, SAP_RES, answer.t)
    seen_code = str(getattr(getattr(answer.message, "response_code", None), "value", ""))
    seen_id = getattr(answer.message, "schema_id", None)
    if answer.name != SAP_RES or seen_code != code.value or (schema_id is not None and seen_id != schema_id):
        seen = f"{answer.name} {seen_code}" + ("" if seen_id is None else f" SchemaID {seen_id}")
        return failed(rule, expected, seen, answer.name, answer.t)
    return passed()


def _script(entries: tuple[Entry, ...]) -> Script:
    request = ap.SupportedAppProtocolReq(app_protocol=[e.xsd() for e in entries])
    return Script((Fault(SAP_REQ, replace=lambda m: request),))


def _answering(code: AP, schema_id: int | None) -> Any:
    """A mutation of our charger's SAP answer into `code` and `schema_id`."""
    return lambda res: dataclasses.replace(res, response_code=code, schema_id=schema_id)


def offer_case(offer: Offer) -> Case:
    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, _script(offer.entries))
        return sap_answer(bench.trace, offer.code, offer.schema_id, offer.rule)

    wrong = _answering(*offer.wrong)
    return Case(
        f"SECC-SAP-{offer.tail}",
        offer.title,
        "secc",
        (offer.rule, sap.schema_id_offered.id),
        run,
        Breaker(lambda: Script((continue_with(SAP_RES, mutate=wrong),)), offer.rule),
        tags=("sap",),
    )


def _offers() -> Iterator[Offer]:
    yield Offer(
        "UNKNOWN-FIRST",
        "An unknown protocol at priority 1 and -20 DC at priority 2: the charger chooses -20 DC's SchemaID",
        (unknown(1, 1), dc(2, 2)),
        OK,
        2,
        (OK, 1),
    )
    yield Offer(
        "PRIORITY-NOT-ORDER",
        "-20 DC twice, listed first at priority 2 and second at priority 1: the priority-1 SchemaID wins",
        (dc(1, 2), dc(2, 1)),
        OK,
        2,
        (OK, 1),
    )
    yield Offer(
        "PRIORITY-FIRST",
        "-20 DC twice, listed first at priority 1 and second at priority 2: the priority-1 SchemaID wins",
        (dc(1, 1), dc(2, 2)),
        OK,
        1,
        (OK, 2),
    )
    yield Offer(
        "MAJOR-2-FIRST",
        "-20 DC with major version 2 at priority 1 and major version 1 at priority 2: the major-1 entry is chosen",
        (dc(1, 1, major=2), dc(2, 2)),
        OK,
        2,
        (OK, 1),
    )
    yield Offer(
        "MINOR-DEVIATION",
        "-20 DC with minor version 1 only: OK_SuccessfulNegotiationWithMinorDeviation and its SchemaID",
        (dc(1, 1, minor=1),),
        MINOR,
        1,
        (OK, 1),
        conduct.SAP_MINOR_DEVIATION.id,
    )
    yield Offer(
        "MINOR-ZERO",
        "-20 DC with minor version 0: OK_SuccessfulNegotiation (no deviation)",
        (dc(1, 1),),
        OK,
        1,
        (MINOR, 1),
        conduct.SAP_MINOR_DEVIATION.id,
    )
    entries = (*(unknown(i, i) for i in range(1, MAX_ENTRIES)), dc(MAX_ENTRIES, MAX_ENTRIES))
    yield Offer(
        "20-ENTRIES",
        "20 entries, -20 DC last at priority 20 after 19 unknown protocols: the charger reads them all and chooses it",
        entries,
        OK,
        MAX_ENTRIES,
        (NONE, None),
    )


def _refusal_case(tail: str, title: str, entries: tuple[Entry, ...], close: bool) -> Case:
    """No entry the charger supports: Failed_NoNegotiation (`close`: and the connection closes within 5 s)."""
    rule = conduct.ENDS_AFTER_FAILED.id if close else sap.NO_COMMON_PROTOCOL.id

    async def run(bench: Bench) -> Verdict:
        await run_ev(bench, _script(entries))
        trace = bench.trace
        answer = sap_answer(trace, NONE, None, sap.NO_COMMON_PROTOCOL.id)
        if not answer.ok:
            return answer
        response = trace.received(SAP_RES)[-1]
        return closed_after(trace, response, CLOSE_WITHIN_S, conduct.ENDS_AFTER_FAILED.id, "after Failed_NoNegotiation")

    if close:  # our charger refuses but keeps the connection open
        breaker = Breaker(lambda: Script(linger_s=CLOSE_WITHIN_S + 4.0), rule)
    else:
        breaker = Breaker(lambda: Script((continue_with(SAP_RES, mutate=_answering(OK, entries[0].schema_id)),)), rule)
    return Case(
        f"SECC-SAP-{tail}",
        title,
        "secc",
        (sap.NO_COMMON_PROTOCOL.id, conduct.SAP_PRIORITY.id, conduct.ENDS_AFTER_FAILED.id),
        run,
        breaker,
        tags=("sap", "failed-codes"),
    )


def cases() -> Iterator[Case]:
    only_unknown = (unknown(1, 1), unknown(2, 2))
    yield _refusal_case(
        "NO-COMMON", "Only unknown protocols offered: Failed_NoNegotiation, then the close", only_unknown, False
    )
    yield _refusal_case(
        "NO-COMMON-CLOSE",
        "After Failed_NoNegotiation the charger closes the connection within 5 s",
        only_unknown,
        True,
    )
    yield _refusal_case(
        "MAJOR-2-ONLY",
        "-20 DC with major version 2 only (a version the charger does not speak): Failed_NoNegotiation",
        (dc(1, 1, major=2),),
        False,
    )
    for offer in _offers():
        yield offer_case(offer)

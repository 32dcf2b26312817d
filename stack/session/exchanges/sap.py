"""supportedAppProtocolReq/Res: which protocol the session speaks (PROTOCOL.md section 3)."""

from __future__ import annotations

from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm

from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..rules import decision, response_rule
from ..state import Outcome, SessionState

AP = ap.ResponseCode

NO_COMMON_PROTOCOL = decision(
    "V2G20-167",
    AP.Failed_NoNegotiation,
    "The SECC answers the highest-priority entry it supports; with none supported it refuses the negotiation.",
    "PROTOCOL.md 3 (EVEREST supported_app_protocol.cpp, JOSEV sap_states.py)",
)


@response_rule("MV-SAP-SCHEMA-ID", "PROTOCOL.md 3 (the SECC answers the SchemaID of the entry it chose)")
def schema_id_offered(
    state: SessionState, request: ap.SupportedAppProtocolReq, response: ap.SupportedAppProtocolRes
) -> bool:
    """A successful negotiation names the SchemaID of one of the EV's entries."""
    if response.response_code == AP.Failed_NoNegotiation:
        return True
    return response.schema_id in {entry.schema_id for entry in request.app_protocol}


def answer(secc: SeccContext, req: ap.SupportedAppProtocolReq, now: float) -> Answer:
    # [V2G20-167]: the highest-priority (lowest number) entry we support
    for entry in sorted(req.app_protocol, key=lambda e: e.priority):
        if entry.protocol_namespace in secc.config.namespaces and entry.version_number_major == 1:
            code = (
                AP.OK_SuccessfulNegotiation
                if entry.version_number_minor == 0
                else AP.OK_SuccessfulNegotiationWithMinorDeviation
            )
            return Answer(ap.SupportedAppProtocolRes(response_code=code, schema_id=entry.schema_id))
    return Answer(ap.SupportedAppProtocolRes(response_code=AP.Failed_NoNegotiation), NO_COMMON_PROTOCOL)


def outcome(req: ap.SupportedAppProtocolReq, res: ap.SupportedAppProtocolRes) -> Outcome:
    return Outcome.FAILED if res.response_code == AP.Failed_NoNegotiation else Outcome.OK


def apply(
    state: SessionState, req: ap.SupportedAppProtocolReq, res: ap.SupportedAppProtocolRes, result: Outcome
) -> SessionState:
    offer = tuple((e.schema_id, e.protocol_namespace) for e in req.app_protocol)
    return state.to(state.phase, sap_offer=offer)


def build(ev: EvccContext, now: float) -> ap.SupportedAppProtocolReq:
    entries = [
        ap.AppProtocol(protocol_namespace=ns, version_number_major=1, version_number_minor=0, schema_id=i, priority=i)
        for i, ns in enumerate(ev.config.namespaces, 1)
    ]
    return ap.SupportedAppProtocolReq(app_protocol=entries)


def react(
    ev: EvccContext, req: ap.SupportedAppProtocolReq, res: ap.SupportedAppProtocolRes, result: Outcome, now: float
) -> Step:
    return SendNext(cm.SessionSetupReq)


SUPPORTED_APP_PROTOCOL = Handlers(answer=answer, outcome=outcome, build=build, react=react, apply=apply)

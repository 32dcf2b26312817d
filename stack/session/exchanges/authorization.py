"""AuthorizationSetupReq/Res and AuthorizationReq/Res: EIM today, Plug & Charge later (PROTOCOL.md 4.3, 4.4)."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct

from ..controller import AuthorizationStatus
from ..exchange import Answer, EvccContext, Handlers, Repeat, SeccContext, SendNext, Step, StopSession
from ..rules import decision, request_rule
from ..state import Outcome, SessionState
from .common import code_outcome, header, processing_outcome

RC = ct.ResponseCode


# -- AuthorizationSetup ----------------------------------------------------------------------------------------


def answer_setup(secc: SeccContext, req: cm.AuthorizationSetupReq, now: float) -> Answer:
    return Answer(
        cm.AuthorizationSetupRes(
            header=header(secc.state.session_id, now),
            response_code=RC.OK,
            authorization_services=[cm.Authorization.EIM],
            certificate_installation_service=False,
            eim_as_res_authorization_mode=cm.EimAsResAuthorizationMode(),
        )
    )


def setup_outcome(req: cm.AuthorizationSetupReq, res: cm.AuthorizationSetupRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def apply_setup(
    state: SessionState, req: cm.AuthorizationSetupReq, res: cm.AuthorizationSetupRes, result: Outcome
) -> SessionState:
    return state.to(state.phase, authorization_services=frozenset(res.authorization_services))


def build_setup(ev: EvccContext, now: float) -> cm.AuthorizationSetupReq:
    return cm.AuthorizationSetupReq(header=header(ev.state.session_id, now))


def react_setup(
    ev: EvccContext, req: cm.AuthorizationSetupReq, res: cm.AuthorizationSetupRes, result: Outcome, now: float
) -> Step:
    if cm.Authorization.EIM not in res.authorization_services:
        return StopSession("the SECC does not offer EIM (Plug & Charge is not implemented yet)")
    return SendNext(cm.AuthorizationReq)


AUTHORIZATION_SETUP = Handlers(
    answer=answer_setup, outcome=setup_outcome, build=build_setup, react=react_setup, apply=apply_setup
)

# -- Authorization -----------------------------------------------------------------------------------------------

EIM_REFUSED = decision(
    "V2G20-2230",
    RC.WARNING_EIMAuthorizationFailure,
    "EIM authorization refused: the SECC answers Finished with WARNING_EIMAuthorizationFailure.",
    "PROTOCOL.md 4.3 (LIB15118 authorization.cpp)",
)


@request_rule("V2G20-2209", RC.WARNING_AuthorizationSelectionInvalid, "PROTOCOL.md 4.3 ([V2G20-2209/2226], LIB15118)")
def selected_authorization_offered(state: SessionState, req: cm.AuthorizationReq) -> bool:
    """The EV selects an authorization service the SECC offered in AuthorizationSetupRes."""
    return req.selected_authorization_service in state.authorization_services


@request_rule(
    "MV-AUTHORIZATION-MODE",
    RC.WARNING_AuthorizationSelectionInvalid,
    "XSD AuthorizationReq (choice EIM_AReqAuthorizationMode | PnC_AReqAuthorizationMode); LIB15118 authorization.cpp",
)
def mode_element_of_the_selection(state: SessionState, req: cm.AuthorizationReq) -> bool:
    """The AuthorizationReq carries the element of the service it selects (EIM or PnC)."""
    if req.selected_authorization_service == cm.Authorization.EIM:
        return req.eim_a_req_authorization_mode is not None
    return req.pnc_a_req_authorization_mode is not None


def answer_authorization(secc: SeccContext, req: cm.AuthorizationReq, now: float) -> Answer:
    head = header(secc.state.session_id, now)
    status = secc.controller.authorize(now)
    if status is AuthorizationStatus.ONGOING:
        processing = ct.Processing.Ongoing_WaitingForCustomerInteraction
        return Answer(cm.AuthorizationRes(header=head, response_code=RC.OK, evse_processing=processing))
    if status is AuthorizationStatus.REJECTED:
        code, rule = EIM_REFUSED.rc, EIM_REFUSED
    else:
        code, rule = RC.OK, None
    return Answer(cm.AuthorizationRes(header=head, response_code=code, evse_processing=ct.Processing.Finished), rule)


def authorization_outcome(req: cm.AuthorizationReq, res: cm.AuthorizationRes) -> Outcome:
    return processing_outcome(res.response_code, res.evse_processing)


def apply_authorization(
    state: SessionState, req: cm.AuthorizationReq, res: cm.AuthorizationRes, result: Outcome
) -> SessionState:
    if result is not Outcome.OK:
        return state
    return state.to(state.phase, authorized=True, authorization=req.selected_authorization_service)


def build_authorization(ev: EvccContext, now: float) -> cm.AuthorizationReq:
    return cm.AuthorizationReq(
        header=header(ev.state.session_id, now),
        selected_authorization_service=cm.Authorization.EIM,
        eim_a_req_authorization_mode=cm.EimAReqAuthorizationMode(),
    )


def react_authorization(
    ev: EvccContext, req: cm.AuthorizationReq, res: cm.AuthorizationRes, result: Outcome, now: float
) -> Step:
    if result is Outcome.ONGOING:
        return Repeat(ev.config.timers.loop_interval)
    if result is Outcome.REFUSED:
        return StopSession(f"authorization refused: {res.response_code}")
    return SendNext(cm.ServiceDiscoveryReq)


AUTHORIZATION = Handlers(
    answer=answer_authorization,
    outcome=authorization_outcome,
    build=build_authorization,
    react=react_authorization,
    apply=apply_authorization,
)

"""MeteringConfirmationReq/Res: the EV signs the meter reading it was sent (PROTOCOL.md 4.5, section 8).

The SECC asks with EVSENotification=MeteringConfirmation in DC_ChargeLoopRes, only in a PnC session whose contract
key it holds and after it sent a MeterInfo (`secc_may_ask`; the charge loop drops the notification otherwise). The
EV answers at once with `SignedMeteringData` (SessionID, the last MeterInfo of the charge loop, the control mode
and in Scheduled mode its ScheduleTupleID) signed with its contract key in the header, then goes on with the
charge loop. An EV without a contract (an EIM session) or without a MeterInfo to sign goes on with the loop and
says why in an Event. The SECC checks the request rules (a PnC session, a signature, the session's SessionID, the
control mode), then the signature with the contract leaf's key of the authorization
(`FAILED_MeteringSignatureNotValid`), then that the MeterInfo is the one it sent last.

**Payload type: the main stream (0x8002), not 0x8102.** PROTOCOL.md 2 and 4.5 give the message its own V2GTP
payload type, a "multiplexed side stream" in Josev's words: a stream that runs beside the charge loop, so that a
confirmation can be outstanding while loop requests go on. Our machines are sequential (one request outstanding,
the EV sends it between two charge loops) and our transport sends each message on its schema's main payload type
(`V2gConnection.send` -> `V2gChannel.send(message)`, the `Send` action carries no payload type), so nothing would
be multiplexed on 0x8102. Receiving costs nothing either way: the DC protocol of `stack/schemas.py` maps 0x8102 to
CommonMessages, so our SECC decodes a MeteringConfirmationReq that a peer sends there and this row answers it.
Sending on 0x8102 would take a payload type in `Send`, `V2gConnection.send` and the drivers (the channel takes
one already). No reference stack implements either (PROTOCOL.md 12, item 12), and neither is the signer of
SignedMeteringData confirmed (item 6): we take the contract key, which signs every other EV element of a PnC session.
"""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.security import xmldsig

from ..actions import Event
from ..controller import ChargeLoopFeedback
from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step
from ..rules import Rule, decision, request_rule
from ..services import ControlMode
from ..state import Outcome, SessionState
from .common import code_outcome, header

RC = ct.ResponseCode
PNC = cm.Authorization.PnC
NOTIFICATION = str(ct.EvseNotification.MeteringConfirmation)
SIGNED_ELEMENT = "SignedMeteringData"
ELEMENT_ID = "id1"


def secc_may_ask(secc: SeccContext) -> bool:
    """The SECC asks only in a PnC session whose contract key it holds, for a MeterInfo it sent."""
    return secc.state.authorization is PNC and secc.contract_key is not None and secc.meter_info is not None


# -- rules ---------------------------------------------------------------------------------------------------------


@request_rule(
    "MV-METERING-PNC", RC.FAILED_SequenceError, "PROTOCOL.md 4.5 and section 8 (SignedMeteringData: a PnC signature)"
)
def in_a_pnc_session(state: SessionState, req: cm.MeteringConfirmationReq) -> bool:
    """MeteringConfirmationReq comes in a session authorized by PnC (only a contract key can sign it)."""
    # a rule of its own, not the row's `authorizations`: MV-SEQUENCE stays the phase table's
    return state.authorization is PNC


@request_rule(
    "MV-METERING-SIGNED", RC.FAILED_MeteringSignatureNotValid, "PROTOCOL.md 4.5 and section 8 (signed -20 elements)"
)
def metering_signed(state: SessionState, req: cm.MeteringConfirmationReq) -> bool:
    """A MeteringConfirmationReq carries a header Signature over its SignedMeteringData."""
    return req.header.signature is not None


@request_rule(
    "MV-METERING-SESSION", RC.FAILED_UnknownSession, "XSD SignedMeteringDataType (SessionID); mirror of MV-SESSION-ID"
)
def signed_for_this_session(state: SessionState, req: cm.MeteringConfirmationReq) -> bool:
    """SignedMeteringData names the session's SessionID."""
    return req.signed_metering_data.session_id == state.session_id


@request_rule(
    "MV-METERING-CONTROL-MODE",
    RC.FAILED,
    "XSD SignedMeteringDataType (choice Dynamic_ | Scheduled_SMDTControlMode); PROTOCOL.md 4.5; as MV-CL-CONTROL-MODE",
)
def control_mode_fits(state: SessionState, req: cm.MeteringConfirmationReq) -> bool:
    """SignedMeteringData carries the SMDTControlMode of the session's control mode, in Scheduled mode with a
    ScheduleTupleID of the last ScheduleExchangeRes."""
    data = req.signed_metering_data
    if state.control_mode is ControlMode.DYNAMIC:
        return data.dynamic_smdt_control_mode is not None and data.scheduled_smdt_control_mode is None
    scheduled = data.scheduled_smdt_control_mode
    return (
        data.dynamic_smdt_control_mode is None
        and scheduled is not None
        and scheduled.selected_schedule_tuple_id in state.schedule_ids
    )


SIGNATURE_INVALID = decision(
    "MV-METERING-SIGNATURE",
    RC.FAILED_MeteringSignatureNotValid,
    "The signature over SignedMeteringData verifies with the key of the contract certificate that authorized the "
    "session; else FAILED_MeteringSignatureNotValid.",
    "PROTOCOL.md 4.5 (FAILED_MeteringSignatureNotValid) and section 8; XSD responseCodeType",
)
METER_INFO_MISMATCH = decision(
    "MV-METERING-METER-INFO",
    RC.FAILED,
    "The signed MeterInfo is the one the SECC sent last in DC_ChargeLoopRes; else FAILED (the EV confirms a "
    "reading the charger never gave).",
    "PROTOCOL.md 4.5 (SignedMeteringData carries MeterInfo); ours",
)


# -- SECC ----------------------------------------------------------------------------------------------------------


def answer(secc: SeccContext, req: cm.MeteringConfirmationReq, now: float) -> Answer:
    head = header(secc.state.session_id, now)
    signature = req.header.signature
    assert signature is not None  # metering_signed holds
    key = secc.contract_key
    try:
        if key is None:  # a resumed session (a new connection) no longer holds the key of its authorization
            raise xmldsig.SignatureError("no contract key for this session")
        xmldsig.verify(signature, [xmldsig.SignedPart(req.signed_metering_data, SIGNED_ELEMENT)], key, _settings(secc))
    except xmldsig.SignatureError:
        return _refused(head, SIGNATURE_INVALID)
    if req.signed_metering_data.meter_info != secc.meter_info:
        return _refused(head, METER_INFO_MISMATCH)
    return Answer(cm.MeteringConfirmationRes(header=head, response_code=RC.OK))


def _settings(secc: SeccContext) -> xmldsig.SignatureSettings:
    pnc = secc.config.pnc
    return xmldsig.DEFAULT_SETTINGS if pnc is None else pnc.signature


def _refused(head: ct.MessageHeader, rule: Rule) -> Answer:
    return Answer(cm.MeteringConfirmationRes(header=head, response_code=rule.rc), rule)


def outcome(req: cm.MeteringConfirmationReq, res: cm.MeteringConfirmationRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


# -- EVCC ----------------------------------------------------------------------------------------------------------


def _cannot_sign(ev: EvccContext) -> str | None:
    """Why the EV cannot confirm the metering now (None: it can)."""
    if ev.state.authorization is not PNC or ev.contract is None or ev.config.pnc is None:
        return "not a PnC session: no contract key to sign with"
    if ev.meter_info is None:
        return "no MeterInfo received in the charge loop"
    if ev.state.control_mode is ControlMode.SCHEDULED and ev.schedule is None:
        return "no schedule selected"
    return None


def build(ev: EvccContext, now: float, feedback: ChargeLoopFeedback | None = None) -> cm.MeteringConfirmationReq | Step:
    """Sign the last MeterInfo of the charge loop; an EV that cannot goes on with the loop."""
    why = _cannot_sign(ev)
    if why is not None:
        return _next_loop(ev, feedback, Event("metering_confirmation_skipped", {"why": why}))
    ev.held_feedback = feedback  # for the next DC_ChargeLoopReq, after the response
    contract, pnc, meter_info = ev.contract, ev.config.pnc, ev.meter_info
    assert contract is not None and pnc is not None and meter_info is not None  # _cannot_sign
    data = cm.SignedMeteringData(id=ELEMENT_ID, session_id=ev.state.session_id, meter_info=meter_info)
    if ev.state.control_mode is ControlMode.DYNAMIC:
        data.dynamic_smdt_control_mode = cm.DynamicSmdtControlMode()
    else:
        assert ev.schedule is not None  # _cannot_sign
        data.scheduled_smdt_control_mode = cm.ScheduledSmdtControlMode(selected_schedule_tuple_id=ev.schedule.tuple_id)
    head = header(ev.state.session_id, now)
    head.signature = xmldsig.sign([xmldsig.SignedPart(data, SIGNED_ELEMENT)], contract.private_key, pnc.signature)
    return cm.MeteringConfirmationReq(header=head, signed_metering_data=data)


def react(
    ev: EvccContext, req: cm.MeteringConfirmationReq, res: cm.MeteringConfirmationRes, result: Outcome, now: float
) -> Step:
    meter = req.signed_metering_data.meter_info
    detail = {"meter_id": meter.meter_id, "charged_wh": meter.charged_energy_reading_wh}
    if result is Outcome.OK:
        event = Event("metering_confirmed", detail)
    else:  # a WARNING: the charger did not take it, charging goes on (FAILED ends the session in EvccSession)
        event = Event("metering_confirmation_refused", {**detail, "code": str(res.response_code)})
    feedback, ev.held_feedback = ev.held_feedback, None
    return _next_loop(ev, feedback, event)


def _next_loop(ev: EvccContext, feedback: ChargeLoopFeedback | None, event: Event) -> SendNext:
    interval = ev.config.timers.charge_loop_interval
    return SendNext(dc.DcChargeLoopReq, after=interval, options={"feedback": feedback}, events=(event,))


METERING_CONFIRMATION = Handlers(answer=answer, outcome=outcome, build=build, react=react)

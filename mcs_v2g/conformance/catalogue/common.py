"""What the cases share: the tester's own peers (our machines with the reference controllers), the request and
response names of the flow, messages built for injection, and the faults our broken peers use."""

from __future__ import annotations

import dataclasses
from typing import Any

from stack.messages.minimal import minimal
from stack.session.evcc import EvccConfig, EvccSession
from stack.session.exchanges.common import header
from stack.session.reference import MinimalEv, MinimalEvse
from stack.session.rulebook import BY_NAME, EXCHANGES
from stack.session.secc import SeccConfig, SeccSession
from stack.session.services import ControlMode, ServiceId

from ..bench import Bench
from ..driver import Conversation, Fault, Script, Then, play

FOREIGN_SESSION_ID = bytes.fromhex("DEADBEEFCAFE0001")
# the requests of a -20 DC session with EIM in the order our EV sends them: the rulebook's rows are in that order
PNC_ONLY = ("CertificateInstallationReq", "MeteringConfirmationReq")  # exchanges of a PnC session only (pnc_cases)
FLOW = tuple(exchange.name for exchange in EXCHANGES if exchange.name not in PNC_ONLY)
IN_SESSION = tuple(name for name in FLOW if BY_NAME[name].in_session)
SERVICES = (ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT)
MODES = (ControlMode.SCHEDULED, ControlMode.DYNAMIC)
CHARGE_LOOPS = 3


def response_name(request: str) -> str:
    return BY_NAME[request].response_name


def short(name: str) -> str:
    """`DC_ChargeLoopReq` -> `DC-CHARGELOOP`: the part of a case id that names a message."""
    core = name.removesuffix("Req").removesuffix("Res")
    return core.replace("_", "-").upper()


def tester_ev(service: ServiceId = ServiceId.DC, mode: ControlMode = ControlMode.DYNAMIC, **kw: Any) -> EvccSession:
    """The tester's EV: our EvccSession with the reference truck (it checks every response and timer)."""
    return EvccSession(MinimalEv(service=service, control_mode=mode, charge_loops=CHARGE_LOOPS), EvccConfig(**kw))


def tester_evse(**settings: Any) -> SeccSession:
    """The tester's charger: our SeccSession with the reference charger (it checks every request and timer)."""
    return SeccSession(MinimalEvse(), SeccConfig(**settings))


async def run_ev(bench: Bench, script: Script | None = None, **ev: Any) -> Conversation:
    """Open a connection to the charger under test and play our EV on it with `script`'s faults."""
    conversation = await bench.open()
    await play(tester_ev(**ev), conversation, script or Script())
    return conversation


async def run_evse(bench: Bench, script: Script | None = None, **settings: Any) -> Conversation:
    """Take the truck's connection and play our charger on it with `script`'s faults."""
    conversation = await bench.open()
    await play(tester_evse(**settings), conversation, script or Script())
    return conversation


def request_like(name: str, session_id: bytes, now: float = 0.0) -> Any:
    """A schema-valid request of exchange `name` with only its mandatory fields, in session `session_id`."""
    cls = BY_NAME[name].request
    if not BY_NAME[name].in_session and name == "supportedAppProtocolReq":
        return minimal(cls)
    return minimal(cls, header=header(session_id, now))


def with_session(message: Any, session_id: bytes) -> Any:
    """`message` with another SessionID in its header."""
    return dataclasses.replace(message, header=dataclasses.replace(message.header, session_id=session_id))


def with_code(message: Any, code: Any) -> Any:
    return dataclasses.replace(message, response_code=type(message.response_code)(code))


def code_is(code: str) -> Any:
    """A fault predicate: one of our responses answers `code`."""
    return lambda message: str(getattr(getattr(message, "response_code", None), "value", "")) == code


def continue_with(at: Any, **fault: Any) -> Fault:
    """A fault after which the flow goes on (what a broken peer needs)."""
    return Fault(at, then=Then.CONTINUE, **fault)

"""A paused session resumes only for the same vehicle and in time (PROTOCOL.md 4.3 SessionSetup, 4.5).

The vehicle is its TLS client certificate when it sent one (LIB15118 binds a resume to it), else its EVCCID;
the time is the pausing session's `SeccConfig.resume_within`. Anyone else who names the old SessionID gets a
new session (OK_NewSessionEstablished, as for an unknown SessionID: PROTOCOL.md 4.3) and the paused session
stays for its vehicle; a late one finds it gone.
"""

from __future__ import annotations

import hashlib

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_types as ct
from stack.session.actions import Event, Send
from stack.session.config import DC_NAMESPACE, DEFAULT_RESUME_WITHIN, ResumeInfo, SeccConfig, SessionStore, Vehicle
from stack.session.evcc import EvccConfig, EvccSession
from stack.session.secc import SeccSession
from stack.session.services import ControlMode, ParameterSet, ServiceId
from stack.transport.link import DEFAULT_START, VirtualLink

RC = ct.ResponseCode
T0 = DEFAULT_START
OLD = bytes.fromhex("1122334455667788")
EVCCID = "WMA06XZZ1MP123456"
CERT = hashlib.sha256(b"the vehicle's certificate").digest()
OTHER_CERT = hashlib.sha256(b"another vehicle's certificate").digest()
PAUSED = ResumeInfo(OLD, ServiceId.MCS, ParameterSet(1, ControlMode.DYNAMIC))


def paused_store(vehicle: Vehicle, within: float = 3600.0) -> SessionStore:
    store = SessionStore()
    with store.acting_for(vehicle, T0, within):
        store.pause(PAUSED)
    return store


def session_setup(store: SessionStore, evccid: str, certificate: bytes | None, at: float) -> tuple[object, list]:
    """SAP then SessionSetupReq(OLD) to a new SeccSession; returns the SessionSetupRes and the other actions."""
    secc = SeccSession(MinimalEvse(), SeccConfig(), store, vehicle_certificate=certificate)
    secc.start(at)
    entry = ap.AppProtocol(
        protocol_namespace=DC_NAMESPACE, version_number_major=1, version_number_minor=0, schema_id=1, priority=1
    )
    secc.receive(ap.SupportedAppProtocolReq(app_protocol=[entry]), at)
    req = cm.SessionSetupReq(header=ct.MessageHeader(session_id=OLD, time_stamp=int(at)), evccid=evccid)
    actions = secc.receive(req, at)
    (res,) = [a.message for a in actions if isinstance(a, Send)]
    return res, [a for a in actions if not isinstance(a, Send)]


# -- the store -------------------------------------------------------------------------------------------------
def test_the_vehicle_key_is_the_certificate_when_there_is_one() -> None:
    assert Vehicle(EVCCID, CERT).key == ("certificate", CERT)
    assert Vehicle(EVCCID).key == ("evccid", EVCCID)
    assert Vehicle(EVCCID, CERT).key != Vehicle(EVCCID).key  # a pause over TLS is not resumed without it


def test_the_default_window_is_a_day() -> None:
    assert SeccConfig().resume_within == DEFAULT_RESUME_WITHIN == 86_400.0


def test_a_pause_needs_an_identified_vehicle() -> None:
    store = SessionStore()
    with pytest.raises(RuntimeError, match="vehicle"), store.acting_for(None, T0, 60.0):
        store.pause(PAUSED)
    with pytest.raises(RuntimeError, match="vehicle"):
        store.pause(PAUSED)  # outside acting_for: nobody to bind it to


@pytest.mark.parametrize(
    ("paused_by", "resumed_by", "at", "joined", "why"),
    [
        (Vehicle(EVCCID), Vehicle(EVCCID), T0 + 3599, True, ""),
        (Vehicle(EVCCID), Vehicle("WMIOTHER000000001"), T0 + 1, False, "another vehicle"),
        (Vehicle(EVCCID, CERT), Vehicle(EVCCID, CERT), T0 + 1, True, ""),
        (Vehicle(EVCCID, CERT), Vehicle(EVCCID, OTHER_CERT), T0 + 1, False, "another vehicle"),  # same EVCCID
        (Vehicle(EVCCID, CERT), Vehicle(EVCCID), T0 + 1, False, "another vehicle"),
        (Vehicle(EVCCID), Vehicle(EVCCID), T0 + 3601, False, "no paused session"),
    ],
    ids=["same EVCCID", "other EVCCID", "same certificate", "other certificate", "certificate lost", "expired"],
)
def test_resume_is_bound_to_the_vehicle_and_the_window(
    paused_by: Vehicle, resumed_by: Vehicle, at: float, joined: bool, why: str
) -> None:
    store = paused_store(paused_by)
    with store.acting_for(resumed_by, at, 3600.0):
        info = store.resume(OLD)
    assert (info == PAUSED) is joined
    assert why in store.refusal
    assert len(store) == (0 if joined or why.startswith("no") else 1)  # refused for another: still paused


def test_expired_pauses_are_forgotten_when_another_pauses() -> None:
    store = paused_store(Vehicle(EVCCID), within=60.0)
    with store.acting_for(Vehicle("WMIOTHER000000001"), T0 + 61, 60.0):
        store.pause(ResumeInfo(bytes(7) + b"\x01", ServiceId.MCS, PAUSED.parameter_set))
    assert len(store) == 1


# -- the machine -----------------------------------------------------------------------------------------------
def test_the_same_vehicle_rejoins_its_session() -> None:
    res, others = session_setup(paused_store(Vehicle(EVCCID, CERT)), EVCCID, CERT, T0 + 10)
    assert res.response_code == RC.OK_OldSessionJoined and res.header.session_id == OLD
    assert not [e for e in others if isinstance(e, Event) and e.kind == "resume_refused"]


@pytest.mark.parametrize(
    ("paused_by", "evccid", "certificate", "at", "why"),
    [
        (Vehicle(EVCCID), "WMIOTHER000000001", None, T0 + 10, "another vehicle"),
        (Vehicle(EVCCID, CERT), EVCCID, OTHER_CERT, T0 + 10, "another vehicle"),
        (Vehicle(EVCCID), EVCCID, None, T0 + 3601, "no paused session"),
    ],
    ids=["other EVCCID", "other certificate", "too late"],
)
def test_anyone_else_gets_a_new_session(
    paused_by: Vehicle, evccid: str, certificate: bytes | None, at: float, why: str
) -> None:
    store = paused_store(paused_by)
    res, others = session_setup(store, evccid, certificate, at)
    assert res.response_code == RC.OK_NewSessionEstablished and res.header.session_id not in (OLD, bytes(8))
    (event,) = [e for e in others if isinstance(e, Event) and e.kind == "resume_refused"]
    assert event.detail["session_id"] == OLD.hex().upper() and why in event.detail["why"]


# -- whole sessions on the virtual clock -------------------------------------------------------------------------
def _paused_run(store: SessionStore, config: SeccConfig) -> EvccSession:
    evcc = EvccSession(MinimalEv())
    secc = SeccSession(MinimalEvse(notifications={2: "Pause"}), config, store)
    transcript = VirtualLink(evcc, secc).run()
    assert transcript.evse_close is not None and transcript.evse_close.paused
    return evcc


@pytest.mark.parametrize(
    ("evccid", "later", "joined"),
    [(MinimalEv().evcc_identifier, 600.0, True), ("WMIOTHER000000001", 600.0, False), (None, 7200.0, False)],
    ids=["same EV in time", "other EV", "same EV too late"],
)
def test_resume_over_the_in_memory_link(evccid: str | None, later: float, joined: bool) -> None:
    store, config = SessionStore(), SeccConfig(resume_within=3600.0)
    first = _paused_run(store, config)
    ev = MinimalEv() if evccid is None else MinimalEv(evcc_identifier=evccid)
    evcc = EvccSession(ev, EvccConfig(resume=first.resume_info))
    secc = SeccSession(MinimalEvse(), config, store)
    transcript = VirtualLink(evcc, secc, now=T0 + later).run()
    assert transcript.evse_close is not None and transcript.evse_close.ok
    (res,) = [m for _, _, m in transcript.messages if isinstance(m, cm.SessionSetupRes)]
    expected = RC.OK_OldSessionJoined if joined else RC.OK_NewSessionEstablished
    assert res.response_code == expected
    assert (secc.session_id == first.session_id) is joined

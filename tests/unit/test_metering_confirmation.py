"""MeteringConfirmation (issue 14, item 5): the SECC asks in the charge loop, the EV signs the last MeterInfo with
its contract key, the SECC verifies (stack/session/exchanges/metering_confirmation.py).

Whole PnC sessions run over `VirtualLink` (V2GTP frames, the real EXI codec, virtual time); the refusals are
driven on the two machines directly (`Lockstep`), where a request can be changed before the SECC sees it. The test
PKI is made once per module here (tests/pnc_fixtures.py is not relied on).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evse_emulator import load_charger_config
from evse_emulator.charger import Charger
from stack import exi, v2gtp
from stack.channel import V2gChannel
from stack.clock import VirtualClock
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages import xmldsig as ds
from stack.security import pki, xmldsig
from stack.session.actions import Action, Close, Event, Send, Violation
from stack.session.config import DC_NAMESPACE, EvccConfig, SeccConfig
from stack.session.controller import ChargeLoopFeedback, ChargeLoopInput, EnergyRequest, EvLoopStep
from stack.session.evcc import EvccSession
from stack.session.exchanges import metering_confirmation as mc
from stack.session.pnc import Contract, EvPnc, SeccPnc
from stack.session.reference import MinimalEv, MinimalEvse
from stack.session.secc import SeccSession
from stack.session.services import ControlMode, ServiceId
from stack.session.state import Phase
from stack.transport.link import Transcript, VirtualLink

RC = ct.ResponseCode
T0 = 1_795_000_000.0
METERING = "MeteringConfirmation"
ASK_AT = 2  # the charge loop whose response asks for the confirmation


@dataclass(frozen=True)
class Trust:
    contract: Contract
    mo_roots: tuple[Any, ...]


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Trust:
    folder: Path = tmp_path_factory.mktemp("pki")
    paths = pki.generate_pki(folder, valid_from=dt.datetime.fromtimestamp(T0, dt.UTC) - dt.timedelta(days=1))
    loaded = pki.load_contract(folder)
    contract = Contract(loaded.certificate, loaded.sub_certificates, loaded.private_key)
    return Trust(contract, tuple(pki.load_certificates(paths.mo_root_cert)))


def _machines(
    trust: Trust | None,
    *,
    mode: ControlMode = ControlMode.DYNAMIC,
    notifications: dict[int, str] | None = None,
    ev: MinimalEv | None = None,
) -> tuple[EvccSession, SeccSession]:
    """A PnC pair (or EIM without `trust`) whose charger asks for a confirmation at loop ASK_AT."""
    evse = MinimalEvse(notifications={ASK_AT: METERING} if notifications is None else notifications)
    ev = ev or MinimalEv(service=ServiceId.MCS, control_mode=mode, charge_loops=4)
    ev_pnc = None if trust is None else EvPnc(contract=trust.contract)
    secc_pnc = None if trust is None else SeccPnc(mo_roots=trust.mo_roots)
    return EvccSession(ev, EvccConfig(pnc=ev_pnc)), SeccSession(evse, SeccConfig(pnc=secc_pnc))


def _run(evcc: EvccSession, secc: SeccSession) -> Transcript:
    return VirtualLink(evcc, secc, now=T0).run()


def _sent(transcript: Transcript, direction: str) -> list[Any]:
    return [m for _, d, m in transcript.messages if d == direction]


def _events(transcript: Transcript, side: str, kind: str) -> list[Event]:
    return [e for _, s, e in transcript.events if s == side and isinstance(e, Event) and e.kind == kind]


# -- a whole PnC session over the real codec ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", list(ControlMode), ids=lambda m: m.name.lower())
def test_pnc_session_confirms_the_metering(trust: Trust, mode: ControlMode) -> None:
    evcc, secc = _machines(trust, mode=mode)
    transcript = _run(evcc, secc)
    assert transcript.ev_close.ok and transcript.evse_close.ok
    assert not transcript.violations()
    ev_sent, evse_sent = _sent(transcript, "ev->evse"), _sent(transcript, "evse->ev")
    (req,) = [m for m in ev_sent if isinstance(m, cm.MeteringConfirmationReq)]
    (res,) = [m for m in evse_sent if isinstance(m, cm.MeteringConfirmationRes)]
    assert res.response_code is RC.OK
    # it answers the loop that asked, and the loop goes on after it
    i = ev_sent.index(req)
    assert isinstance(ev_sent[i - 1], dc.DcChargeLoopReq) and isinstance(ev_sent[i + 1], dc.DcChargeLoopReq)
    asking = [m for m in evse_sent if isinstance(m, dc.DcChargeLoopRes)][ASK_AT - 1]
    assert asking.evse_status.evse_notification is ct.EvseNotification.MeteringConfirmation
    data = req.signed_metering_data
    assert data.meter_info == asking.meter_info and data.meter_info.meter_id == "SIMPLE-METER"
    assert data.session_id == secc.session_id
    if mode is ControlMode.DYNAMIC:
        assert data.dynamic_smdt_control_mode is not None and data.scheduled_smdt_control_mode is None
    else:
        assert data.scheduled_smdt_control_mode.selected_schedule_tuple_id == evcc.schedule.tuple_id
    # the signature is the contract key's, over SignedMeteringData (checked here without the SECC)
    part = xmldsig.SignedPart(data, "SignedMeteringData")
    xmldsig.verify(req.header.signature, [part], trust.contract.certificate.public_key())
    confirmed = _events(transcript, "ev", "metering_confirmed")
    assert [e.detail["charged_wh"] for e in confirmed] == [data.meter_info.charged_energy_reading_wh]
    assert secc.ctx.contract_key is not None and evcc.charge_loops == 4  # no loop was lost to the confirmation


@dataclass
class KeyLosingEv(MinimalEv):
    """After authorization its contract key is replaced by another one: it signs, but not as its certificate."""

    session: EvccSession | None = None

    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep:
        assert self.session is not None
        contract = self.session.ctx.contract
        assert contract is not None
        other = ec.generate_private_key(ec.SECP521R1())
        self.session.ctx.contract = Contract(contract.certificate, contract.sub_certificates, other)
        return super().charge_loop(feedback, now)


def test_a_bad_signature_ends_the_session(trust: Trust) -> None:
    ev = KeyLosingEv(service=ServiceId.MCS, control_mode=ControlMode.DYNAMIC, charge_loops=4)
    evcc, secc = _machines(trust, ev=ev)
    ev.session = evcc
    transcript = _run(evcc, secc)
    (res,) = [m for m in _sent(transcript, "evse->ev") if isinstance(m, cm.MeteringConfirmationRes)]
    assert res.response_code is RC.FAILED_MeteringSignatureNotValid
    assert [e.detail for e in _events(transcript, "evse", "rule")] == [
        {"rule": "MV-METERING-SIGNATURE", "code": "FAILED_MeteringSignatureNotValid"}
    ]
    assert not transcript.evse_close.ok and not transcript.ev_close.ok
    assert isinstance(_sent(transcript, "ev->evse")[-1], cm.MeteringConfirmationReq)  # nothing after it
    assert secc.phase is Phase.ENDED and evcc.phase is Phase.ENDED


def test_the_ev_waits_two_seconds_for_the_answer(trust: Trust) -> None:
    """V2G_EVCC_Msg_Timeout of MeteringConfirmationReq: 2 s (PROTOCOL.md 6.1)."""
    evcc, secc = _machines(trust)
    transcript = VirtualLink(evcc, secc, now=T0, drop=lambda m: isinstance(m, cm.MeteringConfirmationRes)).run()
    (sent,) = [t for t, d, m in transcript.messages if isinstance(m, cm.MeteringConfirmationReq)]
    ((when, _, violation),) = [(t, s, e) for t, s, e in transcript.events if isinstance(e, Violation) and s == "ev"]
    assert violation.rule_id == "V2G_EVCC_Msg_Timeout" and when == pytest.approx(sent + 2.0)
    assert "MeteringConfirmationReq" in transcript.ev_close.reason


# -- EIM: nobody asks, nobody breaks -------------------------------------------------------------------------------
def test_an_eim_charger_does_not_ask(trust: Trust) -> None:
    evcc, secc = _machines(None)
    transcript = _run(evcc, secc)
    assert transcript.ev_close.ok and transcript.evse_close.ok
    loops = [m for m in _sent(transcript, "evse->ev") if isinstance(m, dc.DcChargeLoopRes)]
    assert loops[ASK_AT - 1].meter_info is not None  # the charger metered, but did not ask an EV that cannot sign
    assert all(m.evse_status is None for m in loops)
    assert not [m for m in _sent(transcript, "ev->evse") if isinstance(m, cm.MeteringConfirmationReq)]


def test_a_pnc_charger_without_a_meter_reading_does_not_ask(trust: Trust) -> None:
    @dataclass
    class Unmetered(MinimalEvse):
        def charge_loop(self, loop, now):  # type: ignore[no-untyped-def]
            return replace(super().charge_loop(loop, now), meter=None)

    evcc, _ = _machines(trust)
    secc = SeccSession(Unmetered(notifications={ASK_AT: METERING}), SeccConfig(pnc=SeccPnc(mo_roots=trust.mo_roots)))
    transcript = _run(evcc, secc)
    assert transcript.ev_close.ok and transcript.evse_close.ok
    assert all(m.evse_status is None for m in _sent(transcript, "evse->ev") if isinstance(m, dc.DcChargeLoopRes))


# -- the two machines in lockstep ------------------------------------------------------------------------------------
class Lockstep:
    """An EVCC and an SECC joined directly (no codec), in virtual time; `until(cls)` stops where the EV is about to
    deliver a request of `cls`; `tamper` changes each SECC response before the EV reads it."""

    def __init__(self, evcc: EvccSession, secc: SeccSession, tamper: Any = None) -> None:
        self.evcc, self.secc = evcc, secc
        self.now = T0
        self.tamper = tamper or (lambda response: response)
        self.ev_actions: list[Action] = []
        self.secc.start(self.now)
        self.outbox = self._from_ev(self.evcc.start(self.now))

    def until(self, cls: type) -> Any:
        """The next request of `cls`, built by the EV and not delivered yet."""
        for _ in range(10_000):
            if self.outbox and isinstance(self.outbox[0], cls):
                return self.outbox[0]
            assert self.evcc.closed is None, f"the session ended before {cls.__name__}: {self.evcc.closed}"
            self._step()
        raise AssertionError(f"never reached {cls.__name__}")

    def run(self) -> None:
        """Until the EV closes."""
        for _ in range(10_000):
            if self.evcc.closed is not None:
                return
            self._step()
        raise AssertionError("the session never ended")

    def _step(self) -> None:
        """Deliver the EV's next request and its (tampered) response, or let the EV's time come."""
        if not self.outbox:
            deadline = self.evcc.deadline
            assert deadline is not None
            self.now = max(self.now, deadline)
            self.outbox = self._from_ev(self.evcc.expire(self.now))
            return
        (response,) = [a.message for a in self.secc.receive(self.outbox.pop(0), self.now) if isinstance(a, Send)]
        self.outbox = self._from_ev(self.evcc.receive(self.tamper(response), self.now))

    def _from_ev(self, actions: list[Action]) -> list[Any]:
        self.ev_actions += actions
        return [a.message for a in actions if isinstance(a, Send)]


def _refused(actions: list[Action], code: RC, rule_id: str) -> None:
    (res,) = [a.message for a in actions if isinstance(a, Send)]
    assert isinstance(res, cm.MeteringConfirmationRes) and res.response_code is code
    exi.encode(res, schema="iso20-common")
    assert Event("rule", {"rule": rule_id, "code": str(code)}) in actions
    assert any(isinstance(a, Close) and not a.ok for a in actions)  # a FAILED code ends the session


def _resigned(req: cm.MeteringConfirmationReq, data: cm.SignedMeteringData, key: Any) -> cm.MeteringConfirmationReq:
    signature = xmldsig.sign([xmldsig.SignedPart(data, mc.SIGNED_ELEMENT)], key)
    return replace(req, header=replace(req.header, signature=signature), signed_metering_data=data)


def test_wrong_meter_info_is_refused(trust: Trust) -> None:
    step = Lockstep(*_machines(trust))
    req = step.until(cm.MeteringConfirmationReq)
    meter = req.signed_metering_data.meter_info
    data = replace(req.signed_metering_data, meter_info=replace(meter, charged_energy_reading_wh=10**9))
    bad = _resigned(req, data, trust.contract.private_key)  # a valid signature over a reading never sent
    actions = step.secc.receive(bad, step.now)
    _refused(actions, RC.FAILED, "MV-METERING-METER-INFO")
    assert not [a for a in actions if isinstance(a, Violation)]  # a decision: the request kept every rule


def test_a_changed_reading_under_the_old_signature_is_a_bad_signature(trust: Trust) -> None:
    step = Lockstep(*_machines(trust))
    req = step.until(cm.MeteringConfirmationReq)
    meter = req.signed_metering_data.meter_info
    bad = replace(req, signed_metering_data=replace(req.signed_metering_data, meter_info=replace(meter, meter_id="X")))
    _refused(step.secc.receive(bad, step.now), RC.FAILED_MeteringSignatureNotValid, "MV-METERING-SIGNATURE")


@pytest.mark.parametrize(
    ("change", "code", "rule_id"),
    [
        (
            lambda r, d: replace(r, header=replace(r.header, signature=None)),
            RC.FAILED_MeteringSignatureNotValid,
            "MV-METERING-SIGNED",
        ),
        (lambda r, d: replace(d, session_id=bytes(8)), RC.FAILED_UnknownSession, "MV-METERING-SESSION"),
        (
            lambda r, d: replace(
                d,
                dynamic_smdt_control_mode=None,
                scheduled_smdt_control_mode=cm.ScheduledSmdtControlMode(selected_schedule_tuple_id=1),
            ),
            RC.FAILED,
            "MV-METERING-CONTROL-MODE",
        ),
    ],
    ids=["unsigned", "other-session", "other-mode"],
)
def test_request_rules(trust: Trust, change: Any, code: RC, rule_id: str) -> None:
    step = Lockstep(*_machines(trust))
    req = step.until(cm.MeteringConfirmationReq)
    changed = change(req, req.signed_metering_data)
    bad = (
        changed
        if isinstance(changed, cm.MeteringConfirmationReq)
        else _resigned(req, changed, trust.contract.private_key)
    )
    actions = step.secc.receive(bad, step.now)
    _refused(actions, code, rule_id)
    (violation,) = [a for a in actions if isinstance(a, Violation)]
    assert violation.rule_id == rule_id


def test_a_request_in_an_eim_session_is_refused(trust: Trust) -> None:
    step = Lockstep(*_machines(None))
    loop = step.until(dc.DcChargeLoopReq)
    step.secc.receive(step.outbox.pop(0), step.now)  # the first loop: the charge loop phase
    assert step.secc.phase is Phase.CHARGE_LOOP
    signed = Lockstep(*_machines(trust)).until(cm.MeteringConfirmationReq)  # a well-made one, of another session
    data = replace(signed.signed_metering_data, session_id=step.secc.session_id)
    bad = _resigned(replace(signed, header=loop.header), data, trust.contract.private_key)
    _refused(step.secc.receive(bad, step.now), RC.FAILED_SequenceError, "MV-METERING-PNC")


def test_an_eim_ev_asked_anyway_goes_on_charging() -> None:
    """A foreign charger asks an EIM EV for a confirmation: it cannot sign, so it says why and keeps charging."""

    def ask(response: Any) -> Any:
        if isinstance(response, dc.DcChargeLoopRes):
            status = ct.EvseStatus(notification_max_delay=0, evse_notification=ct.EvseNotification.MeteringConfirmation)
            return replace(response, evse_status=status)
        return response

    evcc, secc = _machines(None, notifications={})
    step = Lockstep(evcc, secc, tamper=ask)
    step.run()
    assert evcc.closed.ok and evcc.charge_loops == 4
    skipped = [a for a in step.ev_actions if isinstance(a, Event) and a.kind == "metering_confirmation_skipped"]
    assert len(skipped) == 4 and "not a PnC session" in skipped[0].detail["why"]


# -- garbage never raises ------------------------------------------------------------------------------------------
_text = st.text(max_size=40)
_bytes = st.binary(max_size=200)
_signatures = st.builds(
    ds.Signature,
    signed_info=st.builds(
        ds.SignedInfo,
        canonicalization_method=st.builds(
            ds.CanonicalizationMethod, algorithm=st.sampled_from([xmldsig.C14N_EXI]) | _text
        ),
        signature_method=st.builds(ds.SignatureMethod, algorithm=st.sampled_from([xmldsig.ECDSA_SHA512]) | _text),
        reference=st.lists(
            st.builds(
                ds.Reference,
                uri=st.sampled_from(["#id1", "#x", ""]) | _text,
                digest_method=st.builds(ds.DigestMethod, algorithm=st.sampled_from([xmldsig.SHA512]) | _text),
                digest_value=_bytes,
            ),
            max_size=3,
        ),
    ),
    signature_value=st.builds(ds.SignatureValue, value=_bytes),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(signature=_signatures)
def test_garbage_signatures_never_raise(trust: Trust, signature: ds.Signature) -> None:
    step = Lockstep(*_machines(trust))
    req = step.until(cm.MeteringConfirmationReq)
    bad = replace(req, header=replace(req.header, signature=signature))
    _refused(step.secc.receive(bad, step.now), RC.FAILED_MeteringSignatureNotValid, "MV-METERING-SIGNATURE")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(value=st.binary(max_size=140) | st.binary(min_size=132, max_size=132), charged=st.integers())
def test_garbage_signature_values_and_readings_never_raise(trust: Trust, value: bytes, charged: int) -> None:
    """The EV's own SignedInfo with another SignatureValue (also of the right length), over any reading (also one
    that no EXI encoder takes): a bad signature, never an exception."""
    step = Lockstep(*_machines(trust))
    req = step.until(cm.MeteringConfirmationReq)
    data = req.signed_metering_data
    signature = replace(req.header.signature, signature_value=ds.SignatureValue(value=value))
    bad = replace(
        req,
        header=replace(req.header, signature=signature),
        signed_metering_data=replace(data, meter_info=replace(data.meter_info, charged_energy_reading_wh=charged)),
    )
    _refused(step.secc.receive(bad, step.now), RC.FAILED_MeteringSignatureNotValid, "MV-METERING-SIGNATURE")


# -- the payload type ----------------------------------------------------------------------------------------------
def test_main_stream_out_side_stream_understood(trust: Trust) -> None:
    """Our EV sends it on 0x8002 (the module docstring says why); a peer's on 0x8102 decodes all the same."""
    req = Lockstep(*_machines(trust)).until(cm.MeteringConfirmationReq)
    ev, evse = V2gChannel(), V2gChannel()
    entry = ap.AppProtocol(
        protocol_namespace=DC_NAMESPACE, version_number_major=1, version_number_minor=0, schema_id=1, priority=1
    )
    evse.receive_data(ev.send(ap.SupportedAppProtocolReq(app_protocol=[entry])))
    ok = ap.ResponseCode.OK_SuccessfulNegotiation
    ev.receive_data(evse.send(ap.SupportedAppProtocolRes(response_code=ok, schema_id=1)))
    evse.receive_data(b"")
    main = ev.send(req)
    assert v2gtp.parse_header(main)[0] == 0x8002
    side = v2gtp.build(0x8102, exi.encode(req, schema="iso20-common"))
    (got_main,), (got_side,) = evse.receive_data(main), evse.receive_data(side)
    assert got_main.message == req == got_side.message and got_side.payload_type == 0x8102


# -- the product charger ---------------------------------------------------------------------------------------------
def test_the_product_charger_asks_once_near_the_end(tmp_path: Path) -> None:
    """`PlantEvseController.metering_confirmation_wh`: asked once, when the EV's target energy falls to it."""
    path = tmp_path / "charger.toml"
    path.write_text('evse_id = "DE*MCS*E0002"\n')
    charger = Charger.build(load_charger_config(path), VirtualClock(T0))
    controller = replace(charger.controller(), metering_confirmation_wh=5_000)
    asked = []
    for wh in (20_000, 6_000, 4_000, 3_000, 0):
        loop = ChargeLoopInput(
            control_mode=ControlMode.DYNAMIC,
            ev_present_voltage=700,
            target_current=None,
            target_voltage=None,
            ev_limits=None,
            energy=EnergyRequest(wh, wh, 0),
            soc=50,
            meter_info_requested=False,
        )
        out = controller.charge_loop(loop, T0)
        assert out.meter is not None  # the reading to be signed goes with every loop
        asked.append(out.notification)
    assert asked == [None, None, METERING, None, None]
    assert charger.controller().metering_confirmation_wh is None  # off by default

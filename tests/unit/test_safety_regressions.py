"""Regression tests from the code review: a failing controller, nonsense EV values, renegotiation, scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ev_emulator.controller import power_at
from examples.minimal_controllers import MinimalEv, MinimalEvse
from mcs_v2g.sim.scenario import ScenarioError, load
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.session.controller import ScheduleEntry, StopReason
from stack.session.evcc import EvccSession
from stack.session.secc import SeccSession
from stack.session.services import ControlMode
from stack.session.state import Phase
from stack.session.units import rn
from stack.transport.link import VirtualLink


@dataclass
class RecordingCharger(MinimalEvse):
    switched_off: bool = False

    def power_delivery(self, start: bool, discharge: bool, now: float) -> bool:
        if not start:
            self.switched_off = True
        return super().power_delivery(start, discharge, now)


class FailingCharger(RecordingCharger):
    def charge_loop(self, loop, now):
        raise RuntimeError("power module lost")


def test_a_failing_controller_leaves_the_output_off(caplog: pytest.LogCaptureFixture) -> None:
    """The session ends on the machine's own Close (no exception through the driver) and the error is logged."""
    evse = FailingCharger()
    link = VirtualLink(EvccSession(MinimalEv()), SeccSession(evse))
    transcript = link.run()
    assert link.secc.phase is Phase.ENDED and link.secc.closed is not None
    assert evse.switched_off and evse.ended and "internal error" in evse.ended
    assert transcript.evse_close is link.secc.closed and not transcript.evse_close.ok
    assert "RuntimeError: power module lost" in caplog.text


def test_a_nonsense_pre_charge_target_is_refused() -> None:
    """The SECC answers FAILED to a nonsense target; our EVCC never sends one (the same rule, MV-PRE-CHARGE-TARGET)."""
    evse = RecordingCharger()
    link = VirtualLink(EvccSession(MinimalEv(battery_voltage=-5.0)), SeccSession(evse))
    link.run()  # the EVCC refused to send it and closed: the driver ends on that close
    assert link.evcc.closed is not None and not link.evcc.closed.ok
    assert "MV-PRE-CHARGE-TARGET" in link.evcc.closed.reason
    assert not any(isinstance(m, dc.DcPreChargeReq) for _, _, m in link.transcript.messages)

    # the same request built by hand reaches the SECC, which refuses it and ends the session
    sid = bytes.fromhex("0102030405060708")
    transcript = VirtualLink(EvccSession(MinimalEv()), SeccSession(MinimalEvse(), new_session_id=lambda: sid)).run()
    requests = [m for _, d, m in transcript.messages if d == "ev->evse"]
    secc = SeccSession(RecordingCharger(), new_session_id=lambda: sid)
    secc.start(0.0)
    for request in requests[: requests.index(next(m for m in requests if isinstance(m, dc.DcPreChargeReq)))]:
        secc.receive(request, 1.0)
    bad = dc.DcPreChargeReq(
        header=ct.MessageHeader(session_id=secc.session_id, time_stamp=1),
        ev_processing=ct.Processing.Ongoing,
        ev_present_voltage=rn(-5.0),
        ev_target_voltage=rn(-5.0),
    )
    actions = secc.receive(bad, 2.0)
    (response,) = [a.message for a in actions if hasattr(a, "message")]
    assert response.response_code == ct.ResponseCode.FAILED
    assert secc.closed is not None and not secc.closed.ok and secc.phase is Phase.ENDED


@dataclass
class TargetRecordingCharger(MinimalEvse):
    targets: list[float] = field(default_factory=list)

    def pre_charge(self, target_voltage: float, now: float) -> float:
        self.targets.append(target_voltage)
        return super().pre_charge(target_voltage, now)


def test_a_pre_charge_target_above_the_rating_is_clamped_not_refused() -> None:
    """Josev's simulated EV asks for 20 kV: the output stays within the charger's rating and the session goes on."""
    evse = TargetRecordingCharger()
    ev = MinimalEv(battery_voltage=20_000.0)
    transcript = VirtualLink(EvccSession(ev), SeccSession(evse)).run()
    pre_charge = [m for _, d, m in transcript.messages if type(m).__name__ == "DcPreChargeRes"]
    assert pre_charge and all(m.response_code == ct.ResponseCode.OK for m in pre_charge)
    assert evse.targets and max(evse.targets) <= evse.ratings.max_voltage


def test_power_delivery_start_after_service_renegotiation_needs_a_new_cable_check() -> None:
    """ScheduleRenegotiation then ServiceRenegotiation: the output went off, so Start must not skip the checks."""
    evse = MinimalEvse(notifications={2: "ScheduleRenegotiation", 4: "ServiceRenegotiation"})
    ev = MinimalEv(control_mode=ControlMode.DYNAMIC, charge_loops=6)
    transcript = VirtualLink(EvccSession(ev), SeccSession(evse)).run()
    names = transcript.names("ev->evse")
    second_discovery = [i for i, n in enumerate(names) if n == "ServiceDiscoveryReq"][1]
    assert "DcCableCheckReq" in names[second_discovery:] and "DcPreChargeReq" in names[second_discovery:]
    assert transcript.ev_close.ok and ev.stop_with is StopReason.TERMINATE


def test_schedules_of_different_lengths_are_read_by_time() -> None:
    charge = (ScheduleEntry(1800, 750_000.0),) * 12
    discharge = (ScheduleEntry(86_400, 100_000.0),)
    assert power_at(charge, 3700) - power_at(discharge, 3700) == 650_000.0
    assert power_at(charge, 12 * 1800 + 1) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "loop_interval = 0",
        "target_soc = 1.5",
        "steps = []",
        'service = "ccs"',
        "departure_s = -1",
        "min_soc = 0.95",
        "max_power = nan",
        'offers_v2g = "no"',
        "initial_soc = true",
        "insulation_fault_ohm = -5",
        'steps = [[0, "x"]]',
        "max_contactor_cycles = 1.5",
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ScenarioError):
        load(path)


def test_start_is_refused_when_the_output_went_off_during_a_renegotiation() -> None:
    """PD(ScheduleRenegotiation), then SessionStop(ServiceRenegotiation) switches off: a later Start from
    ScheduleExchange must not skip cable check and pre-charge."""
    from dataclasses import replace

    from stack.messages import iso20_common as cm
    from stack.session.services import ServiceId

    sid = bytes.fromhex("0102030405060708")
    ev = MinimalEv(service=ServiceId.MCS, control_mode=ControlMode.DYNAMIC, charge_loops=2)
    transcript = VirtualLink(EvccSession(ev), SeccSession(MinimalEvse(), new_session_id=lambda: sid)).run()
    requests: dict[str, object] = {}
    for _, direction, message in transcript.messages:
        if direction == "ev->evse":
            requests.setdefault(type(message).__name__, message)
    secc = SeccSession(MinimalEvse(), new_session_id=lambda: sid)
    secc.start(0.0)

    def code(message: object) -> str:
        (send,) = [a for a in secc.receive(message, 1.0) if hasattr(a, "message")]
        return str(send.message.response_code)

    for name in [
        "SupportedAppProtocolReq",
        "SessionSetupReq",
        "AuthorizationSetupReq",
        "AuthorizationReq",
        "ServiceDiscoveryReq",
        "ServiceDetailReq",
        "ServiceSelectionReq",
        "DcChargeParameterDiscoveryReq",
        "ScheduleExchangeReq",
        "DcCableCheckReq",
        "DcCableCheckReq",
        "DcPreChargeReq",
    ]:
        code(requests[name])
    pd = requests["PowerDeliveryReq"]
    assert code(replace(pd, charge_progress=cm.ChargeProgress.Start)) == "OK"
    assert code(replace(pd, charge_progress=cm.ChargeProgress.ScheduleRenegotiation)) == "OK"
    stop = replace(requests["SessionStopReq"], charging_session=cm.ChargingSession.ServiceRenegotiation)
    assert code(stop) == "OK" and not secc.energized
    for name in [
        "ServiceDiscoveryReq",
        "ServiceDetailReq",
        "ServiceSelectionReq",
        "DcChargeParameterDiscoveryReq",
        "ScheduleExchangeReq",
    ]:
        code(requests[name])
    assert code(replace(pd, charge_progress=cm.ChargeProgress.Start)) == "FAILED_SequenceError"

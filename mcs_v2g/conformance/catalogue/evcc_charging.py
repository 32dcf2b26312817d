"""Truck under test, the tester as the charger: the truck in the charge loop. It stops when the charger says
EVSENotification Terminate (within the notification's MaxDelay), and it asks for no more than the charger's
maximum limits (pre-charge voltage; target current, voltage and power in Scheduled mode).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.session import conduct
from stack.session.controller import PowerLimits
from stack.session.exchanges.limits import from_wire
from stack.session.reference import MCS_CHARGER, MinimalEvse
from stack.session.services import ControlMode, ServiceId, dc_offer
from stack.session.units import fl, rn

from ..bench import Bench
from ..case import Breaker, Case, Needs
from ..driver import Fault, Script
from ..judges import CLOSE_SLACK_S, first_then
from ..trace import Entry, Kind, Trace
from ..verdict import Verdict, failed, inconclusive, passed
from .common import continue_with
from .evcc_session import SESSION_STOP, only, serve, whole_session

TERMINATE = conduct.EV_HONOURS_TERMINATE.id
WITHIN = conduct.EV_WITHIN_LIMITS.id
ACCEPTS = conduct.EV_ACCEPTS_VALID.id
ROUNDING = 1.001  # RationalNumbers carry 4 significant digits
NOTICE_DELAY_S = 3  # the MaxDelay of the case that sets one
SCHEDULED = Needs(control_mode=ControlMode.SCHEDULED)
ANY_TRUCK = Needs()


def is_stop(message: object) -> bool:
    return isinstance(message, cm.PowerDeliveryReq) and message.charge_progress == cm.ChargeProgress.Stop


# -- EVSENotification Terminate ------------------------------------------------------------------------------


def _notice(entry: Entry) -> ct.EvseStatus | None:
    status = getattr(entry.message, "evse_status", None)
    return status if status is not None and status.evse_notification == ct.EvseNotification.Terminate else None


def honours_terminate(trace: Trace) -> Verdict:
    """After the first DC_ChargeLoopRes with Terminate: PowerDelivery(Stop) within MaxDelay, no DC_ChargeLoopReq
    later than MaxDelay (none at all when it is 0), then SessionStop."""
    notice = next((e for e in trace.sent("DC_ChargeLoopRes") if _notice(e) is not None), None)
    if notice is None:
        ended = trace.ended()
        return failed(TERMINATE, "the session reaches the charge loop", ended.detail if ended else "it did not")
    status = _notice(notice)
    assert status is not None
    delay = status.notification_max_delay
    requests = [e for e in trace.after(notice) if e.kind is Kind.RECEIVED]
    stop = next((e for e in requests if is_stop(e.message)), None)
    for entry in requests[: requests.index(stop) if stop else None]:
        if entry.name == "DC_ChargeLoopReq" and (delay == 0 or entry.t - notice.t > delay):
            took = entry.t - notice.t
            return failed(
                TERMINATE, f"no DC_ChargeLoopReq after {delay} s", f"one after {took:.2f} s", entry.name, entry.t
            )
    if stop is None:
        seen = requests[0].name if requests else (trace.ended() or notice).detail or "nothing"
        return failed(TERMINATE, f"PowerDeliveryReq(Stop) within {delay} s of Terminate", seen, t=notice.t)
    if stop.t - notice.t > delay + CLOSE_SLACK_S:
        took = stop.t - notice.t
        return failed(TERMINATE, f"PowerDeliveryReq(Stop) within {delay} s", f"after {took:.1f} s", stop.name, stop.t)
    if not any(e.name == "SessionStopReq" for e in requests):
        return failed(TERMINATE, "SessionStopReq after PowerDelivery(Stop)", "none", stop.name, stop.t)
    return passed()


class _LastLoop:
    """A fault predicate that never matches: it keeps our EV's last DC_ChargeLoopReq."""

    def __init__(self) -> None:
        self.request: dc.DcChargeLoopReq | None = None

    def __call__(self, message: object) -> bool:
        if isinstance(message, dc.DcChargeLoopReq):
            self.request = message
        return False


def _ignores_terminate() -> Script:
    """Our EV sends one more DC_ChargeLoopReq instead of its PowerDelivery(Stop)."""
    last = _LastLoop()

    def again(message: cm.PowerDeliveryReq) -> Any:
        assert last.request is not None
        return dataclasses.replace(last.request, header=message.header)

    return Script((Fault(last), continue_with(is_stop, replace=again)))


def _with_terminate(message: dc.DcChargeLoopRes) -> Any:
    status = ct.EvseStatus(notification_max_delay=NOTICE_DELAY_S, evse_notification=ct.EvseNotification.Terminate)
    return dataclasses.replace(message, evse_status=status)


def terminate_cases() -> Iterator[Case]:
    ignores = Breaker(_ignores_terminate, TERMINATE)
    yield _terminate_case("FIRST-LOOP", "at the first charge loop, MaxDelay 0", {1: "Terminate"}, {}, ignores)
    scheduled = Breaker(_ignores_terminate, TERMINATE, {"mode": ControlMode.SCHEDULED})
    settings = only(ServiceId.MCS, ControlMode.SCHEDULED)
    yield _terminate_case(
        "SCHEDULED", "in Scheduled mode, MaxDelay 0", {2: "Terminate"}, settings, scheduled, SCHEDULED
    )
    dc_only = only(ServiceId.DC, ControlMode.DYNAMIC)
    yield _terminate_case("DC", "to a DC truck", {3: "Terminate"}, dc_only, ignores, Needs(service=ServiceId.DC))
    late = Breaker(lambda: Script((continue_with(is_stop, delay=NOTICE_DELAY_S + 2.0),)), TERMINATE)
    fault = continue_with("DC_ChargeLoopRes", nth=2, mutate=_with_terminate)
    yield _terminate_case("MAX-DELAY", f"with MaxDelay {NOTICE_DELAY_S} s", {}, {}, late, tester=fault)


def _terminate_case(
    detail: str,
    how: str,
    notifications: dict[int, str],
    settings: dict[str, Any],
    breaker: Breaker,
    needs: Needs = ANY_TRUCK,
    tester: Fault | None = None,
) -> Case:
    async def run(bench: Bench) -> Verdict:
        script = Script(() if tester is None else (tester,))
        await serve(bench, script, MinimalEvse(notifications=dict(notifications)), **settings)
        return first_then(honours_terminate(bench.trace), whole_session(bench.trace))

    return Case(
        f"EVCC-TERMINATE-{detail}",
        f"The charger says EVSENotification Terminate {how}: the truck sends PowerDeliveryReq(Stop) within the "
        "MaxDelay, no further charge loop, then SessionStop",
        "evcc",
        (TERMINATE, SESSION_STOP),
        run,
        breaker,
        needs,
        ("terminate", "charge-loop"),
    )


# -- the charger's maximum limits ------------------------------------------------------------------------------


def within_limits(trace: Trace) -> Verdict:
    """Every target the truck asks for is within the maximums the charger gave last (DC_ChargeParameterDiscoveryRes,
    then each DC_ChargeLoopRes): EVTargetVoltage of pre-charge; in Scheduled mode EVTargetCurrent, EVTargetVoltage,
    and the power EVTargetCurrent x EVPresentVoltage."""
    evse: PowerLimits | None = None
    for entry in trace.entries:
        if entry.kind is Kind.SENT and entry.name == "DC_ChargeParameterDiscoveryRes":
            evse = from_wire("evse", getattr(entry.message, "dc_cpd_res_energy_transfer_mode", None))
        elif entry.kind is Kind.SENT and entry.name == "DC_ChargeLoopRes":
            evse = from_wire("evse", getattr(entry.message, "cl_res_control_mode", None))
        elif entry.kind is Kind.RECEIVED and evse is not None:
            for what, asked, limit, unit in _targets(entry.message, evse):
                if limit > 0 and asked > limit * ROUNDING:
                    return failed(WITHIN, f"{what} <= {limit:g} {unit}", f"{asked:g} {unit}", entry.name, entry.t)
    return passed()


def _targets(message: object, evse: PowerLimits) -> list[tuple[str, float, float, str]]:
    """(what, the truck's target, the charger's maximum, unit) of one request."""
    if isinstance(message, dc.DcPreChargeReq):
        return [("EVTargetVoltage", fl(message.ev_target_voltage), evse.max_voltage, "V")]
    if not isinstance(message, dc.DcChargeLoopReq):
        return []
    mode = message.cl_req_control_mode
    current, voltage = fl(getattr(mode, "ev_target_current", None)), fl(getattr(mode, "ev_target_voltage", None))
    targets = []
    if current is not None:
        power = current * fl(message.ev_present_voltage)
        targets += [("EVTargetCurrent", current, evse.max_charge_current, "A")]
        targets += [("EVTargetCurrent x EVPresentVoltage", power, evse.max_charge_power, "W")]
    if voltage is not None:
        targets.append(("EVTargetVoltage", voltage, evse.max_voltage, "V"))
    return targets


def _loop_target(**targets: float) -> Any:
    """The first DC_ChargeLoopReq of our EV asks for more than it may."""

    def change(message: Any) -> Any:
        fields = {f"ev_target_{name}": rn(value) for name, value in targets.items()}
        mode = dataclasses.replace(message.cl_req_control_mode, **fields)
        return dataclasses.replace(message, cl_req_control_mode=mode)

    return change


def limits_cases() -> Iterator[Case]:
    pre_charge = continue_with("DC_PreChargeReq", mutate=lambda m: dataclasses.replace(m, ev_target_voltage=rn(900)))
    yield _limits_case("PRECHARGE-VOLTAGE", "a maximum voltage of 800 V", {"max_voltage": 800}, pre_charge, {})
    scheduled = {"mode": ControlMode.SCHEDULED}
    for detail, rating, target in (
        ("CURRENT", {"max_charge_current": 1000}, {"current": 1200.0}),
        ("VOLTAGE", {"max_voltage": 1000}, {"voltage": 1100.0}),
        ("POWER", {"max_charge_power": 800_000}, {"current": 1100.0}),
    ):
        loop = continue_with("DC_ChargeLoopReq", mutate=_loop_target(**target))
        what = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in rating.items())
        yield _limits_case(f"SCHEDULED-{detail}", f"a {what}", rating, loop, scheduled, SCHEDULED)


def _limits_case(
    detail: str, what: str, rating: Mapping[str, float], fault: Fault, broken: dict[str, Any], needs: Needs = ANY_TRUCK
) -> Case:
    mode = ControlMode.SCHEDULED if needs is SCHEDULED else ControlMode.DYNAMIC

    async def run(bench: Bench) -> Verdict:
        if mode not in bench.profile.control_modes:
            return inconclusive(f"the truck does not support {mode.name.lower()} control")
        evse = MinimalEvse(ratings=dataclasses.replace(MCS_CHARGER, **rating))
        services = bench.profile.services
        await serve(bench, None, evse, offers=tuple(dc_offer(s, (mode,)) for s in services))
        return first_then(within_limits(bench.trace), whole_session(bench.trace, charged=services))

    return Case(
        f"EVCC-LIMITS-{detail}",
        f"The charger gives {what} (still enough for the truck's pack): the truck's targets stay within it",
        "evcc",
        (WITHIN, SESSION_STOP),
        run,
        Breaker(lambda: Script((fault,)), WITHIN, broken),
        needs,
        ("limits",),
    )


# -- a schema-valid response with an optional element the truck did not ask for ----------------------------------


def _with_meter(message: Any) -> Any:
    """Our DC_ChargeLoopRes with MeterInfo (BPT_DischargedEnergyReadingWh included), which the EV did not request."""
    meter = ct.MeterInfo(meter_id="MCS-METER-1", charged_energy_reading_wh=1000, bpt_discharged_energy_reading_wh=0)
    return dataclasses.replace(message, meter_info=meter)


def meter_info_case() -> Case:
    async def run(bench: Bench) -> Verdict:
        services = bench.profile.services
        offers = tuple(dc_offer(s) for s in services)
        await serve(bench, Script((continue_with("DC_ChargeLoopRes", mutate=_with_meter),)), offers=offers)
        verdict = whole_session(bench.trace, charged=services)
        if verdict.ok:
            return verdict
        return failed(ACCEPTS, "the session goes on after a DC_ChargeLoopRes with MeterInfo", verdict.seen)

    leaves = Fault("DC_ChargeLoopReq", nth=2, drop=True, note="the truck leaves after the MeterInfo")
    return Case(
        "EVCC-ACCEPT-METERINFO",
        "The charger adds MeterInfo (with BPT_DischargedEnergyReadingWh) to a DC_ChargeLoopRes unasked: the schema "
        "allows it, so the truck goes on charging and ends the session with SessionStop",
        "evcc",
        (ACCEPTS,),
        run,
        Breaker(lambda: Script((leaves,)), ACCEPTS),
        tags=("charge-loop", "optional-elements"),
    )


def cases() -> Iterator[Case]:
    yield from terminate_cases()
    yield from limits_cases()
    yield meter_info_case()

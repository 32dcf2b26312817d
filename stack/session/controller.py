"""The two narrow doors between the protocol and the decisions: what the EVSE grants, what the EV asks.

Values cross these interfaces in SI units as floats (W, A, V, Wh, s); the session machines convert them to
and from RationalNumbers. Discharge limits are positive magnitudes here; the sign on the wire is a setting
of the machines (PROTOCOL.md section 5: the standard is unclear, EVerest makes it configurable).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from .services import ControlMode, ParameterSet, ServiceId


class AuthorizationStatus(StrEnum):
    ACCEPTED = "accepted"
    ONGOING = "ongoing"
    REJECTED = "rejected"


class CableCheckStatus(StrEnum):
    ONGOING = "ongoing"
    OK = "ok"
    FAULT = "fault"


class StopReason(StrEnum):
    """Why the EV ends the charge loop; maps to PowerDelivery and SessionStop choices."""

    TERMINATE = "terminate"
    PAUSE = "pause"
    SERVICE_RENEGOTIATION = "service_renegotiation"
    SCHEDULE_RENEGOTIATION = "schedule_renegotiation"


@dataclass(frozen=True, slots=True)
class PowerLimits:
    """Charge (and, for BPT, discharge) limits of one side."""

    max_charge_power: float
    min_charge_power: float
    max_charge_current: float
    min_charge_current: float
    max_voltage: float
    min_voltage: float
    max_discharge_power: float | None = None
    min_discharge_power: float | None = None
    max_discharge_current: float | None = None
    min_discharge_current: float | None = None

    @property
    def bidirectional(self) -> bool:
        return self.max_discharge_power is not None

    def unidirectional(self) -> PowerLimits:
        """The same limits without the discharge side (for a service that is not BPT)."""
        return replace(
            self,
            max_discharge_power=None,
            min_discharge_power=None,
            max_discharge_current=None,
            min_discharge_current=None,
        )


@dataclass(frozen=True, slots=True)
class EnergyRequest:
    """The EV's needs for ScheduleExchange and the Dynamic charge loop (energies in Wh, times in s)."""

    target_energy: float
    max_energy: float
    min_energy: float
    departure_time: int | None = None  # seconds from now
    min_soc: int | None = None
    target_soc: int | None = None
    max_v2x_energy: float | None = None
    min_v2x_energy: float | None = None


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    duration: int  # s
    power: float  # W


@dataclass(frozen=True, slots=True)
class PriceLevel:
    duration: int  # s
    level: int  # 0 = the cheapest of `Schedule.price_levels`


@dataclass(frozen=True, slots=True)
class Schedule:
    """One ScheduleTuple: a charging and optionally a discharging power schedule; optionally the price levels
    over the same time (a PriceLevelSchedule in the charging schedule: `price_levels` levels, 0 the cheapest)."""

    tuple_id: int
    charge: tuple[ScheduleEntry, ...]
    discharge: tuple[ScheduleEntry, ...] | None = None
    prices: tuple[PriceLevel, ...] = ()
    price_levels: int = 0


@dataclass(frozen=True, slots=True)
class ScheduleAnswer:
    """The EVSE's answer to ScheduleExchange: Ongoing, or schedules (Scheduled) / targets (Dynamic)."""

    finished: bool = True
    schedules: tuple[Schedule, ...] = ()
    departure_time: int | None = None
    min_soc: int | None = None
    target_soc: int | None = None
    go_to_pause: bool | None = None


@dataclass(frozen=True, slots=True)
class ChargeLoopInput:
    """What the EVSE learns from a DC_ChargeLoopReq."""

    control_mode: ControlMode
    ev_present_voltage: float
    target_current: float | None = None  # Scheduled only
    target_voltage: float | None = None  # Scheduled only
    ev_limits: PowerLimits | None = None  # Dynamic (and optional in Scheduled)
    energy: EnergyRequest | None = None
    soc: int | None = None
    meter_info_requested: bool = False


@dataclass(frozen=True, slots=True)
class MeterReading:
    meter_id: str
    imported_wh: int
    exported_wh: int | None = None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class ChargeLoopOutput:
    """The EVSE's answer in the charge loop (present values measured by the power stage)."""

    present_voltage: float
    present_current: float  # positive = charging the EV, negative = discharging
    limits: PowerLimits
    power_limit_achieved: bool = False
    current_limit_achieved: bool = False
    voltage_limit_achieved: bool = False
    notification: str | None = None  # EVSENotification: Pause, ExitStandby, Terminate, ScheduleRenegotiation, ...
    notification_max_delay: int = 0
    meter: MeterReading | None = None
    departure_time: int | None = None
    min_soc: int | None = None
    target_soc: int | None = None
    ack_max_delay: int | None = None


class EvseController(Protocol):
    """The charger's decisions. The SECC machine asks, the controller answers from its plant and its policy."""

    def evse_id(self, now: float) -> str: ...
    def authorize(self, now: float, emaid: str | None = None) -> AuthorizationStatus: ...
    def charge_parameters(self, service: ServiceId, ev: PowerLimits, now: float) -> PowerLimits: ...
    def schedule(
        self, service: ServiceId, mode: ControlMode, request: EnergyRequest | None, max_entries: int, now: float
    ) -> ScheduleAnswer: ...
    def cable_check(self, now: float) -> CableCheckStatus: ...
    def pre_charge(self, target_voltage: float, now: float) -> float: ...
    def power_delivery(self, start: bool, discharge: bool, now: float) -> bool: ...
    def charge_loop(self, loop: ChargeLoopInput, now: float) -> ChargeLoopOutput: ...
    def welding_detection(self, now: float) -> float: ...
    def session_ended(self, reason: str, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ChargeParameters:
    """What the EV announces in DC_ChargeParameterDiscoveryReq."""

    limits: PowerLimits
    target_soc: int | None = None


@dataclass(frozen=True, slots=True)
class PreChargeStep:
    """The EV's next DC_PreChargeReq: its voltages, and whether the EVSE's voltage matches (then it is done)."""

    present_voltage: float
    target_voltage: float
    matched: bool = False


@dataclass(frozen=True, slots=True)
class PowerDeliveryStep:
    """The EV's PowerDeliveryReq: `ready` is False when it cannot start (its contactors refused to close)."""

    ready: bool = True
    discharge: bool = False  # BPT: ask for the discharge channel
    max_charge_power: float = 0.0  # W, for the EV power profile sent at Start (Dynamic mode)


@dataclass(frozen=True, slots=True)
class ChargeLoopFeedback:
    """What the EV learns from a DC_ChargeLoopRes (None before the first one)."""

    present_voltage: float
    present_current: float
    notification: str | None = None
    limits: PowerLimits | None = None
    received_at: float | None = None  # when the response arrived: when the charger measured these values


@dataclass(frozen=True, slots=True)
class EvLoopStep:
    """The EV's next charge-loop request, or the decision to stop."""

    stop: StopReason | None = None
    present_voltage: float = 0.0  # at the EV's inlet (its pack while the contactors are closed)
    target_current: float | None = None  # Scheduled
    target_voltage: float | None = None  # Scheduled
    soc: int | None = None
    energy: EnergyRequest | None = None
    limits: PowerLimits | None = None
    charging_complete: bool = False


class EvController(Protocol):
    """The vehicle's decisions: one call per exchange, made when the EVCC builds the request (or reads the
    response), with the time of that moment; each returns everything the message needs.

    Contactors are the EV's own business: it closes them when `power_delivery(Start)` is asked (`ready=False`
    refuses, e.g. at the contactor-cycle limit) and opens them at the first `welding_detection` call (or at
    `session_ended`), after the SECC switched its output off.
    """

    def evcc_id(self, now: float) -> str: ...
    def choose_service(self, offered: list[ServiceId], now: float) -> ServiceId | None: ...
    def choose_parameter_set(self, service: ServiceId, sets: list[ParameterSet], now: float) -> ParameterSet | None: ...
    def charge_parameters(self, service: ServiceId, now: float) -> ChargeParameters: ...
    def energy_request(self, service: ServiceId, mode: ControlMode, now: float) -> EnergyRequest: ...
    def choose_schedule(self, schedules: list[Schedule], now: float) -> Schedule | None: ...
    def pre_charge(self, evse_present_voltage: float | None, now: float) -> PreChargeStep: ...
    def power_delivery(self, progress: str, now: float) -> PowerDeliveryStep: ...
    def charge_loop(self, feedback: ChargeLoopFeedback | None, now: float) -> EvLoopStep: ...
    def welding_detection(self, evse_present_voltage: float | None, now: float) -> bool: ...
    def session_ended(self, reason: str, ok: bool, now: float) -> None: ...

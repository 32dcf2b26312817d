"""Timers of a -20 session as data (PROTOCOL.md section 6), so tests and simulations run in virtual time.

`TimerId` names every timer (the standard's name where it has one); the rulebook says which exchange runs
which timer, these dataclasses hold the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TimerId(StrEnum):
    SECC_SEQUENCE = "V2G_SECC_Sequence_Timeout"  # the SECC waits for the next request
    SECC_ONGOING = "V2G_SECC_Ongoing_Timeout"  # the SECC ends an Ongoing loop that lasts too long (LIB15118)
    SECC_EIM_ONGOING = "V2G_SECC_EIM_Ongoing_Timeout"  # the same for EIM authorization (LIB15118)
    EVCC_MESSAGE = "V2G_EVCC_Msg_Timeout"  # the EV waits for a response
    EVCC_COMMUNICATION_SETUP = "V2G_EVCC_CommunicationSetup_Timeout"  # link up -> SessionSetupRes
    EVCC_ONGOING = "V2G_EVCC_Ongoing_Timeout"  # one Ongoing loop (authorization, schedule exchange)
    EVCC_CABLE_CHECK = "V2G_EVCC_CableCheck_Timeout"
    EVCC_PRE_CHARGE = "V2G_EVCC_PreCharge_Timeout"
    EVCC_WELDING_DETECTION = "WeldingDetection_Timeout"  # EVerest's EV guard; the standard's name is unknown


@dataclass(frozen=True, slots=True)
class EvccTimers:
    """EVCC-side limits, in seconds. Message timeouts come from the rulebook unless scaled."""

    communication_setup: float = 20.0
    ongoing: float = 60.0
    cable_check: float = 40.0
    # Josev and EVerest's EV use 10 s; a Josev issue claims -20 Table 215 says 60 s (PROTOCOL.md 12.3)
    pre_charge: float = 10.0
    welding_detection: float = 60.0
    message_scale: float = 1.0  # multiplies every V2G_EVCC_Msg_Timeout (1.0 = the standard's values)
    loop_interval: float = 0.1  # spacing of repeated requests (Ongoing, pre-charge, welding detection)
    charge_loop_interval: float = 0.25  # spacing of DC_ChargeLoopReq

    def limit(self, timer: TimerId) -> float:
        return {
            TimerId.EVCC_COMMUNICATION_SETUP: self.communication_setup,
            TimerId.EVCC_ONGOING: self.ongoing,
            TimerId.EVCC_CABLE_CHECK: self.cable_check,
            TimerId.EVCC_PRE_CHARGE: self.pre_charge,
            TimerId.EVCC_WELDING_DETECTION: self.welding_detection,
        }[timer]


@dataclass(frozen=True, slots=True)
class SeccTimers:
    """SECC-side limits, in seconds."""

    sequence: float = 60.0
    ongoing: float = 55.0  # answer FAILED when an Ongoing phase lasts longer (LIB15118)
    eim_ongoing: float = 180.0  # the same for EIM authorization (LIB15118)
    close_linger: float = 5.0  # wait for the EV to close after the last response ([V2G20-1643])

    def limit(self, timer: TimerId) -> float:
        return {
            TimerId.SECC_SEQUENCE: self.sequence,
            TimerId.SECC_ONGOING: self.ongoing,
            TimerId.SECC_EIM_ONGOING: self.eim_ongoing,
        }[timer]

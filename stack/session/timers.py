"""Timers of a -20 session as data (PROTOCOL.md section 6), so tests and simulations run in virtual time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EvccTimers:
    """EVCC-side limits, in seconds. Message timeouts come from `flow.EXCHANGES` unless overridden."""

    communication_setup: float = 20.0  # V2G_EVCC_CommunicationSetup_Timeout: start -> SessionSetupRes
    ongoing: float = 60.0  # V2G_EVCC_Ongoing_Timeout: one Ongoing loop (authorization, schedule exchange)
    cable_check: float = 40.0  # V2G_EVCC_CableCheck_Timeout
    # Josev and EVerest's EV use 10 s; a Josev issue claims -20 Table 215 says 60 s (PROTOCOL.md 12.3)
    pre_charge: float = 10.0
    welding_detection: float = 60.0  # EVerest's EV guard
    message_scale: float = 1.0  # multiplies every V2G_EVCC_Msg_Timeout (1.0 = the standard's values)
    loop_interval: float = 0.1  # spacing of repeated requests (Ongoing, pre-charge, welding detection)
    charge_loop_interval: float = 0.25  # spacing of DC_ChargeLoopReq


@dataclass(frozen=True, slots=True)
class SeccTimers:
    """SECC-side limits, in seconds."""

    sequence: float = 60.0  # V2G_SECC_Sequence_Timeout: waiting for the next request
    ongoing: float = 55.0  # answer FAILED when an Ongoing phase lasts longer (LIB15118)
    eim_ongoing: float = 180.0  # the same for EIM authorization (LIB15118)
    close_linger: float = 5.0  # wait for the EV to close after the last response ([V2G20-1643])

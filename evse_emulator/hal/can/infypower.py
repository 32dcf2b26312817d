"""InfyPower V1.13 modules (REG/CEG/LRG, unidirectional) as EVerest's `InfyPower` driver speaks to them [I].

One command per ID (0x02 count, 0x03/0x04/0x0A/0x0B/0x0C reads, 0x1A on/off, 0x1C set V/I), payloads from
`dbc/infypower_v113.dbc`. The status bits (bytes 5-7) are shared with the BEC/BEG protocol, whose module status
register carries the same layout: `status_of` and `status_bits` serve both families.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import IntEnum

import can
from cantools.database.can import Database

from .family import CONTROLLER_ADDRESS, Family
from .infy_id import (
    CONTROLLERS,
    DATA_INVALID,
    DEVICE_GROUP,
    DEVICE_MODULE,
    InfyId,
    Signals,
    by_command,
    decode,
    error_text,
    frame,
)
from .model import Direction, EmulatedModule, ModuleCommand, ModuleRating, ModuleReport, ModuleStatus, module_at


class Cmd(IntEnum):
    """The command field of the ID [I:can_driver_acdc/CanPackets.hpp]."""

    MODULE_COUNT = 0x02
    VOLTAGE_CURRENT = 0x03
    STATUS = 0x04
    RATING = 0x0A
    BARCODE = 0x0B
    OUTPUT = 0x0C
    ON_OFF = 0x1A
    SET_VI = 0x1C


# Status bits that name a fault [I:can_driver_acdc/CanPackets.cpp PowerModuleStatus], signal -> words. The others
# say what the module does (DcSideOff, PowerLimit, WalkIn, Sleeping, PfcSideOff).
FAULT_BITS: dict[str, str] = {
    "FaultAlarm": "fault alarm",
    "Protection": "protection",
    "FanFault": "fan fault",
    "OverTemperature": "over-temperature",
    "OutputOverVoltage": "output over-voltage",
    "CommInterrupt": "communication interrupted",
    "OutputShort": "output short circuit",
    "DischargeAbnormal": "discharge abnormal",
    "IdRepeat": "address repeated",
    "LoadSharing": "load sharing abnormal",
    "PhaseLost": "input phase lost",
    "InputUnbalanced": "input unbalanced",
    "InputUnderVoltage": "input under-voltage",
    "InputOverVoltage": "input over-voltage",
}
_STATE_BITS = ("DcSideOff", "PowerLimit", "WalkIn", "Sleeping", "PfcSideOff")
RATING_SIGNALS = ("MaxVoltage", "MinVoltage", "MaxCurrent", "RatedPower")  # 0x0A, in ModuleRating's order


def status_bits(module: EmulatedModule) -> dict[str, int]:
    """The module's status bits. Any fault sets "fault alarm" (EVerest's Fault), plus the bits its words name."""
    named = set(module.fault.split(", ")) if module.fault else set()
    bits = {signal: int(text in named) for signal, text in FAULT_BITS.items()}
    bits["FaultAlarm"] = int(module.fault is not None)
    state = {"DcSideOff": int(not module.on), "PowerLimit": int(module.derate < 1)}
    return bits | dict.fromkeys(_STATE_BITS, 0) | state


def status_of(signals: Signals, inverter: bool = False, temperature_c: float | None = None) -> ModuleStatus:
    """The status the bits say: the specific fault bits by name, "fault alarm" only when it stands alone."""
    raised = [text for signal, text in FAULT_BITS.items() if signals[signal]]
    specific = [text for text in raised if text != FAULT_BITS["FaultAlarm"]]
    return ModuleStatus(
        off=bool(signals["DcSideOff"]),
        fault=", ".join(specific or raised) or None,
        derated=bool(signals["PowerLimit"]),
        inverter=inverter,
        temperature_c=temperature_c,
    )


def rating_of(signals: Signals, bidirectional: bool = False) -> ModuleRating:
    """A rating from its four signals (named as in `RATING_SIGNALS`)."""
    max_v, min_v, max_a, power_w = (float(signals[name]) for name in RATING_SIGNALS)
    return ModuleRating(max_v, min_v, max_a, power_w, bidirectional)


class InfyPowerDriver:
    """The controller's side, as [I] drives it: writes only on change, the current is this module's share."""

    def __init__(self, db: Database, controller: int = CONTROLLER_ADDRESS) -> None:
        self._requests, self._replies = by_command(db)
        self._controller = controller

    def _send(self, command: int, address: int, signals: Signals, device: int = DEVICE_MODULE) -> can.Message:
        return frame(self._requests[command], InfyId(command, address, self._controller, device), signals)

    def discovery(self) -> list[can.Message]:
        return [self._send(Cmd.MODULE_COUNT, 0, {}, DEVICE_GROUP)]  # group 0 [I:can_driver_acdc/InfyCanDevice.cpp]

    def poll(self, address: int, rating_known: bool) -> list[can.Message]:
        reads = (Cmd.VOLTAGE_CURRENT, Cmd.STATUS, Cmd.OUTPUT) + (() if rating_known else (Cmd.RATING, Cmd.BARCODE))
        return [self._send(command, address, {}) for command in reads]

    def command(self, address: int, command: ModuleCommand, previous: ModuleCommand | None) -> list[can.Message]:
        if command.direction is not Direction.EXPORT:
            raise ValueError("InfyPower V1.13 modules only export")
        frames = []
        if previous is None or (previous.voltage_v, previous.current_a) != (command.voltage_v, command.current_a):
            frames.append(self._send(Cmd.SET_VI, address, {"Voltage": command.voltage_v, "Current": command.current_a}))
        if previous is None or previous.on != command.on:
            frames.append(self._send(Cmd.ON_OFF, address, {"OnOff": "on" if command.on else "off"}))
        return frames

    def decode(self, message: can.Message) -> ModuleReport | None:
        if not message.is_extended_id or len(message.data) < 8:
            return None
        fields = InfyId.parse(message.arbitration_id)
        if fields.destination != self._controller or fields.command not in self._replies:
            return None
        address = fields.source
        if fields.error:
            return ModuleReport(address, refused=error_text(fields.error))
        signals = decode(self._replies[fields.command], message.data)
        match fields.command:
            case Cmd.MODULE_COUNT:
                return ModuleReport(address, module_count=int(signals["ModuleCount"]))
            case Cmd.VOLTAGE_CURRENT:
                voltage, current = float(signals["OutputVoltage"]), float(signals["OutputCurrent"])
                return ModuleReport(address, voltage_v=voltage, current_a=current)
            case Cmd.STATUS:
                return ModuleReport(address, status=status_of(signals, temperature_c=float(signals["Temperature"])))
            case Cmd.RATING:
                return ModuleReport(address, rating=rating_of(signals))
            case Cmd.BARCODE:
                serial = f"{chr(int(signals['BarcodeChar13']))}{int(signals['VendorCode']):014X}"
                return ModuleReport(address, serial=serial)
            case Cmd.OUTPUT:
                return ModuleReport(address, voltage_v=float(signals["DiodeVoltage"]))
            case Cmd.ON_OFF:
                return ModuleReport(address, acknowledged="on/off")
            case _:
                return ModuleReport(address, acknowledged="voltage/current")


class InfyPowerModule:
    """The modules' side. Writes are echoed with the error code in the ID: 3 "data invalid" for a refused value
    (our choice: the V1.13 sources name no code, 3 is the BEC/BEG code for it). No broadcast: see `answer`."""

    def __init__(self, db: Database) -> None:
        self._requests, self._replies = by_command(db)

    def answer(self, message: can.Message, modules: Sequence[EmulatedModule], now: float) -> list[can.Message]:
        if not message.is_extended_id or len(message.data) < 8:
            return []
        request = InfyId.parse(message.arbitration_id)
        if request.source not in CONTROLLERS or request.command not in self._requests:
            return []
        # [I:README.md] calls address "0" a broadcast, yet discovery assumes modules 0..n-1: we address module 0.
        key = (lambda m: m.group) if request.device == DEVICE_GROUP else (lambda m: m.address)
        if request.device == DEVICE_MODULE:
            one = module_at(modules, request.destination)
            targets = [one] if one is not None and one.alive else []
        else:
            targets = sorted((m for m in modules if m.alive and key(m) == request.destination), key=lambda m: m.address)
        for module in targets:
            module.last_heard_s = now
        if request.command == Cmd.MODULE_COUNT:  # the group answers once, from its lowest address
            return [self._reply(request, targets[0], {"ModuleCount": len(targets)})] if targets else []
        signals = decode(self._requests[request.command], message.data)
        return [self._answer_one(request, module, signals) for module in targets]

    def _answer_one(self, request: InfyId, module: EmulatedModule, signals: Signals) -> can.Message:
        match request.command:
            case Cmd.SET_VI:
                before = module.voltage_v
                refused = module.set_voltage(float(signals["Voltage"])) or module.set_current(float(signals["Current"]))
                if refused:
                    module.voltage_v = before  # the frame is refused whole
                return self._reply(request, module, signals, DATA_INVALID if refused else 0)
            case Cmd.ON_OFF:
                refused = module.switch(signals["OnOff"] == "on")
                return self._reply(request, module, signals, DATA_INVALID if refused else 0)
            case Cmd.VOLTAGE_CURRENT:
                reading = {"OutputVoltage": module.output_v, "OutputCurrent": abs(module.output_a)}
                return self._reply(request, module, reading)
            case Cmd.STATUS:
                temperature = max(-128, min(127, round(module.temperature_c)))
                return self._reply(request, module, status_bits(module) | {"Temperature": temperature})
            case Cmd.RATING:
                r = module.rating
                limits = (r.max_voltage_v, r.min_voltage_v, r.max_current_a, r.rated_power_w)
                return self._reply(request, module, dict(zip(RATING_SIGNALS, limits, strict=True)))
            case Cmd.BARCODE:
                char = module.serial[12] if len(module.serial) > 12 else "0"
                # bytes 1-7 are vendor-encoded [I]: ours carry the address, so each module's "serial" differs
                return self._reply(request, module, {"BarcodeChar13": ord(char), "VendorCode": module.address})
            case _:
                available = replace(module.rating, rated_power_w=module.available_power_w).current_at(module.output_v)
                return self._reply(request, module, {"DiodeVoltage": module.output_v, "AvailableCurrent": available})

    def _reply(self, request: InfyId, module: EmulatedModule, signals: Signals, error: int = 0) -> can.Message:
        return frame(self._replies[request.command], request.reply(module.address, error), signals)


FAMILY = Family(
    name="infypower",
    title="InfyPower V1.13 (REG/CEG/LRG), unidirectional",
    dbc="infypower_v113.dbc",
    bitrate=125_000,  # [I:README.md]
    poll_interval_s=1.0,  # [I:can_driver_acdc/CanBus.cpp]
    drop_after_s=15.0,  # device_connection_timeout_s [I:manifest.yaml, main/power_supply_DCImpl.cpp]
    module_silence_off_s=10.0,  # the V1.13 spec as quoted in [I:README.md]
    # Our model choice: the sources give no figures (ratings come from 0x0A at run time). A 40 kW class module.
    rating=ModuleRating(max_voltage_v=1000.0, min_voltage_v=150.0, max_current_a=133.3, rated_power_w=40_000.0),
    driver=InfyPowerDriver,
    module=InfyPowerModule,
    sources=(
        "I:README.md",
        "I:manifest.yaml",
        "I:can_driver_acdc/CanPackets.cpp",
        "I:can_driver_acdc/CanPackets.hpp",
        "I:can_driver_acdc/InfyCanDevice.cpp",
        "I:can_driver_acdc/InfyCanDevice.hpp",
        "I:can_driver_acdc/Conversions.hpp",
        "I:can_driver_acdc/CanBus.cpp",
        "I:main/power_supply_DCImpl.cpp",
    ),
)

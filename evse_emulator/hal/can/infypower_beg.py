"""InfyPower BEG1K075G (BEC/BEG protocol V1.04, bidirectional) as EVerest [B] and chargebyte [C] drive it.

Register protocol: command 0x23 reads and 0x24 writes a register (bytes 0-1), value in bytes 4-7, replies reuse
the register; `dbc/infypower_beg.dbc` multiplexes each direction's payloads on the register.

Addressing is our choice for stacking: every command goes to one module (device 0x0A, destination = its address).
B broadcasts its writes (0x3F) and drives one module; C sends everything to one dial group (device 0x0B). The
module side answers all three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import can
from cantools.database.can import Database
from cantools.database.errors import DecodeError

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
from .infypower import RATING_SIGNALS, rating_of, status_bits, status_of
from .model import Direction, EmulatedModule, ModuleCommand, ModuleRating, ModuleReport, ModuleStatus, module_at

READ, WRITE = 0x23, 0x24
BROADCAST = 0x3F
COMMAND_INVALID = 2
READINGS = ("ModuleStatus", "InverterStatus", "DcVoltage", "DcCurrent")  # the status first: see `poll`
CAPABILITIES = RATING_SIGNALS  # 0x1130-0x1133: the DBC names them as V1.13's 0x0A signals
WORKING_MODE = {Direction.EXPORT: "rectifier", Direction.IMPORT: "inverter"}
VALUE_SIGNAL = {"DcVoltage": "Voltage", "DcCurrent": "Current"}  # a written register's signal, if not its name


class InfyPowerBegDriver:
    """The controller's side. It remembers per module the last status and inverter bit (to sign the current,
    > 0 into the EV) and the capability registers until all four are in."""

    def __init__(self, db: Database, controller: int = CONTROLLER_ADDRESS) -> None:
        self._requests, self._replies = by_command(db)
        self._controller = controller
        self._status: dict[int, ModuleStatus] = {}
        self._caps: dict[int, dict[str, float]] = {}

    def _send(self, command: int, address: int, signals: Signals, device: int = DEVICE_MODULE) -> can.Message:
        return frame(self._requests[command], InfyId(command, address, self._controller, device), signals)

    def _write(self, address: int, register: str, value: float | str) -> can.Message:
        return self._send(WRITE, address, {"Register": register, VALUE_SIGNAL.get(register, register): value})

    def discovery(self) -> list[can.Message]:
        return [self._send(READ, 0, {"Register": "ModuleCount"}, DEVICE_GROUP)]  # group 0's count, as C starts

    def poll(self, address: int, rating_known: bool) -> list[can.Message]:
        # the inverter bit, read before the current, signs it in the same cycle
        registers = READINGS + (() if rating_known else CAPABILITIES)
        return [self._send(READ, address, {"Register": register}) for register in registers]

    def command(self, address: int, command: ModuleCommand, previous: ModuleCommand | None) -> list[can.Message]:
        """The direction changes only while off, and is written before switching on [B, C]: off, mode, V, I, on."""
        starting = command.on and (previous is None or not previous.on)
        redirect = previous is None or previous.direction is not command.direction
        off_first = redirect and (previous is None or previous.on)
        frames = [self._write(address, "OnOff", "off")] if off_first else []
        if redirect or starting:
            frames.append(self._write(address, "WorkingMode", WORKING_MODE[command.direction]))
        if previous is None or previous.voltage_v != command.voltage_v:
            frames.append(self._write(address, "DcVoltage", command.voltage_v))
        if previous is None or previous.current_a != command.current_a:
            frames.append(self._write(address, "DcCurrent", command.current_a))
        if command.on and (starting or off_first):
            frames.append(self._write(address, "OnOff", "on"))
        elif not command.on and previous is not None and previous.on and not off_first:
            frames.append(self._write(address, "OnOff", "off"))
        return frames

    def decode(self, message: can.Message) -> ModuleReport | None:
        if not message.is_extended_id or len(message.data) < 8:
            return None
        fields = InfyId.parse(message.arbitration_id)
        if fields.destination != self._controller or fields.command not in self._replies:
            return None
        address = fields.source
        if fields.error:
            number = int(decode(self._requests[READ], message.data, choices=False)["Register"])
            choices = self._replies[fields.command].get_signal_by_name("Register").choices
            name = choices.get(number) if choices else None
            return ModuleReport(address, refused=f"{name or f'register 0x{number:04X}'}: {error_text(fields.error)}")
        try:
            signals = decode(self._replies[fields.command], message.data)
        except DecodeError:  # a register outside our database
            return None
        register = str(signals["Register"])
        if fields.command == WRITE:
            return ModuleReport(address, acknowledged=register)
        return self._reading(address, register, signals)

    def _reading(self, address: int, register: str, signals: Signals) -> ModuleReport:
        last = self._status.get(address, ModuleStatus())
        match register:
            case "DcVoltage":
                return ModuleReport(address, voltage_v=float(signals["Voltage"]))
            case "DcCurrent":
                current = float(signals["Current"])
                return ModuleReport(address, current_a=-current if last.inverter else current)
            case "ModuleCount":
                return ModuleReport(address, module_count=int(signals["ModuleCount"]))
            case "ModuleStatus":
                self._status[address] = status_of(signals, inverter=last.inverter)
            case "InverterStatus":
                self._status[address] = replace(last, inverter=bool(signals["InverterMode"]))
            case _:
                caps = self._caps.setdefault(address, {})
                caps[register] = float(signals[register])
                if len(caps) < len(CAPABILITIES):
                    return ModuleReport(address)
                del self._caps[address]
                return ModuleReport(address, rating=rating_of(caps, bidirectional=True))
        return ModuleReport(address, status=self._status[address])


class InfyPowerBegModule:
    """The modules' side: one module (device 0x0A), a dial group (0x0B) or all (destination 0x3F). For the 0x10xx
    registers (whole-group V/I, count) the group's lowest address answers for all and splits a current write
    evenly [C: "the group master replies"]; for the others every module answers. A refused value: code 3;
    a register we do not emulate: code 2, echoed without its value."""

    def __init__(self, db: Database) -> None:
        self._requests, self._replies = by_command(db)

    def answer(self, message: can.Message, modules: Sequence[EmulatedModule], now: float) -> list[can.Message]:
        if not message.is_extended_id or len(message.data) < 8:
            return []
        request = InfyId.parse(message.arbitration_id)
        if request.source not in CONTROLLERS or request.command not in self._requests:
            return []
        if request.device == DEVICE_MODULE and request.destination != BROADCAST:
            one = module_at(modules, request.destination)
            targets = [one] if one is not None and one.alive else []
        else:
            targets = sorted((m for m in modules if m.alive and _addressed(request, m)), key=lambda m: m.address)
        for module in targets:
            module.last_heard_s = now
        if not targets:
            return []
        number = self._number(message.data)
        try:
            signals = decode(self._requests[request.command], message.data)
        except DecodeError:  # a write to a register outside our database
            signals = {}
        register = signals.get("Register")
        if not isinstance(register, str):  # no name in our database: a register we do not emulate
            unknown = {"Register": number}
            return [frame(self._requests[READ], request.reply(m.address, COMMAND_INVALID), unknown) for m in targets]
        whole_group = number >> 8 == 0x10
        answering = targets[:1] if whole_group else targets
        if request.command == READ:
            return [self._reply(request, m, _read(register, m, targets if whole_group else [m])) for m in answering]
        share = len(targets) if whole_group else 1
        refused = [self._write(register, m, signals, share) for m in targets]  # every module, then one verdict
        return [self._reply(request, m, signals, DATA_INVALID if any(refused) else 0) for m in answering]

    def _number(self, data: bytes | bytearray) -> int:
        """The register number, whether or not the database names it."""
        return int(decode(self._requests[READ], data, choices=False)["Register"])

    def _reply(self, request: InfyId, module: EmulatedModule, signals: Signals, error: int = 0) -> can.Message:
        return frame(self._replies[request.command], request.reply(module.address, error), signals)

    def _write(self, register: str, module: EmulatedModule, signals: Signals, share: int) -> str | None:
        """Apply a write to `module`: the refusal's reason, or None. Walk-in, output mode, power factor and the
        cut-off voltage are only recorded in `module.settings` (enumerations by their code)."""
        match register:
            case "DcVoltage":
                return module.set_voltage(float(signals["Voltage"]))
            case "DcCurrent":
                return module.set_current(float(signals["Current"]) / share)
            case "OnOff":
                return module.switch(signals["OnOff"] == "on")
            case "WorkingMode":
                inverter = signals["WorkingMode"] == WORKING_MODE[Direction.IMPORT]
                return module.set_direction(Direction.IMPORT if inverter else Direction.EXPORT)
        value = signals[register]
        if isinstance(value, str):
            value = self._requests[WRITE].get_signal_by_name(register).conversion.choice_to_number(value)
        module.settings[register] = float(value)
        return None


def _addressed(request: InfyId, module: EmulatedModule) -> bool:
    if request.destination == BROADCAST:
        return True
    return (module.group if request.device == DEVICE_GROUP else module.address) == request.destination


def _read(register: str, module: EmulatedModule, group: list[EmulatedModule]) -> dict[str, float | str]:
    """Register `register` as `module` reads it; the 0x10xx registers speak for `group`."""
    values: dict[str, float | str] = {"Register": register}
    match register:
        case "DcVoltage":
            return values | {"Voltage": module.output_v}
        case "DcCurrent":
            return values | {"Current": sum(abs(m.output_a) for m in group)}
        case "ModuleCount":
            return values | {"ModuleCount": len(group)}
        case "ModuleStatus":
            return values | status_bits(module)
        case "InverterStatus":
            return values | {"InverterMode": int(module.direction is Direction.IMPORT)}
    r = module.rating
    limits = (r.max_voltage_v, r.min_voltage_v, r.max_current_a, r.rated_power_w)
    return values | {register: dict(zip(CAPABILITIES, limits, strict=True))[register]}


FAMILY = Family(
    name="infypower-beg",
    title="InfyPower BEG1K075G (BEC/BEG V1.04), bidirectional",
    dbc="infypower_beg.dbc",
    bitrate=125_000,  # [C:manifest.yaml]; B sets no rate
    # B cycles through its frames every 350-450 ms for ONE module [B:can_driver_acdc/InfyCanDevice.cpp txThread];
    # a stack reads each module once a second, as the V1.13 and Winline drivers do (36 modules at 0.4 s would
    # load a 125 kbit/s bus to ~85 %: `mcs-v2g bench can`)
    poll_interval_s=1.0,
    # our pick: 3 missed poll cycles. C raises after 385 ms (one of its 375 ms rounds), B never drops.
    drop_after_s=3.0,
    module_silence_off_s=10.0,  # our choice: no source states the module-side timeout; V1.13's value
    rating=ModuleRating(
        max_voltage_v=1000.0, min_voltage_v=200.0, max_current_a=73.3, rated_power_w=22_000.0, bidirectional=True
    ),  # hard-coded in [B:main/power_supply_DCImpl.cpp]
    driver=InfyPowerBegDriver,
    module=InfyPowerBegModule,
    sources=(
        "B:can_driver_acdc/CanPackets.cpp",
        "B:can_driver_acdc/InfyCanDevice.cpp",
        "B:main/power_supply_DCImpl.cpp",
        "B:manifest.yaml",
        "C:manifest.yaml",
        "C:InfypowerCANID.hpp",
        "C:InfypowerCANController.cpp",
        "C:main/power_supply_DCImpl.cpp",
        "HW:docs/source/explanation/hardware-drivers.rst",
    ),
)

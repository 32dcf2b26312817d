"""Winline NXR/UXR power modules, protocol V1.50 (EVerest `Winline` driver; facts in docs CAN.md section 3).

Register-based: the controller reads (0x10) or sets (0x03) a register, the module answers with the register, a
data type (0x41 float, 0x42 integer), an error code (0xF0 normal) and the value. The 29-bit ID carries PROTNO
0x060, PTP, destination, source and group; `winline_v150.dbc` holds the payloads at canonical IDs and this module
composes the real IDs with integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import can
from cantools.database.can import Database
from cantools.database.can.message import Message as DbcMessage
from cantools.database.errors import DecodeError

from . import memo
from .family import CONTROLLER_ADDRESS, Family
from .model import (
    Direction,
    EmulatedModule,
    ModuleCommand,
    ModuleRating,
    ModuleReport,
    ModuleStatus,
    module_at,
)

PROTNO = 0x060
GROUP_BROADCAST = 0xFE
BROADCAST = 0xFF
READ, SET = 0x10, 0x03  # request function codes
FLOAT, INTEGER = 0x41, 0x42  # reply data types
NORMAL = 0xF0  # reply error code: normal
SET_FAILED = 0xF2  # the protocol's set-failure code (group/altitude); our module uses it for every refused setting
POWER_ON, POWER_OFF = 0, 0x00010000  # register 0x0030
RESET = 0x00010000  # registers 0x0031 / 0x0044

# register -> DBC signal name (the reply's value signal; the status word is split into bit signals)
V_OUT, I_OUT, RATED_W, RATED_A = 0x0001, 0x0002, 0x0011, 0x0012
SET_I, SET_V, POWER, STATUS = 0x001B, 0x0021, 0x0030, 0x0040
GROUP_INFO, SERIAL_LOW, SERIAL_HIGH = 0x0043, 0x0054, 0x0055
ALTITUDE, LIMIT_POINT, OV_RESET, SHORT_RESET, INPUT_MODE = 0x0017, 0x0022, 0x0031, 0x0044, 0x0046
SIGNAL = {
    V_OUT: "OutputVoltage",
    I_OUT: "OutputCurrent",
    RATED_W: "RatedPower",
    RATED_A: "RatedCurrent",
    SET_I: "SetCurrent",
    SET_V: "SetVoltage",
    POWER: "PowerControl",
    SERIAL_LOW: "SerialLow",
    SERIAL_HIGH: "SerialHigh",
    ALTITUDE: "Altitude",
    LIMIT_POINT: "CurrentLimitPoint",
    OV_RESET: "OverVoltageReset",
    SHORT_RESET: "ShortCircuitReset",
    INPUT_MODE: "InputMode",
}
FLOAT_REGISTERS = frozenset({V_OUT, I_OUT, RATED_W, RATED_A, SET_V, LIMIT_POINT})

# Status register 0x0040, Chart 2 [W:cad/CanPackets.cpp PowerModuleStatus]: bit signal -> fault in words.
# Shared by both directions: the driver names the set bits, the emulated module sets the bits its fault names.
FAULT_BITS: Mapping[str, str] = {
    "ModuleFault": "module fault",
    "ModuleProtection": "module protection",
    "InternalBusFailure": "internal bus failure",
    "InputWiringError": "input wiring error",
    "InputModeMismatch": "input mode mismatch",
    "DcdcOverVoltage": "DC/DC over-voltage",
    "PfcVoltageAbnormal": "PFC voltage abnormal",
    "AcOverVoltage": "AC over-voltage",
    "AcUnderVoltage": "AC under-voltage",
    "CanFailure": "CAN communication failure",
    "CurrentImbalance": "current imbalance",
    "FanFault": "fan fault",
    "DcdcShortCircuit": "output short circuit",
    "DcdcOverTemperature": "DC/DC over-temperature",
    "OutputOverVoltage": "output over-voltage",
}
OFF_BIT = "DcdcOff"  # bit 22: 1 = DC/DC off
DERATE_BITS = ("PowerLimit", "TemperatureDerating", "AcPowerLimit")  # bits 23, 24, 25
DERATE_BIT_SET = "PowerLimit"  # what the emulated module reports while derated (our choice)
STATUS_BITS = (*FAULT_BITS, OFF_BIT, *DERATE_BITS)

# The driver's documented figures before the ratings arrive [W:main/power_supply_DCImpl.cpp], CAN.md 3.
DEFAULT_MAX_V, DEFAULT_MIN_V, DEFAULT_MAX_A = 1000.0, 50.0, 133.3


def can_id(source: int, destination: int, group: int, point_to_point: bool) -> int:
    """The 29-bit ID [W:cad/CanPackets.cpp encode_can_id]."""
    return PROTNO << 20 | int(point_to_point) << 19 | (destination & 0xFF) << 11 | (source & 0xFF) << 3 | (group & 0x7)


@dataclass(frozen=True, slots=True)
class WinlineId:
    """The fields of a received 29-bit ID."""

    protno: int
    point_to_point: bool
    destination: int
    source: int
    group: int

    @classmethod
    def parse(cls, arbitration_id: int) -> WinlineId:
        return cls(
            protno=arbitration_id >> 20 & 0x1FF,
            point_to_point=bool(arbitration_id >> 19 & 1),
            destination=arbitration_id >> 11 & 0xFF,
            source=arbitration_id >> 3 & 0xFF,
            group=arbitration_id & 0x7,
        )


def _ours(message: can.Message) -> WinlineId | None:
    """The ID fields of a well-formed Winline frame (extended, 8 bytes, PROTNO 0x060); None otherwise."""
    if not message.is_extended_id or message.is_remote_frame or len(message.data) != 8:
        return None
    ident = WinlineId.parse(message.arbitration_id)
    return ident if ident.protno == PROTNO else None


def _numbers(definition: DbcMessage, message: can.Message) -> dict[str, float] | None:
    """The raw-scaled signal values of a payload; None for a register the database does not know."""
    try:
        decoded = memo.decode(definition, message.data, choices=False)
    except (DecodeError, TypeError):
        return None
    return {name: value for name, value in decoded.items() if isinstance(value, int | float)}


def _frame(arbitration_id: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=arbitration_id, is_extended_id=True, data=data)


def _value_signals(register: int, value: float) -> dict[str, float]:
    """The muxed signals of `register` carrying `value` (reads carry zero)."""
    if register == STATUS:
        return dict.fromkeys(STATUS_BITS, 0)
    if register == GROUP_INFO:
        return {"GroupNumber": 0, "DipAddress": 0}
    return {SIGNAL[register]: value}


def _serial(high: int, low: int) -> str:
    """The serial as the EVerest driver prints it [W:cad/CanPackets.cpp ReadSerialNumber]."""
    return f"SN_{high:08x}{low:08x}"


def _serial_words(serial: str) -> tuple[int, int]:
    """(high, low) registers for an emulated module's serial: "SN_" + 16 hex digits round-trips, other text is
    packed as up to 8 ASCII bytes (our choice)."""
    digits = serial.removeprefix("SN_")
    try:
        value = int(digits, 16) if len(digits) <= 16 else -1
    except ValueError:
        value = -1
    if value < 0:
        value = int.from_bytes(serial.encode("ascii", "replace")[:8].ljust(8, b"\0"), "big")
    return value >> 32, value & 0xFFFFFFFF


@dataclass
class _Partial:
    """Halves of what the driver learns in two frames (ratings, serial)."""

    rated_w: float | None = None
    rated_a: float | None = None
    serial_low: int | None = None
    serial_high: int | None = None


@dataclass
class WinlineDriver:
    """The controller's side (EVerest `Winline` behaviour): reads, setpoints, decoding of module replies."""

    db: Database
    controller: int = CONTROLLER_ADDRESS
    group: int = 0
    _partial: dict[int, _Partial] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._request: DbcMessage = self.db.get_message_by_name("WL_Request")
        self._reply: DbcMessage = self.db.get_message_by_name("WL_Reply")

    def _send(self, address: int, function: int, register: int, value: float = 0) -> can.Message:
        data = memo.encode(
            self._request, {"Function": function, "Register": register, **_value_signals(register, value)}
        )
        return _frame(can_id(self.controller, address, self.group, point_to_point=True), data)

    def discovery(self) -> list[can.Message]:
        """Read the group/DIP register from the group broadcast address [W:cad/WinlineCanDevice.cpp
        discover_group_modules]: ID 0x0607F780 + group."""
        data = memo.encode(self._request, {"Function": READ, "Register": GROUP_INFO, **_value_signals(GROUP_INFO, 0)})
        return [_frame(can_id(self.controller, GROUP_BROADCAST, self.group, point_to_point=False), data)]

    def poll(self, address: int, rating_known: bool) -> list[can.Message]:
        """V, I and status every cycle; rated W/A and the serial while the rating is unknown
        [W:cad/WinlineCanDevice.cpp poll_status_handler]."""
        registers = [V_OUT, I_OUT, STATUS]
        if not rating_known:
            registers += [RATED_W, RATED_A, SERIAL_LOW, SERIAL_HIGH]
        return [self._send(address, READ, register) for register in registers]

    def command(self, address: int, command: ModuleCommand, previous: ModuleCommand | None) -> list[can.Message]:
        """0x0021 V (float), 0x001B I (A x 1024), 0x0030 on/off; only what changed when `previous` is known.
        Switching off goes first, switching on last."""
        if command.direction is not Direction.EXPORT:
            raise ValueError("Winline modules are not bidirectional")
        frames: list[can.Message] = []
        switch = previous is None or previous.on != command.on
        if switch and not command.on:
            frames.append(self._send(address, SET, POWER, POWER_OFF))
        if previous is None or previous.voltage_v != command.voltage_v:
            frames.append(self._send(address, SET, SET_V, command.voltage_v))
        if previous is None or previous.current_a != command.current_a:
            frames.append(self._send(address, SET, SET_I, command.current_a))
        if switch and command.on:
            frames.append(self._send(address, SET, POWER, POWER_ON))
        return frames

    def decode(self, message: can.Message) -> ModuleReport | None:
        ident = _ours(message)
        if ident is None or ident.destination != self.controller or ident.source > 0x3F:
            return None
        signals = _numbers(self._reply, message)
        if signals is None:  # an unknown register: not an answer we understand
            return None
        address, register = ident.source, int(signals["Register"])
        name = SIGNAL.get(register, "Status" if register == STATUS else "GroupInfo")
        if int(signals["ErrorCode"]) != NORMAL:
            code = int(signals["ErrorCode"])
            return ModuleReport(address, refused=f"register 0x{register:04X} ({name}) error code 0x{code:02X}")
        if int(signals["DataType"]) != (FLOAT if register in FLOAT_REGISTERS else INTEGER):
            return None
        return self._report(address, register, signals)

    def _report(self, address: int, register: int, signals: Mapping[str, float]) -> ModuleReport | None:
        value = signals.get(SIGNAL.get(register, ""), 0.0)
        if register == V_OUT:
            return ModuleReport(address, voltage_v=float(value))
        if register == I_OUT:
            return ModuleReport(address, current_a=float(value))
        if register == STATUS:
            return ModuleReport(address, status=status_from_bits(signals))
        if register == GROUP_INFO:
            # a module of our group answering the discovery query: its address is the news
            return ModuleReport(address) if signals["GroupNumber"] == self.group else None
        if register in (RATED_W, RATED_A, SERIAL_LOW, SERIAL_HIGH):
            return self._halves(address, register, value)
        return ModuleReport(address, acknowledged=SIGNAL[register])

    def _halves(self, address: int, register: int, value: float) -> ModuleReport:
        part = self._partial.setdefault(address, _Partial())
        if register == RATED_W:
            part.rated_w = float(value)
        elif register == RATED_A:
            part.rated_a = float(value)
        elif register == SERIAL_LOW:
            part.serial_low = int(value)
        else:
            part.serial_high = int(value)
        rating = None
        if part.rated_w is not None and part.rated_a is not None:
            rating = ModuleRating(DEFAULT_MAX_V, DEFAULT_MIN_V, part.rated_a, part.rated_w)
        serial = None
        if part.serial_low is not None and part.serial_high is not None:
            serial = _serial(part.serial_high, part.serial_low)
        return ModuleReport(address, rating=rating, serial=serial)


def status_from_bits(signals: Mapping[str, float]) -> ModuleStatus:
    """Status register bits -> ModuleStatus: bit 22 off, the fault bits named, bits 23-25 derated."""
    faults = [words for bit, words in FAULT_BITS.items() if signals.get(bit)]
    return ModuleStatus(
        off=bool(signals.get(OFF_BIT)),
        fault=", ".join(faults) or None,
        derated=any(signals.get(bit) for bit in DERATE_BITS),
    )


def bits_from_status(status: ModuleStatus) -> dict[str, int]:
    """ModuleStatus -> status register bits; a fault phrase not in the table sets bit 0 (module fault)."""
    bits = dict.fromkeys(STATUS_BITS, 0)
    bits[OFF_BIT] = int(status.off)
    bits[DERATE_BIT_SET] = int(status.derated)
    by_words = {words: bit for bit, words in FAULT_BITS.items()}
    for phrase in (status.fault or "").split(", "):
        if phrase:
            bits[by_words.get(phrase, "ModuleFault")] = 1
    return bits


@dataclass
class WinlineModules:
    """The modules' side: applies sets to the emulated modules and answers reads."""

    db: Database

    def __post_init__(self) -> None:
        self._request: DbcMessage = self.db.get_message_by_name("WL_Request")
        self._reply: DbcMessage = self.db.get_message_by_name("WL_Reply")

    def answer(self, message: can.Message, modules: Sequence[EmulatedModule], now: float) -> list[can.Message]:
        ident = _ours(message)
        if ident is None:
            return []
        signals = _numbers(self._request, message)
        if signals is None:  # an unknown register: the module stays silent (our choice)
            return []
        function, register = int(signals["Function"]), int(signals["Register"])
        replies = []
        if ident.destination in (BROADCAST, GROUP_BROADCAST):
            candidates: Sequence[EmulatedModule] = modules
        else:
            one = module_at(modules, ident.destination)
            candidates = [] if one is None else [one]
        for module in candidates:
            if not (module.alive and _addressed(ident, module)):
                continue
            module.last_heard_s = now
            if function == SET:
                reply = self._set(module, register, signals)
            elif function == READ:
                reply = self._read(module, register)
            else:
                reply = None
            if reply is not None:
                replies.append(_frame(can_id(module.address, ident.source, module.group, point_to_point=True), reply))
        return replies

    def _encode(self, register: int, error: int, values: Mapping[str, float]) -> bytes:
        data_type = FLOAT if register in FLOAT_REGISTERS else INTEGER
        return memo.encode(self._reply, {"DataType": data_type, "ErrorCode": error, "Register": register, **values})

    def _set(self, module: EmulatedModule, register: int, signals: Mapping[str, float]) -> bytes | None:
        name = SIGNAL.get(register)
        if name is None:
            return None
        value = signals[name]
        refusal: str | None = None
        if register == SET_V:
            refusal = module.set_voltage(float(value))
        elif register == SET_I:
            refusal = module.set_current(float(value))
        elif register == POWER:
            refusal = module.switch(int(value) == POWER_ON) if int(value) in (POWER_ON, POWER_OFF) else "bad value"
        elif register in (OV_RESET, SHORT_RESET):
            if int(value) == RESET:
                module.reset()
        elif register in (ALTITUDE, LIMIT_POINT, INPUT_MODE):
            module.settings[name] = float(value)
        else:
            return None  # a read-only register
        return self._encode(register, NORMAL if refusal is None else SET_FAILED, {name: value})

    def _read(self, module: EmulatedModule, register: int) -> bytes | None:
        values: dict[str, float]
        if register == STATUS:
            values = dict(bits_from_status(module.status()))
        elif register == GROUP_INFO:
            values = {"GroupNumber": module.group, "DipAddress": module.address}
        elif register in (SERIAL_LOW, SERIAL_HIGH):
            high, low = _serial_words(module.serial)
            values = {SIGNAL[register]: high if register == SERIAL_HIGH else low}
        elif register in _READINGS:
            values = {SIGNAL[register]: _READINGS[register](module)}
        else:
            return None
        return self._encode(register, NORMAL, values)


_READINGS = {
    V_OUT: lambda m: m.output_v,
    I_OUT: lambda m: abs(m.output_a),
    RATED_W: lambda m: m.rating.rated_power_w,
    RATED_A: lambda m: m.rating.max_current_a,
    SET_V: lambda m: m.voltage_v,
    SET_I: lambda m: m.current_a,
    POWER: lambda m: POWER_ON if m.on else POWER_OFF,
}


def _addressed(ident: WinlineId, module: EmulatedModule) -> bool:
    """Point-to-point to its address, the group broadcast of its group, or the broadcast."""
    if ident.destination == BROADCAST:
        return True
    if ident.destination == GROUP_BROADCAST:
        return ident.group == module.group
    return ident.destination == module.address


FAMILY = Family(
    name="winline",
    title="Winline NXR/UXR (protocol V1.50)",
    dbc="winline_v150.dbc",
    bitrate=125_000,  # [W:README.md], [W:winlineprotocol.txt]
    poll_interval_s=1.0,  # [W:cad/CanBus.cpp]
    drop_after_s=15.0,  # device_connection_timeout_s [W:manifest.yaml]
    module_silence_off_s=10.0,  # unknown in the sources (CAN.md 6): our choice, as Infy V1.13's 10 s
    # 40 kW / 1000 V as the family's modules; 50 V and 133.3 A are the driver's documented defaults before the
    # ratings arrive [W:main/power_supply_DCImpl.cpp] (CAN.md 3)
    rating=ModuleRating(max_voltage_v=1000.0, min_voltage_v=50.0, max_current_a=133.3, rated_power_w=40_000.0),
    driver=WinlineDriver,
    module=WinlineModules,
    sources=(
        "EVerest/everest-core modules/HardwareDrivers/PowerSupplies/Winline @23c9dac",
        "Winline Module Communication Protocol V1.50 (Winline/winlineprotocol.txt)",
    ),
)

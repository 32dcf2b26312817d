"""`mcs-v2g plant`: a charger's power electronics behind a real CAN protocol, for a charger in another process.

    mcs-v2g plant --can udp_multicast:default --family infypower --modules 20
    mcs-v2g plant --list-families

The rack of emulated modules answers the family's protocol, our I/O board the contactor, IMD and meter frames;
the physics is the mock plant's, with a truck's pack at the far end of the cable (its contactors close onto a
pre-charged output and open with the charger's). Runs in real time until Ctrl-C or `--duration`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from ev_emulator.battery import TruckBattery
from evse_emulator.hal import ContactorState, ImdStatus
from evse_emulator.hal.can.family import family, family_names
from evse_emulator.hal.can.plant import FAULT_NAMES, PER_MODULE, CanPlant, Fault
from evse_emulator.hal.can.port import BusSpec, CanBusError, open_bus, open_log
from stack.clock import RealClock

from .common import CliError
from .outputs import can_log_output

STATUS_EVERY_S = 1.0


class BenchVehicle:
    """A truck's pack (the `TruckBattery`, the plant's vehicle) whose contactors close onto a pre-charged,
    energised output and open with the charger's: the vehicle of a plant whose truck software runs elsewhere."""

    def __init__(self, battery: TruckBattery) -> None:
        self.battery = battery

    def follow(self, plant: CanPlant) -> None:
        physics, contactors = plant.physics, self.battery.contactors
        conducting = physics.contactors.state() in (ContactorState.CLOSED, ContactorState.WELDED)
        if not conducting and contactors.is_closed():
            contactors.open(plant.clock.now())
        elif conducting and not contactors.is_closed() and physics.power_stage.enabled and self._checked(plant):
            contactors.close(physics.terminal.voltage_v, self.battery.open_circuit_voltage())

    @staticmethod
    def _checked(plant: CanPlant) -> bool:
        """The cable check is over (the IMD monitors): the output now heads for the pack's voltage (pre-charge);
        before, the test voltage only passes through it."""
        return plant.physics.imd.status() is ImdStatus.OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plant",
        help="emulated power modules and I/O board on a CAN bus (a charger's bench)",
        description="The mock plant's physics behind a power-module family's CAN protocol and our I/O board, in real "
        "time, for a charger in another process (mcs-v2g evse --hal can:FAMILY --can INTERFACE:CHANNEL).",
    )
    p.add_argument("--list-families", action="store_true", help="print the module families, one a line, and exit")
    p.add_argument(
        "--can", metavar="INTERFACE:CHANNEL", help="e.g. virtual:mcs0, udp_multicast:default, socketcan:vcan0"
    )
    p.add_argument("--family", help="the module family (see --list-families)")
    p.add_argument("--modules", type=int, default=20, help="modules in the rack (default 20)")
    p.add_argument("--series", type=int, default=1, help="modules in series in a string (2 reach 1 250 V)")
    p.add_argument("--soc", type=float, default=0.25, help="the pack's state of charge at the start (0..1)")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME@SECONDS",
        help=f"inject a fault (repeatable): NAME@SECONDS, or NAME:MODULE@SECONDS for {' and '.join(sorted(PER_MODULE))}"
        f" (addresses from 0); names: {', '.join(FAULT_NAMES)}",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--can-log", type=Path, help="record the bus (.log candump, .asc, .blf)")
    p.add_argument("--json", action="store_true", help="print the summary at the end as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list_families:
        print("\n".join(family_names()))
        return 0
    if not args.can or not args.family:
        raise CliError("plant needs --can INTERFACE:CHANNEL and --family NAME (or --list-families)")
    try:
        spec = BusSpec.parse(args.can)
        faults = [Fault.parse(text) for text in args.fault]
    except ValueError as exc:
        raise CliError(str(exc)) from None
    module_family = family(args.family)
    if not 1 <= args.series <= 4 or args.modules < 1 or args.modules % args.series:
        raise CliError(f"--modules ({args.modules}) must be a positive multiple of --series (1..4, got {args.series})")
    lost = [f"{f.name}:{f.module}" for f in faults if f.name in PER_MODULE and f.module >= args.modules]
    if lost:
        raise CliError(f"--fault {', '.join(lost)}: the rack has modules 0..{args.modules - 1}")
    if not 0.0 <= args.soc <= 1.0:
        raise CliError(f"--soc must be between 0 and 1, got {args.soc}")
    if args.duration is not None and not args.duration > 0:
        raise CliError(f"--duration must be positive, got {args.duration}")
    if args.can_log:
        can_log_output(args.can_log)
    clock = RealClock()
    battery = TruckBattery(soc=args.soc)
    battery.contactors.max_cycles = 1_000_000  # a bench pack is not worn out by a day of tests
    vehicle = BenchVehicle(battery)
    bus = open_bus(spec, module_family.bitrate)
    try:
        log_to = open_log(args.can_log) if args.can_log else None
    except CanBusError:
        bus.shutdown()
        raise
    plant = CanPlant(
        module_family, bus, clock, modules=args.modules, series=args.series, vehicle=battery, log_to=log_to
    )
    print(
        f"plant: {args.modules} x {module_family.title} on {spec} ({module_family.bitrate // 1000} kbit/s)",
        file=sys.stderr,
        flush=True,
    )
    try:
        asyncio.run(_serve(plant, vehicle, faults, args.duration, show=not args.json))
    except KeyboardInterrupt:  # Ctrl-C is how a plant without --duration stops: the summary still follows
        pass
    finally:
        plant.close()
    summary = _summary(plant, vehicle)
    print(json.dumps(summary) if args.json else _report(summary))
    return 0


async def _serve(
    plant: CanPlant, vehicle: BenchVehicle, faults: list[Fault], duration: float | None, show: bool
) -> None:
    plant.started_s = plant.clock.now()
    work = [asyncio.ensure_future(plant.run()), asyncio.ensure_future(plant.inject_on_schedule(faults))]
    try:
        end = None if duration is None else plant.started_s + duration
        shown = 0.0
        while end is None or plant.clock.now() < end:
            await asyncio.sleep(0.01)
            vehicle.follow(plant)
            if show and plant.clock.now() - shown >= STATUS_EVERY_S:
                shown = plant.clock.now()
                _status_line(plant)
    finally:
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        if show:
            print(file=sys.stderr)


def _status_line(plant: CanPlant) -> None:
    t = plant.physics.terminal
    on = sum(1 for m in plant.rack.modules if m.on)
    line = (
        f"\r{t.time_s - plant.started_s:7.0f} s  {t.voltage_v:6.1f} V {t.current_a:7.1f} A  "
        f"modules on {on}/{len(plant.rack.modules)}  contactors {plant.physics.contactors.state().value:7s}"
    )
    print(line, end="", file=sys.stderr, flush=True)


def _summary(plant: CanPlant, vehicle: BenchVehicle) -> dict[str, Any]:
    meter = plant.physics.meter.read()
    return {
        "family": plant.family.name,
        "modules": len(plant.rack.modules),
        "frames_sent": plant.port.sent,
        "frames_received": plant.port.received,
        "energy_imported_kwh": round(meter.imported_wh / 1000, 4),
        "energy_exported_kwh": round(meter.exported_wh / 1000, 4),
        "pack_soc": round(vehicle.battery.soc * 100, 2),
        "faults": [f"{f.kind}: {f.detail}" for f in plant.physics.hal().faults()],
        "events": [f"{t - plant.started_s:.3f} s {text}" for t, text in sorted(plant.events + plant.rack.events)],
    }


def _report(s: dict[str, Any]) -> str:
    lines = [
        f"frames            {s['frames_received']} received, {s['frames_sent']} sent",
        f"energy            {s['energy_imported_kwh']:.3f} kWh to the pack, {s['energy_exported_kwh']:.3f} kWh back",
        f"pack              {s['pack_soc']:.2f} % SoC",
    ]
    lines += [f"fault             {f}" for f in s["faults"]]
    lines += [f"event             {e}" for e in s["events"]]
    return "\n".join(lines)

"""`python -m tools.bench can`: the CAN layer's figures per module family.

- bus load at 125/250/500 kbit/s for the MCS module counts (750 kW and 3.75 MW at the family's module rating),
  every frame of a poll cycle counted by calling the family's codecs, plus our I/O board's periodic frames;
- setpoint-to-current latency through the bus, in simulated time (a `CanPlant` and the `can` driver on one
  python-can `virtual` channel, a truck pack at the far end of the cable);
- frames per second the two codecs handle on this machine, and through a pair of `CanPort`s in real time.

Frame length: a CAN 2.0B data frame with a 29-bit identifier and n data bytes is 67 + 8n bits including the
3-bit interframe space, without stuffing; the worst case adds floor((54 + 8n - 1) / 4) stuff bits (the 54 + 8n
bits from SOF to the CRC are subject to stuffing). Davis, Burns, Bril, Lukkien, "Controller Area Network (CAN)
schedulability analysis: refuted, revisited and revised", Real-Time Systems 35 (2007), section 3.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import can

from ev_emulator.battery import TruckBattery
from evse_emulator.hal import ContactorState, Hal
from evse_emulator.hal.can.driver import make_can_hal
from evse_emulator.hal.can.family import Family, family, family_names
from evse_emulator.hal.can.io_board import (
    COMMAND_PERIOD_S,
    ENERGY_PERIOD_S,
    STATUS_PERIOD_S,
    IoBoardCodec,
    IoBoardDriver,
)
from evse_emulator.hal.can.model import EmulatedModule
from evse_emulator.hal.can.plant import CanPlant
from evse_emulator.hal.can.port import CanPort, open_bus
from evse_emulator.hal.interfaces import ImdStatus
from stack.clock import RealClock, VirtualClock

BITRATES = (125_000, 250_000, 500_000)
MCS_POWERS_W = (750_000.0, 3_750_000.0)
STEP_A = 500.0  # the current step of the latency run
PHASES = 5  # steps per family, spread over one board period
REACHED = 0.9  # the fraction of the step that counts as reached
SAMPLE_S = 0.0001  # simulated time between two looks at the plant and the driver
TIMING_S = 0.5  # wall time per throughput figure
E2E_FRAMES = 20_000  # frames through the port pair
_channels = itertools.count(1)
# modules one bus addresses, per family (/work/shared/CAN.md: Infy V1.13 "up to 60 modules theoretically";
# BEC/BEG destinations 0x00-0x3E, 0x3F is the broadcast; Winline destinations 0x00-0x3F)
ADDRESS_LIMIT = {"infypower": 60, "infypower-beg": 63, "winline": 64}


def frame_bits(data_bytes: int, stuffed: bool) -> int:
    """Bits on the wire of an extended data frame (interframe space included), worst-case stuffing or none."""
    bits = 67 + 8 * data_bytes
    return bits + (54 + 8 * data_bytes - 1) // 4 if stuffed else bits


def _modules(fam: Family, count: int) -> list[EmulatedModule]:
    return [EmulatedModule(a, fam.rating, serial=f"BENCH{a:05d}") for a in range(count)]


# -- a) bus load --


def _board_frames_per_s() -> list[tuple[float, can.Message]]:
    """Our I/O board's periodic frames: (per second, a sample frame), built with the board's codec."""
    codec = IoBoardCodec()
    command = IoBoardDriver(lambda frames: None, lambda: 0.0, mcs=True).heartbeat()
    status = codec.status_frames(ContactorState.OPEN, None, ImdStatus.IDLE, None, False, None)
    return [
        (1 / COMMAND_PERIOD_S, command),
        (1 / STATUS_PERIOD_S, status),
        (1 / STATUS_PERIOD_S, codec.meter_frame(0.0, 0.0)),
        (1 / ENERGY_PERIOD_S, codec.energy_frame(0.0, 0.0)),
    ]


def poll_cycle(fam: Family, count: int) -> tuple[list[can.Message], list[can.Message]]:
    """The controller's frames of one steady poll cycle (discovery and every module's reads, ratings known)
    and the modules' replies to them, from the family's codecs."""
    db = fam.database()
    driver, answer = fam.driver(db), fam.module(db)
    modules = _modules(fam, count)
    sent = driver.discovery() + [f for a in range(count) for f in driver.poll(a, True)]
    replies = [r for frame in sent for r in answer.answer(frame, modules, 0.0)]
    return sent, replies


def bus_load(fam: Family, power_w: float) -> dict[str, Any]:
    """The load of the busiest bus (the one with the I/O board) when the modules for `power_w` are split evenly
    over as few buses as their addresses allow."""
    count = math.ceil(power_w / fam.rating.rated_power_w)
    buses = math.ceil(count / ADDRESS_LIMIT.get(fam.name, count))
    per_bus = math.ceil(count / buses)
    sent, replies = poll_cycle(fam, per_bus)
    per_s = 1 / fam.poll_interval_s
    board = _board_frames_per_s()
    frames_s = (len(sent) + len(replies)) * per_s + sum(rate for rate, _ in board)
    loads: dict[str, dict[str, float]] = {}
    for stuffed in (False, True):
        bits_s = sum(frame_bits(len(f.data), stuffed) * per_s for f in sent + replies)
        bits_s += sum(frame_bits(len(f.data), stuffed) * rate for rate, f in board)
        key = "worst_stuffing" if stuffed else "no_stuffing"
        loads[key] = {f"{rate // 1000}k": round(100 * bits_s / rate, 2) for rate in BITRATES}
        loads[key]["bits_per_s"] = round(bits_s)
    return {
        "power_kw": power_w / 1000,
        "modules": count,
        "buses": buses,
        "modules_per_bus": per_bus,
        "poll_interval_s": fam.poll_interval_s,
        "driver_frames_per_cycle": len(sent),
        "module_frames_per_cycle": len(replies),
        "board_frames_per_s": round(sum(rate for rate, _ in board), 1),
        "frames_per_s": round(frames_s, 1),
        "load_percent": loads,
    }


# -- b) latency in simulated time --


async def _until(clock: VirtualClock, done: Callable[[], bool], limit_s: float, what: str) -> float:
    end = clock.now() + limit_s
    while not done():
        if clock.now() > end:
            raise TimeoutError(f"{what} not within {limit_s} s of simulated time")
        await clock.sleep_until(clock.now() + SAMPLE_S)
    return clock.now()


async def _step_response(fam: Family, modules: int, clock: VirtualClock, phase_s: float) -> dict[str, Any]:
    """One step, `phase_s` after a whole number of board periods and poll cycles from the start."""
    channel = f"virtual:bench-can-{os.getpid()}-{next(_channels)}"
    battery = TruckBattery(soc=0.5)
    plant = CanPlant(fam, open_bus(channel), clock, modules=modules, vehicle=battery)
    hal: Hal = make_can_hal(fam.name, clock, bus=open_bus(channel))
    tap = open_bus(channel)  # a listener of our own: counts the frames one call sends
    stage, physics = hal.power_stage, plant.physics
    if hal.service is None:
        raise RuntimeError("the can HAL has no service")
    work = [asyncio.ensure_future(plant.run()), asyncio.ensure_future(hal.service())]
    try:
        start = clock.now()
        found = await _until(clock, lambda: _rated_current(hal) > 0, 30, "discovery")
        hal.contactors.close()
        await _until(clock, lambda: hal.contactors.state() is ContactorState.CLOSED, 10, "contactors closed")
        pack_v = battery.open_circuit_voltage()
        stage.enable(None)
        stage.set_limits(pack_v, 0.0, fam.rating.rated_power_w * modules)
        await _until(clock, lambda: abs(physics.terminal.voltage_v - pack_v) < 5.0, 10, "pre-charge")
        battery.contactors.close(physics.terminal.voltage_v, pack_v)
        # settle for a poll cycle and more, then step on a whole second from the start (every period's start) + phase
        await clock.sleep_until(start + math.ceil(clock.now() - start + 2.0) + phase_s)
        target = STEP_A * REACHED
        _drain(tap)
        t0 = clock.now()
        stage.set_limits(pack_v + 50.0, STEP_A, fam.rating.rated_power_w * modules)
        burst = _drain(tap)  # the virtual bus delivers inside `send`: these are the step's commands

        def commanded() -> bool:
            return sum(m.current_a for m in plant.rack.modules if m.on) >= STEP_A * 0.999

        def flowing() -> bool:
            physics.sync()
            return physics.terminal.current_a >= target

        t_cmd = await _until(clock, commanded, 10, "module setpoints")
        t_phys = await _until(clock, flowing, 30, "plant current")
        t_present = await _until(clock, lambda: stage.present().current_a >= target, 30, "present()")
        from_modules = getattr(stage, "from_modules", stage.present)  # the modules' own readings, polled
        t_modules = await _until(clock, lambda: from_modules().current_a >= target, 30, "the modules' readings")
        return {
            "modules": modules,
            "discovery_s": round(found - start, 3),
            "setpoints_at_modules_s": round(t_cmd - t0, 4),
            "plant_current_90_s": round(t_phys - t0, 4),
            "present_90_s": round(t_present - t0, 4),
            "present_lag_s": round(t_present - t_phys, 4),
            "modules_report_90_s": round(t_modules - t0, 4),
            "command_frames": burst,
            "command_wire_s": round(burst * frame_bits(8, stuffed=True) / fam.bitrate, 4),
            "current_ramp_a_per_second": physics.config.current_ramp_a_per_s,
            "pack_v": round(pack_v, 1),
        }
    finally:
        for task in work:
            task.cancel()
        await asyncio.gather(*work, return_exceptions=True)
        plant.close()
        tap.shutdown()


def _drain(bus: can.BusABC) -> int:
    """Frames waiting on `bus`, thrown away: how many."""
    count = 0
    while bus.recv(0) is not None:
        count += 1
    return count


def _rated_current(hal: Hal) -> float:
    capability = hal.power_stage.capability()
    return 0.0 if capability is None else capability.max_current_a


def latency(fam: Family) -> dict[str, Any]:
    """The step at `PHASES` phases, spread over both the poll cycle and the board's period (the driver's two
    readings sample the rise): the figures' min, mean and max."""
    modules = math.ceil(MCS_POWERS_W[0] / fam.rating.rated_power_w)
    runs = []
    for k in range(PHASES):
        clock = VirtualClock(speed=None)
        try:
            phase_s = k * (fam.poll_interval_s + STATUS_PERIOD_S) / PHASES
            runs.append(clock.run(_step_response(fam, modules, clock, phase_s)))
        except (TimeoutError, RuntimeError) as exc:
            return {"modules": modules, "error": str(exc)}
    figures = {k: [run[k] for run in runs] for k in runs[0] if k.endswith("_s")}
    spread = {k: {"min": min(v), "mean": round(sum(v) / len(v), 4), "max": max(v)} for k, v in figures.items()}
    return {"modules": modules, "runs": len(runs), **{k: v for k, v in runs[0].items() if k not in figures}, **spread}


# -- c) throughput in real time --


def _rate(work: Callable[[], int]) -> float:
    """Items per wall second of `work` (it returns how many it handled), repeated for `TIMING_S`."""
    done, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < TIMING_S:
        done += work()
    return done / elapsed


def throughput(fam: Family) -> dict[str, Any]:
    count = math.ceil(MCS_POWERS_W[0] / fam.rating.rated_power_w)
    db = fam.database()
    driver, answer = fam.driver(db), fam.module(db)
    modules = _modules(fam, count)
    sent, replies = poll_cycle(fam, count)

    def decode() -> int:
        for frame in replies:
            driver.decode(frame)
        return len(replies)

    def answer_all() -> int:
        for frame in sent:
            answer.answer(frame, modules, 0.0)
        return len(sent)

    return {
        "modules": count,
        "driver_decode_frames_per_s": round(_rate(decode)),
        "module_answer_frames_per_s": round(_rate(answer_all)),
        "port_pair_frames_per_s": round(asyncio.run(_port_pair(driver, replies))),
    }


async def _port_pair(driver: Any, replies: Sequence[can.Message]) -> float:
    """Replies sent through one `CanPort` and decoded by the driver codec behind another, on a virtual channel."""
    channel = f"virtual:bench-can-e2e-{os.getpid()}-{next(_channels)}"
    clock = RealClock()
    received = 0

    def handler(frame: can.Message) -> None:
        nonlocal received
        driver.decode(frame)
        received += 1

    sender = CanPort(open_bus(channel), clock, lambda _: None)
    receiver = CanPort(open_bus(channel), clock, handler)
    task = asyncio.ensure_future(receiver.run())
    await asyncio.sleep(0)
    frames = [can.Message(arbitration_id=f.arbitration_id, is_extended_id=True, data=f.data) for f in replies]
    began = time.perf_counter()
    try:
        while sender.sent < E2E_FRAMES:
            sender.send(frames)
            await asyncio.sleep(0)
        while received < sender.sent:
            await asyncio.sleep(0)
        return received / (time.perf_counter() - began)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sender.close()
        receiver.close()


# -- the run --


def run(families: Sequence[str] | None = None) -> dict[str, Any]:
    names = list(families or family_names())
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "frame_bits_8_bytes": {"no_stuffing": frame_bits(8, False), "worst_stuffing": frame_bits(8, True)},
        "families": {},
    }
    for name in names:
        fam = family(name)
        results["families"][name] = {
            "title": fam.title,
            "bitrate": fam.bitrate,
            "module_kw": fam.rating.rated_power_w / 1000,
            "bus_load": [bus_load(fam, p) for p in MCS_POWERS_W],
            "latency": latency(fam),
            "throughput": throughput(fam),
        }
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _spread(figure: dict[str, float]) -> str:
    return f"{figure['mean']:6.4f} ({figure['min']:.3f}..{figure['max']:.3f})"


def _ramp(r: dict[str, Any]) -> float:
    return next((f["latency"].get("current_ramp_a_per_second", 0.0) for f in r["families"].values()), 0.0)


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    bits = r["frame_bits_8_bytes"]
    lines = [
        f"machine: Python {m['python']}, {m['cpus']} CPUs, load average {m['loadavg_before']} -> {m['loadavg_after']}",
        f"extended data frame, 8 bytes: {bits['no_stuffing']} bits without stuffing, "
        f"{bits['worst_stuffing']} with worst-case stuffing (67 + 8n + floor((54 + 8n - 1) / 4), Davis et al. 2007)",
        "",
        "a) bus load, % (no stuffing / worst-case stuffing) of the busiest bus: module reads + replies per poll cycle"
        " + the I/O board; modules split over buses when one bus cannot address them all",
        f"{'family':14s} {'kW':>6s} {'mod':>4s} {'buses':>5s} {'poll s':>6s} {'ctl/cyc':>7s} {'mod/cyc':>7s} "
        f"{'frames/s':>8s}" + "".join(f" {k // 1000:>9d}k" for k in BITRATES),
    ]
    for name, f in r["families"].items():
        for load in f["bus_load"]:
            plain, worst = load["load_percent"]["no_stuffing"], load["load_percent"]["worst_stuffing"]
            cells = "".join(f" {plain[f'{k // 1000}k']:4.1f}/{worst[f'{k // 1000}k']:5.1f}" for k in BITRATES)
            lines.append(
                f"{name:14s} {load['power_kw']:6.0f} {load['modules']:4d} {load['buses']:5d} "
                f"{load['poll_interval_s']:6.2f} "
                f"{load['driver_frames_per_cycle']:7d} {load['module_frames_per_cycle']:7d} "
                f"{load['frames_per_s']:8.1f}{cells}"
            )
    lines += [
        "",
        f"b) {STEP_A:.0f} A step in simulated time, seconds after set_limits, mean (min..max) of {PHASES} phases",
        "   of the poll cycle and the board period. python-can's virtual bus delivers at once: 'wire' is the",
        "   command burst at the family's bitrate, worst-case stuffing. 'plant': the physics (its current ramp);",
        "   'present': the driver's reading (the board's IO_Meter); 'modules': the modules' own, polled readings",
        f"{'family':14s} {'mod':>4s} {'frames':>6s} {'wire':>7s} {'setpoints':>9s} {'plant 90%':>10s} "
        f"{'present 90%':>20s} {'present lag':>20s} {'modules 90%':>20s}",
    ]
    for name, f in r["families"].items():
        lat = f["latency"]
        if "error" in lat:
            lines.append(f"{name:14s} {lat['modules']:4d} error: {lat['error']}")
            continue
        lines.append(
            f"{name:14s} {lat['modules']:4d} {lat['command_frames']:6d} {lat['command_wire_s']['mean']:7.4f} "
            f"{lat['setpoints_at_modules_s']['max']:9.4f} {lat['plant_current_90_s']['mean']:10.4f} "
            f"{_spread(lat['present_90_s'])} {_spread(lat['present_lag_s'])} {_spread(lat['modules_report_90_s'])}"
        )
    lines.append(
        f"   (plant current ramp {STEP_A:.0f} A at {_ramp(r):.0f} A/s; setpoints: the max, sampled every "
        f"{SAMPLE_S * 1000:g} ms)"
    )
    lines += [
        "",
        "c) frames/s on this machine (real time): the driver codec's decode of the modules' replies, the module",
        "   codec's answer to the driver's reads, replies through a pair of CanPorts on a virtual channel",
    ]
    lines.append(f"{'family':14s} {'decode':>10s} {'answer':>10s} {'port pair':>10s}")
    for name, f in r["families"].items():
        t = f["throughput"]
        lines.append(
            f"{name:14s} {t['driver_decode_frames_per_s']:10d} {t['module_answer_frames_per_s']:10d} "
            f"{t['port_pair_frames_per_s']:10d}"
        )
    return "\n".join(lines)

"""A whole session across three processes and a real CAN transport: `mcs-v2g plant` (the emulated modules and
I/O board), `mcs-v2g evse --hal can:infypower` (the charger driving them over the bus) and `mcs-v2g ev`.

The bus is python-can's `udp_multicast` (any Linux with a multicast route) or SocketCAN `vcan` (a kernel with the
vcan module, and root to add the interface). Each command runs in its own process, as a bench runs them."""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from evse_emulator.hal.can.family import family
from evse_emulator.hal.can.io_board import ENERGY_PERIOD_S
from tests.prerequisites import require

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "mcs_v2g"]
FAMILY = "infypower"
MODULES = 4
PLANT_S = 30.0  # the plant's --duration: outlives the session (about 11 s: cable check, pre-charge, 20 loops)
SOC = "0.30"  # the plant's pack and the truck's model of it start alike: its pre-charge target is the plant's pack
CHARGE_LOOPS = 20
# The charger's meter is the board's IO_Energy, sent every ENERGY_PERIOD_S (1 s) with 0.1 Wh resolution: at the
# end it can lag the plant's own meter by at most one period of flow at the rack's rated power (4 x 40 kW x 1 s
# = 44.4 Wh), plus the frame's and the JSON's rounding (0.1 Wh, 0.05 Wh). Seen: 0.2037 against 0.2156 kWh.
METER_TOLERANCE_KWH = MODULES * family(FAMILY).rating.rated_power_w * ENERGY_PERIOD_S / 3.6e6 + 0.0002
_groups = itertools.count(1)


def multicast_group() -> str:
    """An IPv4 group of our own for each test (organisation-local scope), apart from other runs' by the pid."""
    pid = os.getpid()
    return f"239.{(pid >> 8) & 0xFF}.{pid & 0xFF}.{next(_groups)}"


def udp_multicast_missing(group: str) -> str | None:
    """None when a frame sent to `group` comes back to a second bus of this host; else why not."""
    from evse_emulator.hal.can.port import CanBusError, open_bus

    if importlib.util.find_spec("msgpack") is None:  # python-can's udp_multicast encodes frames with it
        return "python-can's udp_multicast needs msgpack (pip install 'python-can[multicast]')"
    try:
        sender, receiver = open_bus(f"udp_multicast:{group}"), open_bus(f"udp_multicast:{group}")
    except CanBusError as exc:
        return str(exc)
    try:
        sender.send(can.Message(arbitration_id=0x18F00100, is_extended_id=True, data=bytes(8)))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if receiver.recv(0.2) is not None:
                return None
        return f"a frame sent to {group} did not come back (no multicast route or loopback)"
    except (OSError, can.CanError) as exc:
        return f"cannot send to {group}: {exc}"
    finally:
        sender.shutdown()
        receiver.shutdown()


@pytest.fixture
def vcan() -> Iterator[str]:
    """A SocketCAN vcan interface of our own, up; removed afterwards."""
    name = f"vcmcs{os.getpid() % 100_000}"
    if os.geteuid() != 0:
        require("vcan", "adding a vcan interface needs root")
    if shutil.which("ip") is None:
        require("vcan", "iproute2's `ip` is not on PATH")
    added = subprocess.run(["ip", "link", "add", "dev", name, "type", "vcan"], capture_output=True, text=True)
    if added.returncode != 0:
        require("vcan", f"`ip link add dev {name} type vcan`: {added.stderr.strip() or added.returncode}")
    try:
        subprocess.run(["ip", "link", "set", "up", name], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", "dev", name], capture_output=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, process: subprocess.Popen) -> None:
    """Without connecting (every connection is a session the charger judges): the port is taken once it listens."""
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"the charger exited with {process.returncode} before listening")
        with socket.socket(socket.AF_INET6) as probe:
            try:
                probe.bind(("::1", port))
            except OSError:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on [::1]:{port}")


def one_json(text: str, who: str) -> dict:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"{who}: expected one JSON line, got {text!r}"
    return json.loads(lines[0])


def session_over(bus: str, tmp_path: Path) -> tuple[dict, dict, dict]:
    """Plant, charger and truck over `bus`; their JSON summaries (exit statuses checked)."""
    port = free_port()
    logs = {name: (tmp_path / f"{name}.err").open("w") for name in ("plant", "evse")}
    plant = subprocess.Popen(
        [*COMMAND, "plant", "--can", bus, "--family", FAMILY, "--modules", str(MODULES)]
        + ["--soc", SOC, "--duration", str(PLANT_S), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=logs["plant"],
        text=True,
    )
    evse = subprocess.Popen(
        [*COMMAND, "evse", "--listen", f"[::1]:{port}", "--no-tls", "--hal", f"can:{FAMILY}", "--can", bus]
        + ["--sessions", "1", "--json", "-q"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=logs["evse"],
        text=True,
    )
    try:
        wait_until_listening(port, evse)
        ev = subprocess.run(
            [*COMMAND, "ev", "--connect", f"[::1]:{port}", "--no-tls", "--json", "-q"]
            + ["--soc", SOC, "--charge-loops", str(CHARGE_LOOPS), "--loop-interval", "0.25"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=PLANT_S + 5,
        )
        evse_out, _ = evse.communicate(timeout=15)
        plant_out, _ = plant.communicate(timeout=PLANT_S + 15)
    finally:
        for process in (evse, plant):
            process.kill()
            process.wait()
        for log in logs.values():
            log.close()
    errors = {name: (tmp_path / f"{name}.err").read_text() for name in logs}
    for who, text in (("ev", ev.stderr), *errors.items()):
        assert "Traceback" not in text, f"{who}: {text}"
    outputs = f"ev: {ev.stdout}{ev.stderr[-2000:]}\nevse: {evse_out}\nplant: {plant_out}{errors['plant'][-2000:]}"
    assert (ev.returncode, evse.returncode, plant.returncode) == (0, 0, 0), outputs
    return one_json(ev.stdout, "ev"), one_json(evse_out, "evse"), one_json(plant_out, "plant")


def check_session(ev: dict, charger: dict, plant: dict) -> None:
    assert ev["result"] == "ok" and ev["charge_loops"] == CHARGE_LOOPS, ev
    assert charger["result"] == "ok", charger
    assert plant["family"] == FAMILY and plant["modules"] == MODULES
    assert plant["frames_received"] > 0 and plant["faults"] == [], plant
    assert plant["energy_imported_kwh"] > 0, plant
    assert charger["meter_imported_kwh"] == pytest.approx(plant["energy_imported_kwh"], abs=METER_TOLERANCE_KWH), (
        charger,
        plant,
    )


def test_session_across_processes_over_udp_multicast(tmp_path: Path) -> None:
    group = multicast_group()
    require("udp-multicast", udp_multicast_missing(group))
    check_session(*session_over(f"udp_multicast:{group}", tmp_path))


def test_session_across_processes_over_vcan(vcan: str, tmp_path: Path) -> None:
    check_session(*session_over(f"socketcan:{vcan}", tmp_path))

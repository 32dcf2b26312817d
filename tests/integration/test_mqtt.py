"""The depot's MQTT side against a real Mosquitto: telemetry out, setpoints in (checked and clamped), bad
payloads ignored, the last will, a broker restart survived with nothing lost, the setpoint watchdog."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import socket
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evse_emulator.energy.mqtt import PASSWORD_ENV, BrokerAddress, MqttLink, redacted
from evse_emulator.energy.topics import (
    OFFLINE,
    ONLINE,
    GridLimit,
    Rejected,
    Setpoint,
    SetpointWatchdog,
    Telemetry,
    Topics,
    parse_grid_limit,
    parse_record,
    parse_setpoint,
)
from mcs_v2g.depot.mqtt_node import probe
from tests.mosquitto import Broker, mosquitto_binary
from tests.prerequisites import require

REPO = Path(__file__).resolve().parents[2]
TOPICS = Topics("yard")
WAIT_S = 10.0  # a generous bound for a local broker; no test asserts how fast it is


class Inbox:
    """What a subscriber received, with a way to wait for the n-th message on a topic."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self._changed.set()

    async def wait_for(self, topic: str, count: int = 1) -> list[bytes]:
        async with asyncio.timeout(WAIT_S):
            while len(found := [p for t, p in self.messages if t == topic]) < count:
                self._changed.clear()
                await self._changed.wait()
        return found


async def started(link: MqttLink, inbox: Inbox) -> asyncio.Task[None]:
    task = asyncio.create_task(link.run(inbox))
    async with asyncio.timeout(WAIT_S):
        await link.connected.wait()
    return task


async def stopped(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_telemetry_goes_out_and_setpoints_come_in(broker: Broker) -> None:
    async def main() -> None:
        charger_box, ems_box = Inbox(), Inbox()
        charger = MqttLink(broker.url, TOPICS, "mcs1", subscribe=[TOPICS.setpoint("mcs1")])
        ems = MqttLink(broker.url, TOPICS, "ems", subscribe=[TOPICS.telemetry("+")])
        tasks = [await started(ems, ems_box), await started(charger, charger_box)]
        sample = Telemetry(60.0, 812.4, 923.1, 750.0, 0.412, "charging", "1A2B")
        charger.publish(TOPICS.telemetry("mcs1"), sample.payload())
        (received,) = await ems_box.wait_for(TOPICS.telemetry("mcs1"))
        assert json.loads(received) == {
            "t_s": 60.0, "voltage_v": 812.4, "current_a": 923.1, "power_kw": 750.0,
            "soc": 0.412, "state": "charging", "session_id": "1A2B", "truck": None, "ev_max_charge_w": 0.0,
            "ev_max_discharge_w": 0.0, "energy_to_target_wh": None, "energy_to_full_wh": None, "cycles_used": 0,
        }  # fmt: skip
        assert parse_record(Telemetry, received) == sample
        ems.publish(TOPICS.setpoint("mcs1"), json.dumps({"t_s": 60, "power_w": -400_000}).encode())
        (payload,) = await charger_box.wait_for(TOPICS.setpoint("mcs1"))
        assert parse_setpoint(payload, 1e6, 1e6, 120) == Setpoint(60.0, -400_000.0, 120.0)
        await stopped(*tasks)

    asyncio.run(main())


CRASHING_NODE = """
import asyncio, sys
from evse_emulator.energy.mqtt import MqttLink
from evse_emulator.energy.topics import Topics

async def main():
    link = MqttLink(sys.argv[1], Topics("yard"), "mcs1")
    task = asyncio.create_task(link.run(lambda topic, payload: None))
    await link.connected.wait()
    print("connected", flush=True)
    await task

asyncio.run(main())
"""


def test_a_lost_node_is_announced_offline_by_its_last_will(broker: Broker) -> None:
    """A charger process killed outright (no DISCONNECT): the broker publishes its will, status "offline"."""

    async def main() -> None:
        watcher_box = Inbox()
        watcher = MqttLink(broker.url, TOPICS, "ems", subscribe=[TOPICS.status("+")])
        task = await started(watcher, watcher_box)
        node = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CRASHING_NODE, broker.url, stdout=asyncio.subprocess.PIPE, cwd=REPO
        )
        assert node.stdout is not None
        async with asyncio.timeout(WAIT_S):
            assert await node.stdout.readline() == b"connected\n"
        assert (await watcher_box.wait_for(TOPICS.status("mcs1")))[-1] == ONLINE.encode()
        node.kill()
        await node.wait()
        statuses = await watcher_box.wait_for(TOPICS.status("mcs1"), count=2)
        assert statuses[-1] == OFFLINE.encode()
        await stopped(task)

    asyncio.run(main())


def test_a_broker_restart_is_survived_and_nothing_published_meanwhile_is_dropped_by_the_link(broker: Broker) -> None:
    """The link keeps what is published while the broker is away and sends it after the reconnect, in order.
    Whether the broker hands a message to a subscriber that has not re-subscribed yet is the broker's business
    (it may not: a race between the two reconnects); the depot's lockstep re-publishes a step until it is
    answered, so its report loses nothing (tests/integration/test_depot_mqtt.py)."""

    async def main() -> None:
        ems_box = Inbox()
        ems = MqttLink(broker.url, TOPICS, "ems", subscribe=[TOPICS.telemetry("+")])
        charger = MqttLink(broker.url, TOPICS, "mcs1")
        tasks = [await started(ems, ems_box), await started(charger, Inbox())]
        charger.publish(TOPICS.telemetry("mcs1"), b'{"n": 0}')
        await ems_box.wait_for(TOPICS.telemetry("mcs1"))
        broker.stop()
        async with asyncio.timeout(WAIT_S):
            while charger.connected.is_set() or ems.connected.is_set():
                await asyncio.sleep(0.05)
        for n in range(1, 6):  # published while the broker is away: queued
            charger.publish(TOPICS.telemetry("mcs1"), json.dumps({"n": n}).encode())
        broker.start()
        async with asyncio.timeout(WAIT_S):
            while not (charger.connected.is_set() and ems.connected.is_set() and charger.pending == 0):
                await asyncio.sleep(0.05)
        assert charger.connections >= 2 and ems.connections >= 2 and charger.dropped == 0  # all sent
        charger.publish(TOPICS.telemetry("mcs1"), b'{"n": 6}')  # both back: it arrives
        async with asyncio.timeout(WAIT_S):
            while not any(json.loads(p)["n"] == 6 for _, p in ems_box.messages):
                await asyncio.sleep(0.05)
        numbers = [json.loads(p)["n"] for _, p in ems_box.messages]
        assert numbers == sorted(set(numbers)) and numbers[0] == 0 and numbers[-1] == 6  # in order, once each
        await stopped(*tasks)

    asyncio.run(main())


def test_a_new_run_gets_nothing_an_earlier_run_of_the_same_node_left_queued(broker: Broker) -> None:
    """The EMS of a run that has ended leaves a session at the broker; what is published for it afterwards (the
    telemetry of a straggling node) must not reach the next run's EMS as if it were its own."""

    async def main() -> None:
        earlier = MqttLink(broker.url, TOPICS, "ems", subscribe=[TOPICS.telemetry("+")])
        await stopped(await started(earlier, Inbox()))
        charger = MqttLink(broker.url, TOPICS, "mcs1")
        task = await started(charger, Inbox())
        charger.publish(TOPICS.telemetry("mcs1"), b'{"run": "earlier"}')
        async with asyncio.timeout(WAIT_S):
            while charger.pending:
                await asyncio.sleep(0.02)
        box = Inbox()
        later = MqttLink(broker.url, TOPICS, "ems", subscribe=[TOPICS.telemetry("+")])
        tasks = [task, await started(later, box)]
        charger.publish(TOPICS.telemetry("mcs1"), b'{"run": "this"}')
        assert [json.loads(p)["run"] for p in await box.wait_for(TOPICS.telemetry("mcs1"))] == ["this"]
        await stopped(*tasks)

    asyncio.run(main())


def test_two_sites_on_one_broker_keep_their_own_sessions(broker: Broker) -> None:
    """Each site's EMS (the same node name) stays connected and hears its own site only."""

    async def main() -> None:
        boxes = {site: Inbox() for site in ("north", "south")}
        links = {
            site: MqttLink(broker.url, Topics(site), "ems", subscribe=[Topics(site).telemetry("+")]) for site in boxes
        }
        tasks = [await started(links[site], boxes[site]) for site in boxes]
        for site in boxes:
            links[site].publish(Topics(site).telemetry("mcs1"), json.dumps({"site": site}).encode())
        for site, box in boxes.items():
            assert [json.loads(p)["site"] for p in await box.wait_for(Topics(site).telemetry("mcs1"))] == [site]
        await asyncio.sleep(0.5)  # a broker that took them for one client would have dropped one by now
        assert all(link.connected.is_set() and link.connections == 1 for link in links.values())
        await stopped(*tasks)

    asyncio.run(main())


def test_a_node_that_stops_cleanly_leaves_its_status_offline(broker: Broker) -> None:
    async def main() -> None:
        node = MqttLink(broker.url, TOPICS, "mcs1")
        await stopped(await started(node, Inbox()))
        box = Inbox()  # a dashboard that subscribes afterwards gets the retained status
        watcher = MqttLink(broker.url, TOPICS, "dashboard", subscribe=[TOPICS.status("mcs1")])
        task = await started(watcher, box)
        assert (await box.wait_for(TOPICS.status("mcs1")))[-1] == OFFLINE.encode()
        await stopped(task)

    asyncio.run(main())


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xff\xfe", "not JSON: not UTF-8 text (byte 0xff at 0)"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"t_s": 1}', "missing 'power_w'"),
        (b'{"t_s": 1, "power_w": "max"}', "'power_w' must be a finite number"),
        (b'{"t_s": 1, "power_w": true}', "'power_w' must be a finite number"),
        (b'{"t_s": 1, "power_w": 5, "valid_for_s": 0}', "'valid_for_s' must be positive"),
    ],
)
def test_a_bad_setpoint_is_rejected_with_its_reason(payload: bytes, why: str) -> None:
    rejected = parse_setpoint(payload, 1e6, 0.0, 120.0)
    assert isinstance(rejected, Rejected) and why in rejected.reason


def test_an_out_of_range_setpoint_is_clamped_and_says_so() -> None:
    one_way = parse_setpoint(b'{"t_s": 5, "power_w": -300000}', 1e6, 0.0, 120.0)
    assert isinstance(one_way, Setpoint) and one_way.power_w == 0.0 and "clamped" in (one_way.clamped or "")
    too_much = parse_setpoint(b'{"t_s": 5, "power_w": 5e6}', 1e6, 1e6, 120.0)
    assert isinstance(too_much, Setpoint) and too_much.power_w == 1e6


def test_grid_limits_are_checked() -> None:
    assert parse_grid_limit(b'{"t_s": 0, "import_w": 1.2e6, "export_w": 8e5}') == GridLimit(0.0, 1.2e6, 8e5)
    assert isinstance(parse_grid_limit(b'{"t_s": 0, "import_w": -1, "export_w": 0}'), Rejected)
    with_bom = b'\xef\xbb\xbf{"t_s": 0, "import_w": 1.2e6, "export_w": 8e5}'  # a Windows tool's UTF-8
    assert parse_grid_limit(with_bom) == GridLimit(0.0, 1.2e6, 8e5)


def test_the_watchdog_falls_back_to_the_safe_share_when_setpoints_stop_and_says_so() -> None:
    watchdog = SetpointWatchdog(safe_w=100_000.0)
    assert watchdog.power(0.0) == (100_000.0, True)  # nothing heard yet
    watchdog.update(Setpoint(0.0, 600_000.0, 30.0), now=10.0)
    assert watchdog.power(39.0) == (600_000.0, False)
    assert watchdog.power(41.0) == (100_000.0, True) and watchdog.fallbacks == 1
    watchdog.update(Setpoint(41.0, 500_000.0, 30.0), now=41.5)
    assert watchdog.power(42.0) == (500_000.0, False)


def test_a_site_name_is_one_topic_level_and_charger_topics_are_read_back() -> None:
    with pytest.raises(ValueError, match="one MQTT topic level"):
        Topics("a/b")
    assert TOPICS.charger_of(TOPICS.setpoint("mcs3")) == "mcs3"
    assert TOPICS.charger_of("depot/other/charger/mcs3/setpoint") is None
    with pytest.raises(ValueError, match=r"mqtt://\[USER:PASSWORD@\]HOST"):
        BrokerAddress.parse("tcp://x")


def test_a_broker_url_may_log_in_and_its_password_is_never_shown() -> None:
    address = BrokerAddress.parse("mqtt://node%2F1:p%40ss:word@broker.local:8883")
    assert (address.host, address.port, address.username, address.password) == (
        "broker.local", 8883, "node/1", "p@ss:word",
    )  # fmt: skip
    assert "p@ss" not in repr(address)
    assert redacted("mqtt://node:s3cret@127.0.0.1:1") == "mqtt://node:***@127.0.0.1:1"
    assert redacted("mqtt://127.0.0.1:1") == "mqtt://127.0.0.1:1"
    assert redacted("mqtt://node@127.0.0.1:1") == "mqtt://node@127.0.0.1:1"
    for typed in (
        "mqtt://node:p@ss@host",
        "mqtt://node:pa/ss@host",
        "mqtt:node:s3cret@host",
        "mqtt://node:s3cret@[::1",
    ):
        with pytest.raises(ValueError) as bad:  # a password written raw, a '//' forgotten, a bad host: refused
            BrokerAddress.parse(typed)
        assert "ss" not in str(bad.value).replace("pass", "") and "s3cret" not in str(bad.value), bad.value
        assert "node:***@" in str(bad.value)


def test_a_password_kept_off_the_command_line_comes_from_the_environment() -> None:
    env = {PASSWORD_ENV: "s3cret"}
    assert BrokerAddress.parse("mqtt://mcs1@broker", env).password == "s3cret"
    assert BrokerAddress.parse("mqtt://mcs1:given@broker", env).password == "given"  # the URL's wins
    assert BrokerAddress.parse("mqtt://broker", env).password is None  # no user: no login at all


def test_a_link_stopped_while_it_connects_leaves_no_socket_and_no_error_behind() -> None:
    """A listener that takes the TCP connection and never answers: the link is cancelled inside aiomqtt's
    connect, where nothing else closes its socket (an unclosed socket, then a callback error on a dead loop)."""
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            link = MqttLink(f"mqtt://127.0.0.1:{silent.getsockname()[1]}", TOPICS, "mcs1")
            task = asyncio.create_task(link.run(Inbox()))
            await asyncio.sleep(0.3)
            await stopped(task)
            assert not link.connected.is_set()
        await asyncio.sleep(0.1)  # what a left-open socket would still deliver to the loop

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(main())
        gc.collect()
    assert [w.message for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert errors == []


def test_a_broker_with_passwords_takes_the_right_login_and_refuses_others(tmp_path: Path) -> None:
    binary = mosquitto_binary()
    require("mosquitto", None if binary else "no mosquitto on PATH (apt-get install mosquitto)")
    require("mosquitto", None if shutil.which("mosquitto_passwd") else "no mosquitto_passwd (package mosquitto)")
    assert binary is not None
    broker = Broker(binary, tmp_path, users={"mcs1": "s3cret"})
    broker.start()
    try:
        good = f"mqtt://mcs1:s3cret@127.0.0.1:{broker.port}"
        probe(good)
        for bad in (f"mqtt://mcs1:wrong@127.0.0.1:{broker.port}", broker.url):
            with pytest.raises(ConnectionError, match="refused the connection: .*Not authorized") as refused:
                probe(bad)
            assert "wrong" not in str(refused.value) and "s3cret" not in str(refused.value)

        async def main() -> None:  # a link logged in publishes and receives
            box = Inbox()
            link = MqttLink(good, TOPICS, "mcs1", subscribe=[TOPICS.setpoint("mcs1")])
            task = await started(link, box)
            link.publish(TOPICS.setpoint("mcs1"), Setpoint(0.0, 1000.0, 30.0).payload())
            await box.wait_for(TOPICS.setpoint("mcs1"))
            await stopped(task)

        asyncio.run(main())
    finally:
        broker.stop()


@pytest.mark.parametrize(
    "extra",
    [
        '"profile": "max"',
        '"profile": [[60, 1000]], "price_levels": 1',
        '"profile": [[0, 1000, 0]], "price_levels": 1',
        '"profile": [[60, 1000, 3]], "price_levels": 2',
        '"profile": [[60, "x", 0]], "price_levels": 1',
        '"price_levels": -1',
        '"price_levels": true',
        '"paused": "yes"',
        '"truck": 7',
        '"fcr_w": -5',
        '"fcr_down_w": -5',
        '"fcr_down_w": "all"',
        '"deadband_hz": 0.5',
        '"fcr_w": 5, "fcr_up_w": -1',
        '"fcr_w": 5, "fcr_up_w": "room"',
    ],
)
def test_a_bad_setpoint_extra_is_rejected_not_raised(extra: str) -> None:
    payload = ('{"t_s": 1, "power_w": 5, ' + extra + "}").encode()
    assert isinstance(parse_setpoint(payload, 1e6, 1e6, 120.0), Rejected)


def test_the_fcr_shares_are_read_and_clamped_to_the_rating() -> None:
    sp = parse_setpoint(b'{"t_s": 1, "power_w": 5, "fcr_w": 2e5, "fcr_down_w": 3e6, "deadband_hz": 0.01}', 1e6, 0, 60)
    assert isinstance(sp, Setpoint) and (sp.fcr_w, sp.fcr_down_w, sp.deadband_hz) == (2e5, 1e6, 0.01)
    assert sp.clamped == "fcr_down_w 3000000 W clamped to 1000000 W"
    assert parse_setpoint(sp.payload(), 1e6, 0, 60) == replace(sp, clamped=None)  # the payload reads back
    assert sp.fcr_up_w is None  # absent: the whole share
    capped = parse_setpoint(b'{"t_s": 1, "power_w": 5, "fcr_w": 2e5, "fcr_up_w": 3e5}', 1e6, 0, 60)
    assert isinstance(capped, Setpoint) and capped.fcr_up_w == 2e5  # never above the share
    assert parse_setpoint(capped.payload(), 1e6, 0, 60) == capped


def test_a_profile_is_read_and_clamped_to_the_ratings() -> None:
    payload = b'{"t_s": 1, "power_w": 5, "profile": [[60, 2e6, 1], [30, -2e6, 0]], "price_levels": 2}'
    sp = parse_setpoint(payload, 1e6, 5e5, 120.0)
    assert not isinstance(sp, Rejected)
    assert sp.profile == ((60.0, 1e6, 1), (30.0, -5e5, 0)) and sp.price_levels == 2

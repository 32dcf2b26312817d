"""The depot split over MQTT against a real Mosquitto (issue 12, item 2): two depot node processes, one charger
each, and the site EMS steer the small depot to the same report as one process; a grid-limit change makes the EMS
re-plan; bad payloads are ignored; a node whose EMS is silent falls back to the safe share; a broker restart loses
no report data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from pathlib import Path

import pytest

from evse_emulator.energy.mqtt import MqttLink
from evse_emulator.energy.topics import Topics
from mcs_v2g.depot.mqtt_ems import serve_ems
from mcs_v2g.depot.progress import goal_line
from mcs_v2g.depot.report import DepotReport
from mcs_v2g.depot.run import LocalBackend, local_ems, run_depot
from mcs_v2g.depot.scenario import DepotScenario, load
from tests.mosquitto import Broker

REPO = Path(__file__).resolve().parents[2]
SMALL = REPO / "tests" / "data" / "depot_small.toml"
SITE = "yard"
TOPICS = Topics(SITE)
RUN_S = 240.0  # a generous bound for a whole split run on a slow CI machine; no test asserts how fast it is
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def scenario() -> DepotScenario:
    return load(SMALL)


@pytest.fixture(scope="module")
def single(scenario: DepotScenario) -> DepotReport:
    return run_depot(scenario).report()


async def node(broker: Broker, *options: str) -> asyncio.subprocess.Process:
    """A depot node process on the broker."""
    command = ["-m", "mcs_v2g", "depot", "--scenario", str(SMALL), "--mqtt", broker.url, "--site", SITE, *options]
    return await asyncio.create_subprocess_exec(
        sys.executable, *command, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    async with asyncio.timeout(RUN_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def publish(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    """Retained messages: whoever subscribes later still gets them (the run's start is not raced)."""
    link = MqttLink(broker.url, TOPICS, "operator")
    task = asyncio.create_task(link.run(lambda topic, payload: None))
    for topic, payload in messages:
        link.publish(topic, payload, retain=True)
    async with asyncio.timeout(10):
        await link.connected.wait()
        while link.pending:
            await asyncio.sleep(0.02)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def split_run(
    broker: Broker, scenario: DepotScenario, backend: LocalBackend, during=None, tell=None
) -> tuple[DepotReport, list[tuple[int, str, str]]]:
    """The EMS here, one node process per charger; `during(backend)` runs alongside (a broker restart)."""
    ems = asyncio.create_task(serve_ems(scenario, broker.url, SITE, backend=backend, node_timeout_s=RUN_S, tell=tell))
    nodes = [await node(broker, "--chargers", c.id) for c in scenario.chargers]
    if during is not None:
        await during(backend)
    async with asyncio.timeout(RUN_S):
        report = await ems
    return report, [await finished(n) for n in nodes]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= max(TOLERANCE * max(abs(a), abs(b)), 1.0)


def assert_same(report: DepotReport, single: DepotReport) -> None:
    assert len(report.steps) == len(single.steps)
    for ours, theirs in zip(report.steps, single.steps, strict=True):
        assert close(ours.grid_w, theirs.grid_w), (ours.t_s, ours.grid_w, theirs.grid_w)
        for cid, step in theirs.chargers.items():
            mine = ours.chargers[cid]
            assert mine.truck == step.truck and close(mine.power_w, step.power_w), (ours.t_s, cid, mine, step)
            assert (mine.soc is None) == (step.soc is None)
            assert mine.soc is None or step.soc is None or abs(mine.soc - step.soc) <= TOLERANCE
    for name in ("total", "import_", "export_revenue", "demand", "unserved", "fcr_penalty"):
        assert close(getattr(report.cost_eur, name), getattr(single.cost_eur, name)), name
    assert [(t.id, t.target_met, t.session_result) for t in report.trucks] == [
        (t.id, t.target_met, t.session_result) for t in single.trucks
    ]


def test_two_nodes_and_the_ems_give_the_single_process_report(
    broker: Broker, scenario: DepotScenario, single: DepotReport
) -> None:
    """Lockstep makes them identical, not just close: each node's clock is held at every step until the EMS's
    setpoints are there, so each charger gets the same setpoints at the same simulated instant as in one process,
    and the EMS sees the same telemetry and records (JSON keeps every float exactly)."""

    async def main() -> None:
        said: list[str | None] = []
        report, nodes = await split_run(
            broker, scenario, local_ems(scenario), tell=lambda *e: said.append(goal_line(*e))
        )
        assert [rc for rc, _, _ in nodes] == [0, 0]
        assert report.result == "ok"
        assert_same(report, single)
        assert "mcs-v2g: goal: at 01:00 truck t4: target 90% cannot be met" in "".join(filter(None, said))
        assert "t1" in nodes[0][1] and "t2" in nodes[1][1]  # each node says how its own trucks' sessions went

    asyncio.run(main())


def test_a_grid_limit_change_makes_the_ems_replan_and_holds_after_it(
    broker: Broker, scenario: DepotScenario, single: DepotReport
) -> None:
    at_s, limit_w = 5_400.0, 600_000.0
    assert max(s.grid_w for s in single.steps if s.t_s >= at_s) > limit_w  # without the change it would not hold

    async def main() -> None:
        change = {"t_s": at_s, "import_w": limit_w, "export_w": 600_000}
        await publish(broker, [(TOPICS.grid_limit, json.dumps(change).encode())])
        backend = local_ems(scenario)
        report, nodes = await split_run(broker, scenario, backend)
        assert [rc for rc, _, _ in nodes] == [0, 0]
        assert any(t == at_s and "grid limit 600" in text for t, text in backend.ems.events)
        after = [s.grid_w for s in report.steps if s.t_s > at_s]
        assert len(report.steps) == len(single.steps) and max(after) <= limit_w
        assert report.grid_import_violation_s == 0

    asyncio.run(main())


def test_bad_payloads_are_logged_and_ignored(
    broker: Broker, scenario: DepotScenario, single: DepotReport, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        await publish(
            broker,
            [
                (TOPICS.setpoint("mcs1"), b"\xff\xfe not json"),
                (TOPICS.setpoint("mcs2"), b'{"t_s": -60, "power_w": 9e9}'),  # clamped (and of no step: unused)
                (TOPICS.grid_limit, b'{"t_s": 0, "import_w": -5, "export_w": 0}'),
                (TOPICS.announce("t9"), b'{"truck": 7}'),
                (TOPICS.telemetry("mcs1"), b"[]"),
            ],
        )
        with caplog.at_level(logging.WARNING, logger="mcs_v2g.depot.ems"):
            report, nodes = await split_run(broker, scenario, local_ems(scenario))
        assert [rc for rc, _, _ in nodes] == [0, 0]
        assert f"{TOPICS.setpoint('mcs1')} ignored: not JSON: not UTF-8 text (byte 0xff at 0)" in nodes[0][2]
        assert f"{TOPICS.setpoint('mcs2')}: power_w 9000000000 W clamped to 750000 W" in nodes[1][2]
        said = caplog.text
        assert "grid/limit ignored" in said and "truck/t9/announce ignored" in said and "mcs1/telemetry ignored" in said
        assert_same(report, single)

    asyncio.run(main())


def test_a_node_whose_ems_is_silent_falls_back_to_the_safe_share_and_finishes(broker: Broker) -> None:
    async def main() -> None:
        alone = await node(broker, "--chargers", "mcs1", "--setpoint-timeout", "0.5")
        rc, out, err = await finished(alone)
        assert "no setpoints from the EMS within 0.5 s" in err and "safe share" in err
        assert err.count("no setpoints from the EMS") == 1  # said once, then the node goes on without waiting
        assert "Traceback" not in err
        assert rc == 0 and "t1" in out and "t4" in out

    asyncio.run(main())


def test_a_broker_restart_mid_run_loses_no_report_data(
    broker: Broker, scenario: DepotScenario, single: DepotReport
) -> None:
    async def restart(backend: LocalBackend) -> None:
        async with asyncio.timeout(RUN_S):
            while len(backend.decisions) < 40:  # mid-run: 40 of 180 steps dispatched
                await asyncio.sleep(0.01)
        broker.stop()
        await asyncio.sleep(1.0)
        broker.start()

    async def main() -> None:
        report, nodes = await split_run(broker, scenario, local_ems(scenario), during=restart)
        assert [rc for rc, _, _ in nodes] == [0, 0]
        assert all("reconnecting" in err for _, _, err in nodes)  # the broker was away for both
        assert len(report.steps) == len(single.steps)
        assert all(t.session_result == "ok" for t in report.trucks)  # every outcome came
        assert_same(report, single)  # lockstep: the restart only delayed the run

    asyncio.run(main())


def test_without_a_broker_the_command_says_so_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from mcs_v2g.cli import main
    from tests.mosquitto import free_port

    url = f"mqtt://127.0.0.1:{free_port()}"
    assert main(["depot", "--scenario", str(SMALL), "--mqtt", url, "--chargers", "mcs1"]) == 2
    assert main(["ems", "--scenario", str(SMALL), "--mqtt", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("cannot reach the MQTT broker" in line for line in err)
    assert main(["depot", "--scenario", str(SMALL), "--chargers", "mcs1"]) == 2  # --chargers needs --mqtt
    with pytest.raises(SystemExit) as refused:
        main(["ems", "--scenario", str(SMALL), "--mqtt", "http://127.0.0.1"])
    assert refused.value.code == 2 and "mqtt://[USER:PASSWORD@]HOST" in capsys.readouterr().err


def test_a_broker_that_never_answers_is_named_with_why() -> None:
    """A port that takes the TCP connection and says nothing: the error says how long it waited, never a bare
    colon; a password in the URL is not repeated."""
    from mcs_v2g.depot.mqtt_node import probe

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"mqtt://mcs1:s3cret@127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ConnectionError) as refused:
            probe(url, timeout_s=0.5)
    message = str(refused.value)
    assert message.endswith(": no answer within 0.5 s") and "s3cret" not in message and "mcs1:***@" in message


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("ems", "--node-timeout", "1e400"),  # infinity: a run that waits forever
        ("ems", "--node-timeout", "1e-9"),
        ("ems", "--node-timeout", "nan"),
        ("depot", "--setpoint-timeout", "inf"),
        ("depot", "--telemetry-every", "1e-9"),  # a tick that never lets the clock move on
    ],
)
def test_a_wait_or_rate_out_of_range_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], command: str, option: str, value: str
) -> None:
    from mcs_v2g.cli import main

    with pytest.raises(SystemExit) as refused:
        main([command, "--scenario", str(SMALL), "--mqtt", "mqtt://127.0.0.1:1", option, value])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and f"argument {option}: must be" in err and "Traceback" not in err


@pytest.mark.parametrize("strict", [False, True])
def test_the_ems_command_gives_its_ems_fcr_strict(monkeypatch: pytest.MonkeyPatch, strict: bool) -> None:
    """`mcs-v2g ems --fcr-strict` steers with an EMS that counts the droop at its room (no broker needed here)."""
    from mcs_v2g.cli import main
    from mcs_v2g.depot import mqtt_ems, mqtt_node

    class Served(Exception):
        pass

    seen = []

    async def serve(*args: object, backend: object = None, **kw: object) -> None:
        seen.append(backend)
        raise Served

    monkeypatch.setattr(mqtt_node, "probe", lambda url: None)
    monkeypatch.setattr(mqtt_ems, "serve_ems", serve)
    with pytest.raises(Served):
        main(["ems", "--scenario", str(SMALL), "--mqtt", "mqtt://127.0.0.1:1", *(["--fcr-strict"] if strict else [])])
    assert [b.ems.fcr_strict for b in seen] == [strict]  # type: ignore[attr-defined]

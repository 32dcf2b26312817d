"""The module stack (the driver's side) against the module codecs directly, without a bus: frames go from the
stack to the emulated modules and their replies back, in the order a bus would deliver them."""

from __future__ import annotations

import pytest

from evse_emulator.hal import FaultKind
from evse_emulator.hal.can.family import Family, family
from evse_emulator.hal.can.model import Direction, EmulatedModule
from evse_emulator.hal.can.stack import ModuleStack


class Loop:
    """A stack wired to `count` emulated modules of its family; time moves only by `advance`."""

    def __init__(self, name: str, count: int = 4, series: int = 1) -> None:
        self.family: Family = family(name)
        self.now = 0.0
        self.codec = self.family.module(self.family.database())
        self.modules = [EmulatedModule(a, self.family.rating, serial=f"T{a}") for a in range(count)]
        self.sent = 0
        self.stack = ModuleStack(self.family, self.send, lambda: self.now, series=series)

    def send(self, frames: list) -> None:
        for frame in frames:
            self.sent += 1
            for reply in self.codec.answer(frame, self.modules, self.now):
                self.stack.on_frame(reply)

    def advance(self, seconds: float) -> None:
        """Poll cycles for `seconds`; the modules report their setpoints as their output."""
        end = self.now + seconds
        while self.now < end:
            for m in self.modules:  # a derating module gives only its share of the power it has left
                given = min(m.current_a, m.available_power_w / m.voltage_v) if m.voltage_v > 0 else m.current_a
                m.output_v, m.output_a = (m.voltage_v, given) if m.on else (0.0, 0.0)
            self.stack.tick()
            self.now += self.family.poll_interval_s


def on(loop: Loop) -> list[EmulatedModule]:
    return [m for m in loop.modules if m.on and m.alive]


@pytest.mark.parametrize("name", ["infypower", "infypower-beg", "winline"])
def test_discovery_finds_every_module_and_the_capability_is_their_sum(name: str) -> None:
    loop = Loop(name, count=5)
    loop.advance(2)
    rating = loop.family.rating
    capability = loop.stack.capability()
    assert sorted(loop.stack.modules) == [0, 1, 2, 3, 4]
    assert capability is not None
    assert capability.max_power_w == pytest.approx(5 * rating.rated_power_w)
    assert capability.max_current_a == pytest.approx(5 * rating.max_current_a)
    assert capability.max_voltage_v == rating.max_voltage_v
    assert (capability.max_discharge_power_w > 0) is rating.bidirectional


@pytest.mark.parametrize("name", ["infypower", "winline"])
def test_the_current_is_shared_evenly_over_the_modules_that_run(name: str) -> None:
    loop = Loop(name, count=6)
    loop.advance(2)
    loop.stack.enable(900.0)
    loop.stack.set_limits(800.0, 240.0, 1e6)
    running = on(loop)
    # 240 A at 800 V: 50 A a module of 40 kW, so 6 run below 90 % of 50 A (no fewer could)
    assert sum(m.current_a for m in running) == pytest.approx(240.0)
    assert len({round(m.current_a, 6) for m in running}) == 1
    assert all(m.voltage_v == pytest.approx(800.0) for m in running)


def test_a_light_load_runs_on_fewer_modules_and_the_count_does_not_chatter() -> None:
    loop = Loop("infypower", count=10)
    loop.advance(2)
    loop.stack.enable(900.0)
    loop.stack.set_limits(800.0, 60.0, 1e6)
    few = len(on(loop))
    assert 1 <= few <= 3
    for current in (61.0, 59.0, 62.0, 58.0):  # small wiggles keep the same modules on
        loop.stack.set_limits(800.0, current, 1e6)
        assert len(on(loop)) == few
    loop.stack.set_limits(800.0, 450.0, 1e6)
    assert len(on(loop)) >= 10 * 450 / 500


def test_what_a_module_cannot_give_at_the_voltage_goes_to_the_others() -> None:
    loop = Loop("infypower", count=4)
    loop.advance(2)
    loop.stack.enable(1000.0)
    # at 1000 V a 40 kW module gives 40 A: 160 A is the whole stack's at that voltage
    loop.stack.set_limits(1000.0, 200.0, 1e7)
    for m in loop.modules:
        m.output_v = 1000.0
    loop.stack.set_limits(1000.0, 200.0, 1e7)
    assert all(m.current_a <= 40.0 + 1e-9 for m in loop.modules)


def test_a_derating_module_gives_what_it_can_and_the_others_take_the_rest() -> None:
    loop = Loop("infypower", count=4)
    loop.advance(2)
    loop.stack.enable(900.0)
    loop.stack.set_limits(800.0, 160.0, 1e6)  # 40 A each at 800 V: 32 kW of a 40 kW module
    loop.modules[1].derate = 0.5  # 20 kW left: 25 A at 800 V
    loop.advance(2)
    assert any("module 1 derating" in e.text for e in loop.stack.events)
    for _ in range(3):  # charge loop after charge loop: the shares stay put
        loop.stack.set_limits(800.0, 160.0, 1e6)
        loop.advance(1)
        assert loop.modules[1].output_a == pytest.approx(25.0)
        assert sum(m.output_a for m in on(loop)) == pytest.approx(160.0)
    loop.modules[1].derate = 1.0
    loop.advance(2)
    loop.stack.set_limits(800.0, 160.0, 1e6)
    assert [m.current_a for m in loop.modules] == pytest.approx([40.0] * 4)


def test_a_silent_module_is_dropped_and_its_share_goes_to_the_others() -> None:
    loop = Loop("infypower", count=4)
    loop.advance(2)
    loop.stack.enable(900.0)
    loop.stack.set_limits(800.0, 160.0, 1e6)
    loop.modules[2].alive = False
    loop.advance(loop.family.drop_after_s + 2 * loop.family.poll_interval_s)
    assert loop.stack.modules[2].dropped
    assert any("module 2 dropped" in e.text for e in loop.stack.events)
    capability = loop.stack.capability()
    assert capability is not None and capability.max_power_w == pytest.approx(3 * loop.family.rating.rated_power_w)
    loop.stack.set_limits(800.0, 150.0, 1e6)
    assert sum(m.current_a for m in on(loop)) == pytest.approx(150.0)
    assert loop.stack.fault() is None


def test_every_module_silent_is_a_communication_fault() -> None:
    loop = Loop("winline", count=2)
    loop.advance(2)
    for m in loop.modules:
        m.alive = False
    loop.advance(loop.family.drop_after_s + 2)
    fault = loop.stack.fault()
    assert fault is not None and fault.kind is FaultKind.COMMUNICATION_LOST
    assert "no module answered" in fault.detail


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        ("output over-voltage", FaultKind.OVER_VOLTAGE),
        ("output short circuit", FaultKind.OVER_CURRENT),
        ("over-temperature", FaultKind.MODULE_FAULT),
    ],
)
def test_a_fault_on_every_module_latches_the_matching_plant_fault(words: str, kind: FaultKind) -> None:
    loop = Loop("infypower", count=3)
    loop.advance(2)
    loop.stack.enable(900.0)
    loop.stack.set_limits(800.0, 100.0, 1e6)
    loop.modules[0].fault = words
    loop.advance(1)
    assert loop.stack.fault() is None  # one module out: the others carry on
    assert not loop.modules[0].on or loop.stack.modules[0].sent is None or not loop.stack.modules[0].sent.on
    for m in loop.modules:
        m.fault = words
    loop.advance(1)
    fault = loop.stack.fault()
    assert fault is not None and fault.kind is kind and words in fault.detail
    assert not on(loop)


def test_a_bidirectional_stack_switches_off_before_it_turns_the_direction() -> None:
    loop = Loop("infypower-beg", count=2)
    loop.advance(2)
    loop.stack.enable(900.0)
    loop.stack.set_limits(800.0, 40.0, 1e6)
    assert {m.direction for m in on(loop)} == {Direction.EXPORT}
    loop.stack.set_limits(700.0, -40.0, 1e6)  # a module refuses to turn while on: the stack must switch off first
    assert on(loop) and {m.direction for m in on(loop)} == {Direction.IMPORT}
    assert loop.stack.refusals == 0
    assert sum(m.current_a for m in on(loop)) == pytest.approx(40.0)


def test_series_strings_split_the_voltage_and_share_the_current_per_string() -> None:
    loop = Loop("infypower", count=4, series=2)
    loop.advance(2)
    capability = loop.stack.capability()
    assert capability is not None and capability.max_voltage_v == 2 * loop.family.rating.max_voltage_v
    assert capability.max_current_a == pytest.approx(2 * loop.family.rating.max_current_a)
    loop.stack.enable(1250.0)
    loop.stack.set_limits(1200.0, 60.0, 1e6)
    running = on(loop)
    assert all(m.voltage_v == pytest.approx(600.0) for m in running)
    assert len(running) % 2 == 0


def test_an_out_of_range_command_is_refused_and_counted() -> None:
    loop = Loop("winline", count=1)
    loop.advance(2)
    loop.stack.enable(2000.0)
    loop.stack.set_limits(1500.0, 10.0, 1e6)  # above the module's 1000 V
    assert loop.stack.refusals >= 1
    assert any("refused" in e.text for e in loop.stack.events)

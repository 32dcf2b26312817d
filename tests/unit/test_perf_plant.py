"""The mock plant's idle shortcut (a charger at rest only moves its time) gives what the full step gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ev_emulator.battery import TruckBattery
from evse_emulator.hal.mock import MockPlant

# an operation on the charger or the truck, then a step of the plant
operations = st.lists(
    st.tuples(
        st.sampled_from(["none", "enable", "disable", "close", "open", "imd", "imd_stop", "ev_close", "ev_open"]),
        st.floats(0.0, 5.0),  # the step after it, s
        st.floats(0.0, 1200.0),  # a voltage limit
        st.floats(-800.0, 800.0),  # a current limit
    ),
    max_size=60,
)


class FullStep(MockPlant):
    """The plant without its shortcut: every step runs every device."""

    def _at_rest(self) -> bool:
        return False


def state(plant: MockPlant, battery: TruckBattery) -> tuple[object, ...]:
    t, meter = plant.terminal, plant.meter
    return (
        t.time_s,
        t.voltage_v,
        t.current_a,
        plant._reference_v,
        plant._was_enabled,
        plant._was_connected,
        plant._over_voltage_s,
        plant.cable_loss_j,
        meter._imported_j,
        meter._exported_j,
        plant.contactors._state,
        plant.imd._phase,
        plant.imd._status,
        plant.imd._timer,
        plant.power_stage.fault(),
        battery.soc,
        battery.elapsed_s,
        battery.energy_in_wh,
        battery.contactors_closed(),
    )


def act(plant: MockPlant, battery: TruckBattery, kind: str, voltage: float, current: float) -> None:
    stage = plant.power_stage
    if kind == "enable":
        stage.set_limits(voltage, current, 900_000.0)
        stage.enable(1000.0, 1000.0)
    elif kind == "disable":
        stage.set_limits(0.0, 0.0, 0.0)
        stage.disable()
    elif kind == "close":
        plant.contactors.close()
    elif kind == "open":
        plant.contactors.open()
    elif kind == "imd":
        plant.imd.start(voltage)
    elif kind == "imd_stop":
        plant.imd.stop()
    elif kind == "ev_close":
        battery.close_contactors(plant.inlet_voltage())
    elif kind == "ev_open":
        battery.open_contactors(plant.terminal.time_s)


@settings(max_examples=300)
@given(operations)
def test_the_idle_shortcut_changes_nothing(steps: list[tuple[str, float, float, float]]) -> None:
    plants = []
    for kind in (MockPlant, FullStep):
        battery = TruckBattery(soc=0.5)
        plants.append((kind(battery), battery))
    for op, dt, voltage, current in steps:
        for plant, battery in plants:
            act(plant, battery, op, voltage, current)
            plant.step(dt)
        (fast, fast_battery), (full, full_battery) = plants
        assert state(fast, fast_battery) == state(full, full_battery)


def test_an_idle_plant_takes_the_shortcut_and_a_live_one_does_not() -> None:
    plant = MockPlant(TruckBattery())
    plant.step(1.0)
    assert plant._at_rest()
    plant.imd.start(500.0)
    assert not plant._at_rest()
    plant.imd.stop()
    plant.power_stage.set_limits(500.0, 2.0, 1000.0)
    plant.power_stage.enable()
    assert not plant._at_rest()
    plant.step(1.0)
    plant.power_stage.disable()
    plant.step(1.0)
    assert plant.terminal.voltage_v > 0 and not plant._at_rest()  # still discharging

"""The battery's cache of its present state (OCV, resistance, stored energy) gives what the pack computes anew."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ev_emulator.battery import PackSpec, TruckBattery

SMALL = PackSpec().sized(300_000, 400_000, 300_000)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("current"), st.floats(-1500, 1500), st.floats(0, 30)),
        st.tuples(st.just("temperature"), st.floats(-20, 45), st.just(0.0)),
        st.tuples(st.just("soc"), st.floats(0, 1), st.just(0.0)),
        st.tuples(st.just("spec"), st.sampled_from([PackSpec(), SMALL]), st.just(0.0)),
    ),
    max_size=30,
)


def assert_fresh(b: TruckBattery) -> None:
    """Every cached quantity equals the same quantity computed from the state (an explicit SoC bypasses the cache)."""
    soc = b.soc
    assert b.open_circuit_voltage() == b.spec.ocv(soc)
    assert b.internal_resistance() == b.spec.resistance(soc, b.temperature_c)
    assert b.stored_wh() == b.spec.stored_wh(soc)
    assert b.charge_current_limit() == b.charge_current_limit(soc)
    assert b.discharge_current_limit() == b.discharge_current_limit(soc)
    assert b.charge_power_limit() == b.charge_power_limit(soc)
    assert b.discharge_power_limit() == b.discharge_power_limit(soc)
    assert b.energy_to(0.8) == b.spec.stored_wh(0.8) - b.spec.stored_wh(soc)


@given(st.floats(0, 1), operations)
def test_cached_state_follows_every_change(soc: float, steps: list[tuple[str, object, float]]) -> None:
    b = TruckBattery(soc=soc)
    b.contactors.close(b.open_circuit_voltage(), b.open_circuit_voltage())
    assert_fresh(b)
    for kind, value, dt in steps:
        if kind == "current":
            if b.contactors_closed():
                b.apply_current(value, dt)  # type: ignore[arg-type]
        elif kind == "temperature":
            b.temperature_c = value  # type: ignore[assignment]
        elif kind == "soc":
            b.soc = value  # type: ignore[assignment]
        else:
            b.spec = value  # type: ignore[assignment]
        assert_fresh(b)


def test_a_step_charges_what_the_pack_integrates() -> None:
    b = TruckBattery(soc=0.4)
    b.contactors.close(b.open_circuit_voltage(), b.open_circuit_voltage())
    b.stored_wh()  # cache the state before the step
    before = b.spec.stored_wh(0.4)
    r = b.spec.resistance(0.4, 25.0)
    b.apply_current(500.0, 10.0)
    soc1 = 0.4 + 500.0 * 10.0 / (b.spec.capacity_ah * 3600)
    loss = 500.0 * 500.0 * r * 10.0 / 3600
    assert b.soc == soc1
    assert b.energy_in_wh == b.spec.stored_wh(soc1) - before + loss

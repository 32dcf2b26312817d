"""`PowerLimits` <-> the limit elements of the DC messages, one table for all of them.

Every DC message names the same limits the same way: the side (`EV`/`EVSE`), then Maximum/Minimum
ChargePower, ChargeCurrent, DischargePower, DischargeCurrent, Voltage; each message carries a subset. Discharge
limits go out with the sign setting of `units.discharge_out` and are read back as magnitudes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stack.messages import iso20_types as ct

from ..controller import PowerLimits
from ..units import discharge_out, fl, magnitude, rn

# PowerLimits field -> element name after the side's prefix ("ev_" / "evse_")
WIRE = {
    "max_charge_power": "maximum_charge_power",
    "min_charge_power": "minimum_charge_power",
    "max_charge_current": "maximum_charge_current",
    "min_charge_current": "minimum_charge_current",
    "max_voltage": "maximum_voltage",
    "min_voltage": "minimum_voltage",
    "max_discharge_power": "maximum_discharge_power",
    "min_discharge_power": "minimum_discharge_power",
    "max_discharge_current": "maximum_discharge_current",
    "min_discharge_current": "minimum_discharge_current",
}
DISCHARGE = frozenset(name for name in WIRE if "discharge" in name)
CHARGE_PARAMETERS = ("max_charge_power", "min_charge_power", "max_charge_current", "min_charge_current")
VOLTAGES = ("max_voltage", "min_voltage")
DISCHARGE_PARAMETERS = ("max_discharge_power", "min_discharge_power", "max_discharge_current", "min_discharge_current")


# per side: (PowerLimits field, element attribute, is a discharge limit), the names built once
_ELEMENTS = {
    side: tuple((name, f"{side}_{stem}", name in DISCHARGE) for name, stem in WIRE.items()) for side in ("ev", "evse")
}
_ATTRIBUTE = {side: {name: attribute for name, attribute, _ in elements} for side, elements in _ELEMENTS.items()}


def to_wire(side: str, limits: PowerLimits, names: Iterable[str], negative: bool) -> dict[str, ct.RationalNumber]:
    """The elements `names` of `limits` as keyword arguments of a message of `side` ("ev" or "evse")."""
    attributes = _ATTRIBUTE[side]
    out = {}
    for name in names:
        value = getattr(limits, name)
        out[attributes[name]] = discharge_out(value, negative) if name in DISCHARGE else rn(value)
    return out


def from_wire(side: str, element: object) -> PowerLimits:
    """The limits an element carries: absent charge limits read 0, absent discharge limits None (not BPT)."""
    values: dict[str, Any] = {}
    for name, attribute, discharge in _ELEMENTS[side]:
        wire = getattr(element, attribute, None)
        values[name] = magnitude(wire) if discharge else (fl(wire) or 0.0)
    return PowerLimits(**values)

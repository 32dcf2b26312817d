"""SI floats <-> RationalNumbers, and the sign of discharge limits on the wire.

`negative` selects the sign of discharge limits (PROTOCOL.md section 5: EVerest makes it a setting because
cars differ). The default False sends positive magnitudes, as the XSD element names (EVMaximumDischargePower,
...) suggest and as Josev and EVerest's default do. Read values are magnitudes whatever the peer sent.
"""

from __future__ import annotations

import math
from typing import overload

from stack.messages import iso20_types as ct
from stack.messages.rational import from_float, to_float


def rn(value: float) -> ct.RationalNumber:
    return from_float(value)


@overload
def fl(value: ct.RationalNumber) -> float: ...
@overload
def fl(value: ct.RationalNumber | None) -> float | None: ...
def fl(value: ct.RationalNumber | None) -> float | None:
    return None if value is None else to_float(value)


def discharge_out(value: float | None, negative: bool) -> ct.RationalNumber:
    value = value or 0.0
    return rn(-abs(value) if negative else abs(value))


def magnitude(value: ct.RationalNumber | None) -> float | None:
    return None if value is None else abs(to_float(value))


def non_negative(*values: float | None) -> bool:
    """Every given value is a finite number >= 0 (None is absent, not wrong)."""
    return all(v is None or (math.isfinite(v) and v >= 0) for v in values)

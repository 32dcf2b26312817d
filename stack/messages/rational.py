"""RationalNumber (value x 10^exponent, value: short, exponent: byte) to and from float and Decimal."""

from __future__ import annotations

from decimal import Decimal

from .iso20_types import RationalNumber

VALUE_MIN, VALUE_MAX = -32768, 32767
EXPONENT_MIN, EXPONENT_MAX = -128, 127


def to_decimal(r: RationalNumber) -> Decimal:
    return Decimal(r.value).scaleb(r.exponent)


def to_float(r: RationalNumber) -> float:
    return float(to_decimal(r))


def from_decimal(x: Decimal | float | int | str) -> RationalNumber:
    """The closest RationalNumber: the smallest exponent whose value fits a short, trailing zeros removed.

    Precision is four to five significant digits (the value is a 16-bit integer); 750 kW is 75 x 10^4.
    """
    d = Decimal(str(x)) if isinstance(x, float) else Decimal(x)
    if not d.is_finite():
        raise ValueError(f"{x!r} is not a finite number")
    if d == 0:
        return RationalNumber(exponent=0, value=0)
    exponent = max(EXPONENT_MIN, d.adjusted() - 4)
    value = int(d.scaleb(-exponent).to_integral_value())
    while not VALUE_MIN <= value <= VALUE_MAX:
        exponent += 1
        value = int(d.scaleb(-exponent).to_integral_value())
    if exponent > EXPONENT_MAX:
        raise ValueError(f"{x!r} is too large for a RationalNumber")
    if value == 0:
        return RationalNumber(exponent=0, value=0)
    while value % 10 == 0 and exponent < EXPONENT_MAX:
        value //= 10
        exponent += 1
    return RationalNumber(exponent=exponent, value=value)


def from_float(x: float) -> RationalNumber:
    return from_decimal(x)

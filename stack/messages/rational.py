"""RationalNumber (value x 10^exponent, value: short, exponent: byte) to and from float and Decimal."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from .iso20_types import RationalNumber

VALUE_MIN, VALUE_MAX = -32768, 32767
EXPONENT_MIN, EXPONENT_MAX = -128, 127


def to_decimal(r: RationalNumber) -> Decimal:
    return Decimal(r.value).scaleb(r.exponent)


def to_float(r: RationalNumber) -> float:
    """`float(to_decimal(r))` without the Decimal: Python's int-to-float conversion and int/int division both round
    correctly (to the nearest float), as the conversion of a Decimal does."""
    if r.exponent >= 0:
        return float(r.value * 10**r.exponent)
    quotient: float = r.value / 10**-r.exponent
    return quotient


def from_decimal(x: Decimal | float | int | str) -> RationalNumber:
    """The closest RationalNumber: the smallest exponent whose value fits a short, trailing zeros removed.

    Precision is four to five significant digits (the value is a 16-bit integer); 750 kW is 75 x 10^4.
    """
    exponent, value = _fitted(x)
    return RationalNumber(exponent=exponent, value=value)


def from_float(x: float) -> RationalNumber:
    """`from_decimal(x)`; floats go through a cache of their (exponent, value): a session sends the same ratings and
    limits over and over (the result depends on the float's value only, and each call gets a RationalNumber of its
    own, as the message dataclasses are mutable)."""
    exponent, value = _fitted_float(x) if type(x) is float else _fitted(x)
    return RationalNumber(exponent=exponent, value=value)


def _fitted(x: Decimal | float | int | str) -> tuple[int, int]:
    """(exponent, value) of `from_decimal(x)`."""
    d = Decimal(str(x)) if isinstance(x, float) else Decimal(x)
    if not d.is_finite():
        raise ValueError(f"{x!r} is not a finite number")
    if d == 0:
        return 0, 0
    exponent = max(EXPONENT_MIN, d.adjusted() - 4)
    value = int(d.scaleb(-exponent).to_integral_value())
    while not VALUE_MIN <= value <= VALUE_MAX:
        exponent += 1
        value = int(d.scaleb(-exponent).to_integral_value())
    if exponent > EXPONENT_MAX:
        raise ValueError(f"{x!r} is too large for a RationalNumber")
    if value == 0:
        return 0, 0
    while value % 10 == 0 and exponent < EXPONENT_MAX:
        value //= 10
        exponent += 1
    return exponent, value


# 0.0 and -0.0 share an entry (equal keys), which is right: both give 0 x 10^0. A ValueError is never cached.
_fitted_float = lru_cache(maxsize=4096)(_fitted)

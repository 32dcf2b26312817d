"""RationalNumber <-> float/Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stack.messages.iso20_types import RationalNumber
from stack.messages.rational import from_decimal, from_float, to_decimal, to_float


@pytest.mark.parametrize(
    ("value", "exponent", "mantissa"),
    [
        (750_000, 4, 75),
        (1.5, -1, 15),
        (0, 0, 0),
        (-300.25, -2, -30025),
        (3000, 3, 3),
        (32767, 0, 32767),
        (32768, 1, 3277),
    ],
)
def test_known_values(value: float, exponent: int, mantissa: int) -> None:
    assert from_decimal(value) == RationalNumber(exponent=exponent, value=mantissa)


@given(st.integers(min_value=-32768, max_value=32767), st.integers(min_value=-20, max_value=20))
def test_exact_values_round_trip(value: int, exponent: int) -> None:
    r = RationalNumber(exponent=exponent, value=value)
    assert to_decimal(from_decimal(to_decimal(r))) == to_decimal(r)


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_float_precision(x: float) -> None:
    r = from_float(x)
    assert -32768 <= r.value <= 32767 and -128 <= r.exponent <= 127
    assert abs(to_float(r) - x) <= abs(x) * 2e-4 + 1e-120


def test_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        from_decimal(Decimal("NaN"))
    with pytest.raises(ValueError):
        from_float(float("inf"))

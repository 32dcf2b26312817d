"""The fast float <-> RationalNumber paths (a cache, integer arithmetic) give exactly what the Decimal definitions
give."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stack.messages.iso20_types import RationalNumber
from stack.messages.rational import EXPONENT_MAX, EXPONENT_MIN, VALUE_MAX, VALUE_MIN, from_float, to_float


def decimal_from_float(x: float | int) -> RationalNumber:
    """The Decimal definition of `from_float` (the code before its cache)."""
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


def outcome(x: float | int) -> tuple[object, object]:
    """(new, old) results of `x`: a RationalNumber or the ValueError's message."""
    results: list[object] = []
    for f in (from_float, decimal_from_float):
        try:
            results.append(f(x))
        except ValueError as exc:
            results.append(str(exc))
    return results[0], results[1]


@given(st.floats())
@example(32767.5)  # a tie that rounds to even, then overflows the short
@example(-32768.5)
@example(12344.5)
@example(1e-300)  # below the smallest exponent: rounds to zero
@example(3.27675e131)  # too large after rounding
@example(-0.0)
@example(float("nan"))
@example(float("-inf"))
def test_from_float_equals_the_decimal_definition(x: float) -> None:
    new, old = outcome(x)
    assert new == old
    again, _ = outcome(x)  # now from the cache
    assert again == old


@given(st.lists(st.sampled_from([0.0, -0.0, 975.0, 873.6, 100800.00000000001, 1e-5, 1.5]), min_size=1, max_size=50))
def test_cached_results_are_fresh_objects(xs: list[float]) -> None:
    results = [from_float(x) for x in xs]
    assert results == [decimal_from_float(x) for x in xs]
    results[0].value += 1  # a caller changing its message must not change what the next caller gets
    assert from_float(xs[0]) == decimal_from_float(xs[0])


@pytest.mark.parametrize("x", [0, 1, -7, 750_000, 32768, 10**40, True])
def test_non_floats_take_the_decimal_path(x: int) -> None:
    new, old = outcome(x)
    assert new == old


@given(
    st.integers(min_value=VALUE_MIN, max_value=VALUE_MAX),
    st.integers(min_value=EXPONENT_MIN, max_value=EXPONENT_MAX),
)
@example(VALUE_MAX, EXPONENT_MAX)
@example(VALUE_MIN, EXPONENT_MIN)
@example(1, -1)  # 0.1: not a float exactly, rounded to nearest
def test_to_float_equals_the_decimal_definition(value: int, exponent: int) -> None:
    r = RationalNumber(exponent=exponent, value=value)
    assert to_float(r) == float(Decimal(value).scaleb(exponent))

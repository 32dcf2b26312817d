"""The smallest schema-valid instance of a message class: for FAILED responses with only mandatory fields."""

from __future__ import annotations

from typing import Any, TypeVar

from ._schema import FieldSpec, Simple, XsdType

T = TypeVar("T", bound=XsdType)


def minimal(cls: type[T], **overrides: Any) -> T:
    """An instance of `cls` with every required field at its simplest valid value; `overrides` win."""
    kwargs: dict[str, Any] = {}
    chosen_choices: set[int] = set()
    for spec in cls.XSD_FIELDS:
        if spec.name in overrides:
            if spec.choice:
                chosen_choices.add(spec.choice)
            continue
        if spec.choice and spec.choice_required and spec.choice not in chosen_choices:
            if not any(s.name in overrides for s in cls.XSD_FIELDS if s.choice == spec.choice):
                chosen_choices.add(spec.choice)
                kwargs[spec.name] = _value(spec)
            continue
        if spec.min_occurs == 0:
            continue
        value = _value(spec)
        kwargs[spec.name] = [value] * spec.min_occurs if spec.repeated else value
    kwargs.update(overrides)
    return cls(**kwargs)


def _value(spec: FieldSpec) -> Any:
    for _, t in spec.members:
        if isinstance(t, Simple):
            return _simple(t)
        if not t.XSD_ABSTRACT:
            return minimal(t)
    raise ValueError(f"{spec.name}: no concrete member")


def _simple(t: Simple) -> Any:
    if t.kind == "bool":
        return False
    if t.kind == "enum":
        if t.enum is None:
            raise ValueError(f"{t.name}: an enumeration without its class")
        return next(iter(t.enum))
    if t.kind == "string":
        return "x" * (t.min_length or 0) if t.name != "ID" else "id1"
    if t.kind == "binary":
        return bytes(t.min_length or 0)
    lo = t.lo if t.lo is not None else 0
    return max(lo, 0) if t.hi is None or t.hi >= 0 else t.hi

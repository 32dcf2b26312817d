"""Schema metadata attached to the generated message classes (used by the XML view and the tests)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Simple:
    """An XSD simple type: its EXI representation and the limits the schema puts on it."""

    name: str
    kind: str  # nbit | uint | int | bool | enum | string | binary
    lexical: str  # boolean | integer | string | hexBinary | base64Binary
    lo: int | None = None
    hi: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    enum: type[StrEnum] | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a generated class: XML names and types of the elements or attribute that fill it."""

    name: str
    kind: str  # attr | elem | value
    members: tuple[tuple[str, type[XsdType] | Simple], ...]  # (qname, class or Simple) per substitutable element
    min_occurs: int
    max_occurs: int | None  # None = unbounded
    choice: int | None = None  # fields of one xs:choice share this id: at most one is present
    choice_required: bool = False  # exactly one of the choice's fields must be present

    @property
    def repeated(self) -> bool:
        return self.max_occurs is None or self.max_occurs > 1


class XsdType:
    """Base of every generated class: its complex type's metadata, set by the generated module after the
    classes (the field specs name other classes)."""

    __slots__ = ()

    XSD_TYPE: ClassVar[str]  # {namespace}name of the complex type
    XSD_ABSTRACT: ClassVar[bool]
    XSD_FIELDS: ClassVar[tuple[FieldSpec, ...]]  # in schema order

"""Read the XSDs with xmlschema and reduce them to what the EXI generator needs.

The model is deliberately small: complex types become `ComplexType` with ordered `Field`s and the raw
content particle (kept for the grammar builder); simple types become `SimpleType` with the EXI datatype
representation chosen per EXI 1.0 section 7 (n-bit, unsigned, signed, boolean, enumeration, string, binary).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import xmlschema
from xmlschema.validators import (
    XsdAnyElement,
    XsdAtomicBuiltin,
    XsdComplexType,
    XsdElement,
    XsdGroup,
)

from stack import schemas

XSD_DIR = Path(__file__).resolve().parents[2] / "stack" / "exi" / "xsd"
XS = "http://www.w3.org/2001/XMLSchema"

# namespace -> python module name in stack.messages (the schema sets themselves: stack.schemas.SCHEMA_SETS)
NAMESPACE_MODULES: dict[str, str] = {uri: n.module for uri, n in schemas.NAMESPACES.items()}

# value ranges of the built-in integer types (None = unbounded)
_INTEGER_RANGES: dict[str, tuple[int | None, int | None]] = {
    "integer": (None, None),
    "long": (-(2**63), 2**63 - 1),
    "int": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-128, 127),
    "nonNegativeInteger": (0, None),
    "positiveInteger": (1, None),
    "unsignedLong": (0, 2**64 - 1),
    "unsignedInt": (0, 2**32 - 1),
    "unsignedShort": (0, 2**16 - 1),
    "unsignedByte": (0, 255),
    "nonPositiveInteger": (None, 0),
    "negativeInteger": (None, -1),
}
_STRING_PRIMITIVES = {"string", "anyURI"}
_BINARY_PRIMITIVES = {"hexBinary", "base64Binary"}


def local(qname: str) -> str:
    return qname.rsplit("}", 1)[-1]


def uri(qname: str) -> str:
    return qname[1:].split("}", 1)[0] if qname.startswith("{") else ""


def qname_key(qname: str) -> tuple[str, str]:
    """EXI sort order of qnames: local-name first, then uri."""
    return (local(qname), uri(qname))


# words of XSD names: acronyms with a plural s ("IDs"), acronyms before a capitalised word, words, numbers
_WORD = re.compile(r"[A-Z]{2,}s(?![a-z])|[A-Z0-9]+(?=[A-Z][a-z])|[A-Z0-9]?[a-z][a-z0-9]*|[A-Z0-9]+")


def words(name: str) -> list[str]:
    name = name.replace("PnC", "Pnc")  # Plug and Charge is one word
    return [w for part in name.split("_") for w in _WORD.findall(part)]


def snake(name: str) -> str:
    return "_".join(w.lower() for w in words(name))


def pascal(name: str) -> str:
    return "".join(w[0].upper() + w[1:].lower() for w in words(name))


@dataclass
class SimpleType:
    """An XSD simple type with its EXI datatype representation (EXI 1.0 section 7)."""

    key: str  # qname of the type, or a synthetic name for anonymous types
    kind: str  # nbit | uint | int | bool | enum | string | binary
    lexical: str  # XSD primitive used for the XML view: boolean, integer, string, hexBinary, base64Binary
    lo: int | None = None
    hi: int | None = None
    max_length: int | None = None
    min_length: int | None = None
    values: tuple[str, ...] = ()
    enum_class: str | None = None  # python class name for enumerations
    namespace: str = ""

    @property
    def nbits(self) -> int:
        if self.kind == "enum":
            return (len(self.values) - 1).bit_length()
        assert self.lo is not None and self.hi is not None
        return (self.hi - self.lo).bit_length()


@dataclass
class Field:
    """One child of a complex type as the dataclass sees it."""

    name: str  # python attribute name
    kind: str  # attr | elem | value
    qnames: list[str]  # element or attribute qnames that fill this field (substitution group members)
    types: list[ComplexType | SimpleType]  # one per qname
    min_occurs: int
    max_occurs: int | None  # None = unbounded
    order: int = 0
    choice: int | None = None  # fields of one xs:choice share this id: at most one of them is present
    choice_required: bool = False  # ... and exactly one when the choice itself is required

    @property
    def repeated(self) -> bool:
        return self.max_occurs is None or self.max_occurs > 1

    @property
    def optional(self) -> bool:
        return self.min_occurs == 0 and not self.repeated


@dataclass
class ComplexType:
    key: str  # qname of the type, or "{ns}Element@anon" for anonymous types
    class_name: str
    namespace: str
    xsd: XsdComplexType
    fields: list[Field] = field(default_factory=list)
    monotone: bool = True  # fields occur in field order (no repeated groups, no duplicate names)
    has_wildcard: bool = False
    mixed: bool = False
    abstract: bool = False
    doc: str = ""


class SchemaModel:
    """All types and elements reachable from the XSDs of all schema sets."""

    def __init__(self) -> None:
        self.schemas = {sid: xmlschema.XMLSchema(str(XSD_DIR / s.xsd)) for sid, s in schemas.SCHEMA_SETS.items()}
        self.simple: dict[str, SimpleType] = {}
        self.complex: dict[str, ComplexType] = {}
        self._by_xsd: dict[int, ComplexType] = {}
        self._anon_names: dict[int, str] = {}
        for schema in self.schemas.values():
            for qn, elem in sorted(self.global_elements(schema).items()):
                self.element_type(elem, qn)
            for qn, xt in sorted(schema.maps.types.items()):
                if uri(qn) in NAMESPACE_MODULES and isinstance(xt, XsdComplexType):
                    self.complex_type(xt)
        self._check_names()

    # -- elements -------------------------------------------------------------------------------
    @staticmethod
    def global_elements(schema: xmlschema.XMLSchema) -> dict[str, XsdElement]:
        return {qn: e for qn, e in schema.maps.elements.items() if uri(qn) in NAMESPACE_MODULES}

    def substitution_set(self, schema: xmlschema.XMLSchema, elem: XsdElement) -> list[XsdElement]:
        """The element and every element that substitutes it directly or indirectly, EXI-sorted."""
        head = elem.ref if elem.ref is not None else elem
        members = {head.name: head}
        todo = [head]
        while todo:
            for sub in schema.maps.substitution_groups.get(todo.pop().name, ()):
                if sub.name not in members:
                    members[sub.name] = sub
                    todo.append(sub)
        return [members[q] for q in sorted(members, key=qname_key)]

    def element_type(self, elem: XsdElement, qname: str) -> ComplexType | SimpleType:
        xt = elem.type
        if isinstance(xt, XsdComplexType):
            return self.complex_type(xt, owner=qname)
        return self.simple_type(xt, owner=qname)

    # -- simple types ---------------------------------------------------------------------------
    def simple_type(self, xt, owner: str = "") -> SimpleType:
        key = xt.name or f"{owner}@anon"
        if key in self.simple:
            return self.simple[key]
        prim = local(xt.primitive_type.name)
        ns = uri(xt.name) if xt.name else uri(owner)
        enum = getattr(xt, "enumeration", None)
        if enum:
            values = tuple(str(v) for v in enum)
            cls = pascal(re.sub(r"Type$", "", local(key).replace("@anon", "")))
            st = SimpleType(key, "enum", "string", values=values, enum_class=cls, namespace=ns)
        elif prim == "boolean":
            st = SimpleType(key, "bool", "boolean")
        elif prim in _BINARY_PRIMITIVES:
            st = SimpleType(
                key, "binary", prim, max_length=self._facet(xt, "max_length"), min_length=self._facet(xt, "min_length")
            )
            exact = self._facet(xt, "length")
            if exact is not None:
                st.max_length = st.min_length = exact
        elif prim in _STRING_PRIMITIVES:
            st = SimpleType(
                key,
                "string",
                "string",
                max_length=self._facet(xt, "max_length"),
                min_length=self._facet(xt, "min_length"),
            )
        elif prim == "decimal" and self._integer_base(xt) is not None:
            lo, hi = _INTEGER_RANGES[self._integer_base(xt)]
            lo = _tighter(lo, xt.min_value, max)
            hi = _tighter(hi, xt.max_value, min)
            if lo is not None and hi is not None and hi - lo < 4096:
                kind = "nbit"
            elif lo is not None and lo >= 0:
                kind = "uint"
            else:
                kind = "int"
            st = SimpleType(key, kind, "integer", lo=lo, hi=hi)
        else:
            raise NotImplementedError(f"simple type {key} with primitive {prim}")
        self.simple[key] = st
        return st

    @staticmethod
    def _facet(xt, name: str) -> int | None:
        while xt is not None and not isinstance(xt, XsdAtomicBuiltin):
            value = getattr(xt, name, None)
            if value is not None:
                return int(value)
            xt = getattr(xt, "base_type", None)
        return None

    @staticmethod
    def _integer_base(xt) -> str | None:
        while xt is not None:
            if isinstance(xt, XsdAtomicBuiltin) and local(xt.name) in _INTEGER_RANGES:
                return local(xt.name)
            xt = getattr(xt, "base_type", None)
        return None

    # -- complex types --------------------------------------------------------------------------
    def complex_type(self, xt: XsdComplexType, owner: str = "") -> ComplexType:
        if id(xt) in self._by_xsd:
            return self._by_xsd[id(xt)]
        if xt.name:
            key, ns = xt.name, uri(xt.name)
            class_name = pascal(re.sub(r"Type$", "", local(xt.name)))
        else:
            key, ns = f"{owner}@anon", uri(owner)
            class_name = pascal(local(owner))
        ct = ComplexType(key, class_name, ns, xt, abstract=bool(xt.abstract), mixed=bool(xt.mixed))
        ct.doc = f"{local(key).replace('@anon', ' (anonymous type)')} ({ns})"
        self._by_xsd[id(xt)] = ct
        self.complex[key] = ct
        self._build_fields(ct)
        return ct

    def schema_of(self, ct: ComplexType) -> xmlschema.XMLSchema:
        for schema in self.schemas.values():
            if any(t is ct.xsd for t in schema.maps.types.values()) or ct.key.endswith("@anon"):
                return schema
        raise KeyError(ct.key)

    def _build_fields(self, ct: ComplexType) -> None:
        xt = ct.xsd
        schema = self.schema_of(ct)
        fields: dict[str, Field] = {}
        for aname, attr in sorted(xt.attributes.items(), key=lambda kv: qname_key(kv[1].name)):
            if aname is None:
                continue  # attribute wildcard: no field
            st = self.simple_type(attr.type, owner=attr.name)
            fields[f"a:{attr.name}"] = Field(
                snake(local(attr.name)), "attr", [attr.name], [st], 1 if attr.use == "required" else 0, 1
            )
        if xt.has_simple_content():
            fields["value"] = Field("value", "value", [], [self.simple_type(xt.content, owner=ct.key + "@value")], 1, 1)
        elif isinstance(xt.content, XsdGroup):
            self._choices = 0
            self._walk(ct, schema, xt.content, fields, 1, 1, None)
        for i, f in enumerate(fields.values()):
            f.order = i
        ct.fields = list(fields.values())

    def _walk(self, ct, schema, particle, fields, pmin, pmax, choice) -> None:
        lo = particle.min_occurs * pmin
        hi = None if (particle.max_occurs is None or pmax is None) else particle.max_occurs * pmax
        if choice is not None:
            lo = 0
        if isinstance(particle, XsdGroup):
            if particle.max_occurs is None or particle.max_occurs > 1:
                ct.monotone = False
            inner = None
            if particle.model == "choice" and len(particle) > 1:
                self._choices += 1
                inner = (self._choices, lo > 0)
            for child in particle:
                self._walk(ct, schema, child, fields, lo, hi, inner)
        elif isinstance(particle, XsdAnyElement):
            ct.has_wildcard = True
        elif isinstance(particle, XsdElement):
            members = self.substitution_set(schema, particle)
            head = particle.ref if particle.ref is not None else particle
            key = f"e:{head.name}"
            if key in fields:
                ct.monotone = False
                f = fields[key]
                f.min_occurs += lo
                f.max_occurs = None if (f.max_occurs is None or hi is None) else f.max_occurs + hi
                return
            types = [self.element_type(m, m.name) for m in members]
            fields[key] = Field(snake(local(head.name)), "elem", [m.name for m in members], types, lo, hi)
            if choice is not None:
                fields[key].choice, fields[key].choice_required = choice
        else:
            raise NotImplementedError(repr(particle))

    def _check_names(self) -> None:
        seen: dict[tuple[str, str], str] = {}
        for ct in self.complex.values():
            k = (ct.namespace, ct.class_name)
            if k in seen and seen[k] != ct.key:
                ct.class_name += "Element" if ct.key.endswith("@anon") else "Type"
            seen[(ct.namespace, ct.class_name)] = ct.key
            names = [f.name for f in ct.fields]
            if len(set(names)) != len(names):
                raise ValueError(f"field name clash in {ct.key}: {names}")


def _tighter(bound, facet, pick):
    if facet is None:
        return bound
    facet = int(facet)
    return facet if bound is None else pick(bound, facet)

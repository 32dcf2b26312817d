"""Hypothesis strategies for schema-valid instances of the generated message classes.

Everything is driven by the `XSD_FIELDS` / `XSD_TYPE` metadata of the generated classes
(`stack/messages/*.py`). The XSDs (`stack/exi/xsd/`) are read only for what that metadata does not say: which
complex types and elements are abstract, and which simple types derive from xs:anyURI or xs:ID. Two xmldsig
content models the flat field list cannot express (DSAKeyValue's optional pairs, PGPData's choice of
sequences) are handled by FIXUPS; SignatureProperty (wildcard content only) has no representable instance.

- `message_strategy(cls)`: schema-valid instances of `cls` (values within the facets, choices respected,
  abstract substitution-group members skipped, xs:ID values unique, small sizes). Strings are XML-safe,
  without leading/trailing whitespace, sometimes non-ASCII (2-, 3- and 4-octet UTF-8 code points), and values
  are sometimes reused across fields so that the EXI string table gets local and global hits.
- `ROOT_MESSAGES`: every (schema id, class) that is a document root message of the ISO 15118-20 schema sets
  and of AppProtocol (global elements named ...Req / ...Res, abstract ones excluded).
- `FRAGMENT_CLASSES`: (schema id, class) pairs that can be encoded as EXI fragments and have valid instances.
- `is_schema_valid(msg)`: XSD validation of a message through `stack.exi.to_xml` and lxml; `None` while
  `to_xml` does not exist, so callers can skip.
"""

from __future__ import annotations

import dataclasses
import importlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import stack.exi
from stack.exi.codec import SCHEMA_MODULES
from stack.messages._schema import FieldSpec, Simple

XSD_DIR = Path(stack.exi.__file__).resolve().parent / "xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"
DSIG = "{http://www.w3.org/2000/09/xmldsig#}"

# size knobs: small values keep a round trip in the millisecond range
LIST_EXTRA = 3  # repeated fields get min_occurs .. min(max_occurs, min_occurs + LIST_EXTRA) items ...
EXACT_MAX_LIMIT = 8  # ... and sometimes exactly max_occurs when max_occurs <= this (the "last occurrence" path)
SHORT_TEXT = 12  # usual longest string
SHORT_BINARY = 24  # usual longest binary
FULL_LENGTH_LIMIT = 4096  # strings/binaries are sometimes exactly max_length when that is at most this
MAX_DEPTH = 16  # the V2G schemas nest at most 8 deep; deeper means a recursive schema: optional parts stop
HARD_DEPTH = 64  # ... and required parts that still recurse past this are a bug in the schema or here

ROOT_SCHEMAS = ("appProtocol", "iso20-common", "iso20-dc", "iso20-ac", "iso20-acdp", "iso20-wpt")

# Complex types whose every valid instance holds wildcard (xs:any) content, which the generated classes
# cannot carry: SignatureProperty is `<choice maxOccurs="unbounded"><any namespace="##other"/></choice>`.
WILDCARD_REQUIRED = frozenset({f"{DSIG}SignaturePropertyType"})


# -- the schema facts the FieldSpec metadata does not carry ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class _XsdFacts:
    abstract_types: frozenset[str]  # qnames of abstract complex types
    abstract_elements: frozenset[str]  # qnames of abstract element declarations
    uri_types: frozenset[str]  # local names of simple types derived from xs:anyURI (and anyURI itself)
    id_types: frozenset[str]  # local names of simple types derived from xs:ID (and ID itself)
    files: dict[str, Path]  # target namespace -> XSD file


@cache
def _xsd_facts() -> _XsdFacts:
    types: set[str] = set()
    elements: set[str] = set()
    bases: dict[str, str] = {}
    files: dict[str, Path] = {}
    for path in sorted(XSD_DIR.rglob("*.xsd"), key=lambda p: (len(p.parts), str(p))):
        root = ET.parse(path).getroot()
        tns = root.get("targetNamespace", "")
        files.setdefault(tns, path)
        for node in root:
            if node.tag == f"{XS}simpleType":
                restriction = node.find(f"{XS}restriction")
                if restriction is not None and restriction.get("base"):
                    bases[node.get("name")] = restriction.get("base").rsplit(":", 1)[-1]
            if node.get("abstract") not in ("true", "1"):
                continue
            if node.tag == f"{XS}complexType":
                types.add(f"{{{tns}}}{node.get('name')}")
            elif node.tag == f"{XS}element":
                elements.add(f"{{{tns}}}{node.get('name')}")

    def derived(root: str) -> frozenset[str]:
        out = {root}
        while True:
            more = {name for name, base in bases.items() if base in out} - out
            if not more:
                return frozenset(out)
            out |= more

    return _XsdFacts(frozenset(types), frozenset(elements), derived("anyURI"), derived("ID"), files)


def is_abstract(cls: type) -> bool:
    """True when the class is an abstract XSD type (e.g. the CLReqControlMode substitution-group head)."""
    return cls.XSD_TYPE in _xsd_facts().abstract_types


def _member_ok(qname: str, kind: object) -> bool:
    if qname in _xsd_facts().abstract_elements:
        return False
    return not isinstance(kind, type) or is_representable(kind)


def usable_members(f: FieldSpec) -> list[object]:
    """The classes / simple types a field's value may have in a valid document (abstract members left out)."""
    return [k for q, k in f.members if _member_ok(q, k)]


def is_representable(cls: type) -> bool:
    """Whether the class has schema-valid instances the generated dataclasses can hold."""
    return _representable(cls)


@cache
def _representable(cls: type, seen: frozenset[type] = frozenset()) -> bool:
    if is_abstract(cls) or cls.XSD_TYPE in WILDCARD_REQUIRED:
        return False
    if cls in seen:  # a recursive path: representable only through an optional branch elsewhere
        return False
    seen = seen | {cls}
    choices: dict[int, list[bool]] = {}
    for f in cls.XSD_FIELDS:
        ok = any(_member_ok(q, k) and (not isinstance(k, type) or _representable(k, seen)) for q, k in f.members)
        if f.choice is not None:
            choices.setdefault(f.choice, []).append(ok)
            if f.choice_required:
                continue
        if f.min_occurs > 0 and not ok:
            return False
    required = {f.choice for f in cls.XSD_FIELDS if f.choice is not None and f.choice_required}
    return all(any(choices[c]) for c in required)


# -- which classes are messages ---------------------------------------------------------------------------
def codec_module(schema: str):
    """The generated codec module of a schema set (`stack.exi.gen.<module>`)."""
    return importlib.import_module(f"stack.exi.gen.{SCHEMA_MODULES[schema]}")


def element_names(schema: str, cls: type, *, fragment: bool = False) -> list[str]:
    """The qnames of the global (or fragment) elements of `schema` whose type is `cls`."""
    mod = codec_module(schema)
    table = mod.FRAGMENT_ENCODERS if fragment else mod.DOCUMENT_ENCODERS
    return [q for (c, q) in table if c is cls]


def _root_messages() -> list[tuple[str, type]]:
    out: list[tuple[str, type]] = []
    for schema in ROOT_SCHEMAS:
        for cls, qname in codec_module(schema).DOCUMENT_ENCODERS:
            local = qname.rsplit("}", 1)[-1]
            if local.endswith(("Req", "Res")) and is_representable(cls) and (schema, cls) not in out:
                out.append((schema, cls))
    return out


def _fragment_classes() -> list[tuple[str, type]]:
    out: list[tuple[str, type]] = []
    for schema in SCHEMA_MODULES:
        for cls, _ in codec_module(schema).FRAGMENT_ENCODERS:
            if is_representable(cls) and (schema, cls) not in out:
                out.append((schema, cls))
    return out


ROOT_MESSAGES: list[tuple[str, type]] = _root_messages()
FRAGMENT_CLASSES: list[tuple[str, type]] = _fragment_classes()


# -- value strategies -------------------------------------------------------------------------------------
# Characters that are legal XML 1.0 content: printable ASCII (with the XML specials), Latin-1 and a few
# multi-octet UTF-8 code points (2 octets: ü, 3 octets: € and CJK, 4 octets: outside the BMP).
ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
NON_ASCII = "äöüÄÖÜßéñçøµ°±€£¥©中文字充電桩ΩЖ😀𝄞"
_text_chars = st.one_of(
    st.sampled_from(ASCII),
    st.sampled_from(NON_ASCII),
    st.characters(
        min_codepoint=0xA0,
        max_codepoint=0x10FFFF,
        exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"),
        exclude_characters="\ufffe\uffff",
    ),
)
# NCName characters (for xs:ID), ASCII plus a few Unicode letters
_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_äüé中"
_NAME_CHARS = _NAME_START + "0123456789.-"
# anyURI values: one of a few absolute/relative prefixes, then unreserved characters (and IRI letters)
_URI_PREFIXES = (
    "",
    "#",
    "urn:iso:std:iso:15118:-20:",
    "http://www.w3.org/2001/04/xmldsig-more#",
    "https://example.com/v2g/",
)
_URI_TAIL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~äü"


def is_ncname(text: str) -> bool:
    return bool(text) and text[0] in _NAME_START and all(ch in _NAME_CHARS for ch in text)


def is_uri(text: str) -> bool:
    """Whether `text` has the shape the URI strategy draws (which every anyURI checker accepts)."""
    prefix = max((p for p in _URI_PREFIXES if text.startswith(p)), key=len)
    return all(ch in _URI_TAIL for ch in text[len(prefix) :])


def lexical_class(simple: Simple) -> str:
    """'id' (an NCName, unique per document), 'uri' (anyURI) or 'text' for a string type."""
    facts = _xsd_facts()
    if simple.name in facts.id_types:
        return "id"
    if simple.name in facts.uri_types:
        return "uri"
    return "text"


def _fits(simple: Simple, text: str) -> bool:
    """Whether a string already drawn is a valid value of another string type."""
    if simple.max_length is not None and len(text) > simple.max_length:
        return False
    if simple.min_length is not None and len(text) < simple.min_length:
        return False
    kind = lexical_class(simple)
    if kind == "id":
        return is_ncname(text)
    if kind == "uri":
        return is_uri(text)
    return text == text.strip()


class _Builder:
    """One message being built: the draw function, the strings so far (for reuse) and the IDs used."""

    def __init__(self, draw: Callable[[st.SearchStrategy], Any]) -> None:
        self.draw = draw
        self.strings: list[str] = []
        self.ids: set[str] = set()

    # simple values
    def simple(self, s: Simple) -> object:
        kind = s.kind
        if kind in ("nbit", "uint", "int"):
            if s.lo is None and s.hi is None:  # xs:integer: keep within the codec's 40-octet limit
                return self.draw(st.one_of(st.integers(-(2**64), 2**64), st.integers(-(2**160), 2**160)))
            lo = s.lo if s.lo is not None else (0 if kind == "uint" else -(2**64))
            hi = s.hi if s.hi is not None else lo + 2**64
            return self.draw(st.integers(lo, hi))
        if kind == "bool":
            return self.draw(st.booleans())
        if kind == "enum":
            return self.draw(st.sampled_from(list(s.enum)))
        if kind == "binary":
            return self.binary(s)
        if kind == "string":
            return self.string(s)
        raise NotImplementedError(f"simple kind {kind!r} of {s.name}")

    def binary(self, s: Simple) -> bytes:
        lo = s.min_length or 0
        hi = s.max_length
        top = lo + SHORT_BINARY if hi is None else min(hi, lo + SHORT_BINARY)
        if hi is not None and hi > top and hi <= FULL_LENGTH_LIMIT and self.draw(st.integers(0, 4)) == 4:
            seed = self.draw(st.binary(min_size=1, max_size=8))  # exactly max_length, few bytes of entropy
            return (seed * (hi // len(seed) + 1))[:hi]
        return self.draw(st.binary(min_size=lo, max_size=top))

    def string(self, s: Simple) -> str:
        kind = lexical_class(s)
        reusable = [t for t in self.strings if _fits(s, t) and not (kind == "id" and t in self.ids)]
        if reusable and self.draw(st.integers(0, 3)) == 3:
            value = self.draw(st.sampled_from(reusable))
        elif kind == "id":
            value = self.draw(st.text(_NAME_START, min_size=1, max_size=1)) + self.draw(
                st.text(_NAME_CHARS, max_size=min(SHORT_TEXT, (s.max_length or SHORT_TEXT) - 1))
            )
        elif kind == "uri":
            value = self.draw(st.sampled_from(_URI_PREFIXES)) + self.draw(st.text(_URI_TAIL, max_size=SHORT_TEXT))
            if s.max_length is not None:
                value = value[: s.max_length]
        else:
            value = self.text(s.max_length)
        if kind == "id":
            if value in self.ids:  # xs:ID values must be unique in the document
                value = self._fresh_id(value, s.max_length)
            self.ids.add(value)
        self.strings.append(value)
        return value

    def text(self, max_length: int | None) -> str:
        top = SHORT_TEXT if max_length is None else min(max_length, SHORT_TEXT)
        if (
            max_length is not None
            and max_length > top
            and max_length <= FULL_LENGTH_LIMIT
            and self.draw(st.integers(0, 4)) == 4
        ):
            seed = self.draw(st.text(_text_chars, min_size=1, max_size=4).filter(lambda t: t == t.strip()))
            return (seed * (max_length // len(seed) + 1))[:max_length].strip() or "x"
        # strip() only shortens, so the result stays within max_length
        return self.draw(st.text(_text_chars, max_size=top)).strip()

    def _fresh_id(self, base: str, max_length: int | None) -> str:
        for n in range(len(self.ids) + 1):
            candidate = f"{base}{n}"
            if max_length is not None:
                candidate = candidate[-max_length:]
                candidate = candidate if candidate[0] in _NAME_START else "_" + candidate[1:]
            if candidate not in self.ids:
                return candidate
        raise AssertionError("unreachable")

    # lists and fields
    def count(self, lo: int, hi: int | None, depth: int) -> int:
        if depth >= MAX_DEPTH:
            return lo
        top = lo + LIST_EXTRA if hi is None else min(hi, lo + LIST_EXTRA)
        if hi is not None and top < hi <= EXACT_MAX_LIMIT and self.draw(st.integers(0, 4)) == 4:
            return hi
        return self.draw(st.integers(lo, top))

    def member(self, f: FieldSpec, depth: int) -> object:
        options = usable_members(f)
        if not options:
            raise ValueError(f"no valid member for field {f.name}: {[q for q, _ in f.members]}")
        kind = options[0] if len(options) == 1 else self.draw(st.sampled_from(options))
        if isinstance(kind, type):
            return self.instance(kind, depth + 1)
        return self.simple(kind)

    def field(self, f: FieldSpec, depth: int, lo: int | None = None) -> object:
        lo = f.min_occurs if lo is None else lo
        if f.repeated:
            return [self.member(f, depth) for _ in range(self.count(lo, f.max_occurs, depth))]
        if lo == 0 and (depth >= MAX_DEPTH or not self.draw(st.booleans())):
            return None
        return self.member(f, depth)

    @staticmethod
    def absent(f: FieldSpec) -> object:
        return [] if f.repeated else None

    def instance(self, cls: type, depth: int = 0) -> object:
        if depth > HARD_DEPTH:
            raise RecursionError(f"{cls.__name__}: schema nesting deeper than {HARD_DEPTH}")
        values: dict[str, object] = {}
        done: set[int] = set()
        for f in cls.XSD_FIELDS:
            if f.choice is None:
                values[f.name] = self.field(f, depth)
                continue
            if f.choice in done:
                continue
            done.add(f.choice)
            alternatives = [g for g in cls.XSD_FIELDS if g.choice == f.choice]
            usable = [g for g in alternatives if usable_members(g)]
            pick = None
            if f.choice_required or (depth < MAX_DEPTH and self.draw(st.booleans())):
                pick = usable[0] if len(usable) == 1 else self.draw(st.sampled_from(usable))
            for g in alternatives:
                values[g.name] = self.field(g, depth, lo=1) if g is pick else self.absent(g)
        fix = FIXUPS.get(cls.XSD_TYPE)
        if fix is not None:
            fix(self, cls, values)
        return cls(**values)

    def fill(self, cls: type, name: str) -> object:
        f = next(f for f in cls.XSD_FIELDS if f.name == name)
        return self.field(f, 0, lo=1)


# -- content models FieldSpec flattens: nested optional sequences and a choice of sequences -------------------
def _fix_dsa_key_value(b: _Builder, cls: type, v: dict[str, object]) -> None:
    # (P, Q)? G? Y J? (Seed, PgenCounter)?: the pairs are both present or both absent
    for first, second in (("p", "q"), ("seed", "pgen_counter")):
        if (v[first] is None) != (v[second] is None):
            if b.draw(st.booleans()):
                v[first] = v[first] if v[first] is not None else b.fill(cls, first)
                v[second] = v[second] if v[second] is not None else b.fill(cls, second)
            else:
                v[first] = v[second] = None


def _fix_pgp_data(b: _Builder, cls: type, v: dict[str, object]) -> None:
    # (PGPKeyID, PGPKeyPacket?) | PGPKeyPacket: never two packets, never empty
    packets = v["pgp_key_packet"][:1]
    if v["pgp_key_id"] is None and not packets:
        packets = [b.fill(cls, "pgp_key_packet")[0]]
    v["pgp_key_packet"] = packets


FIXUPS: dict[str, Callable[[_Builder, type, dict[str, object]], None]] = {
    f"{DSIG}DSAKeyValueType": _fix_dsa_key_value,
    f"{DSIG}PGPDataType": _fix_pgp_data,
}


def minimal_value(s: Simple, n: int = 1) -> object:
    """A small valid value of a simple type (`n` makes strings and IDs distinct)."""
    if s.kind in ("nbit", "uint", "int"):
        lo = s.lo if s.lo is not None else min(0, s.hi if s.hi is not None else 0)
        return max(lo, min(n, s.hi)) if s.hi is not None else max(lo, n)
    if s.kind == "bool":
        return True
    if s.kind == "enum":
        return next(iter(s.enum))
    if s.kind == "binary":
        return bytes(range(1, 1 + (s.min_length or 1)))
    kind = lexical_class(s)
    value = f"id{n}" if kind == "id" else f"urn:x:{n}" if kind == "uri" else f"v{n}"
    return value[: s.max_length] if s.max_length is not None else value


def minimal_instance(cls: type, _counter: list[int] | None = None) -> object:
    """A deterministic, small, schema-valid instance: required fields only, the first usable alternative."""
    counter = [0] if _counter is None else _counter
    values: dict[str, object] = {}
    chosen: set[int] = set()
    for f in cls.XSD_FIELDS:
        n = f.min_occurs
        if f.choice is not None:
            n = 1 if f.choice_required and f.choice not in chosen and usable_members(f) else 0
            if n:
                chosen.add(f.choice)
        items = []
        for _ in range(n):
            kind = usable_members(f)[0]
            counter[0] += 1
            items.append(minimal_instance(kind, counter) if isinstance(kind, type) else minimal_value(kind, counter[0]))
        values[f.name] = items if f.repeated else (items[0] if items else None)
    if cls.XSD_TYPE.endswith("}PGPDataType"):  # (PGPKeyID, PGPKeyPacket?) | PGPKeyPacket: not empty
        values["pgp_key_id"] = b"\x01"
    return cls(**values)


def message_strategy(cls: type) -> st.SearchStrategy:
    """Schema-valid instances of a generated message class."""
    if not (dataclasses.is_dataclass(cls) and hasattr(cls, "XSD_FIELDS")):
        raise TypeError(f"{cls!r} is not a generated message class")
    if not is_representable(cls):
        raise ValueError(f"{cls.__name__} ({cls.XSD_TYPE}) has no valid instance the dataclasses can hold")

    @st.composite
    def build(draw: Callable[[st.SearchStrategy], Any]) -> object:
        return _Builder(draw).instance(cls)

    return build()


# -- XSD validation through the XML view (when stack.exi.to_xml exists) ---------------------------------
def to_xml_available() -> bool:
    return _to_xml() is not None


def _to_xml() -> Callable[[object], str] | None:
    try:
        from stack.exi import to_xml  # type: ignore[attr-defined]
    except ImportError:
        return None
    return to_xml


@cache
def _xml_schema(namespace: str):
    from lxml import etree

    path = _xsd_facts().files[namespace]
    return etree.XMLSchema(etree.parse(str(path)))


def schema_errors(msg: object, element: str | None = None) -> list[str] | None:
    """XSD validation errors of `msg` as XML (empty = valid); None when `stack.exi.to_xml` is not there yet.

    `element` names the root element when the class is the type of several (ACDP_ConnectReq/DisconnectReq).
    """
    to_xml = _to_xml()
    if to_xml is None:
        return None
    from lxml import etree

    text = to_xml(msg, element=element) if element else to_xml(msg)
    root = etree.fromstring(text.encode() if isinstance(text, str) else text)
    schema = _xml_schema(etree.QName(root).namespace or "")
    if schema.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def is_schema_valid(msg: object, element: str | None = None) -> bool | None:
    """True/False by XSD validation of `to_xml(msg)`; None when `stack.exi.to_xml` does not exist yet."""
    errors = schema_errors(msg, element)
    return None if errors is None else not errors

"""XML view of the generated messages (lxml), validated against the XSDs."""

from __future__ import annotations

import base64
import binascii
import importlib
from functools import cache
from pathlib import Path

from lxml import etree

from stack import schemas
from stack.messages._schema import FieldSpec, Simple, XsdType

from .errors import ExiError

XSD_DIR = Path(__file__).resolve().parent / "xsd"


class XmlError(ExiError):
    """The XML text is not well-formed, not schema-valid, or names an element we do not know."""


@cache
def _elements() -> dict[str, type[XsdType]]:
    out: dict[str, type[XsdType]] = {}
    for namespace in schemas.NAMESPACES.values():
        out.update(importlib.import_module(f"stack.messages.{namespace.module}").ELEMENTS)
    return out


@cache
def _element_of(cls: type) -> str:
    names = [q for q, c in _elements().items() if c is cls]
    if len(names) != 1:
        raise XmlError(f"{cls.__name__} is the type of {len(names)} global elements; pass element=")
    return names[0]


@cache
def xml_schema(schema: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_DIR / schemas.schema_set(schema).xsd)))


def schema_of_namespace(namespace: str) -> str:
    try:
        return schemas.schema_set_of_namespace(namespace).id
    except schemas.UnknownSchemaError as exc:
        raise XmlError(str(exc)) from None


# -- objects -> XML --------------------------------------------------------------------------------
def _fields(msg: object) -> tuple[FieldSpec, ...]:
    cls = type(msg)
    if not issubclass(cls, XsdType):
        raise XmlError(f"{cls.__name__} is not a message class")
    return cls.XSD_FIELDS


def _simple(spec: FieldSpec) -> Simple:
    """The simple type of an attribute or of a type's own value."""
    t = spec.members[0][1]
    if not isinstance(t, Simple):
        raise XmlError(f"{spec.name}: a {spec.kind} of complex type")
    return t


def to_element(msg: object, element: str | None = None) -> etree._Element:
    cls: type = type(msg)
    qname = element or _element_of(cls)
    namespaces = _namespaces(msg, {_ns(qname)})
    root = etree.Element(qname, nsmap={schemas.NAMESPACES[ns].prefix: ns for ns in namespaces if ns})
    _fill(root, msg)
    etree.cleanup_namespaces(root)
    return root


def to_xml(msg: object, *, element: str | None = None, pretty: bool = True) -> str:
    """The message as XML text (the root element's namespace picks the schema)."""
    return str(etree.tostring(to_element(msg, element), pretty_print=pretty, encoding="unicode"))


def _ns(qname: str) -> str:
    return qname[1:].split("}", 1)[0] if qname.startswith("{") else ""


def _namespaces(msg: object, found: set[str]) -> list[str]:
    for spec in _fields(msg):
        for qname, _ in spec.members:
            found.add(_ns(qname))
        value = getattr(msg, spec.name)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(type(item), "XSD_FIELDS"):
                _namespaces(item, found)
    return sorted(found)


def _fill(node: etree._Element, msg: object) -> None:
    for spec in _fields(msg):
        value = getattr(msg, spec.name)
        if value is None:
            continue
        if spec.kind == "attr":
            node.set(spec.members[0][0], lexical(_simple(spec), value))
        elif spec.kind == "value":
            node.text = lexical(_simple(spec), value)
        else:
            for item in value if isinstance(value, list) else [value]:
                qname, t = _member(spec, item)
                child = etree.SubElement(node, qname)
                if isinstance(t, Simple):
                    child.text = lexical(t, item)
                else:
                    _fill(child, item)


def _member(spec: FieldSpec, item: object) -> tuple[str, object]:
    if len(spec.members) == 1:
        return spec.members[0]
    for qname, t in spec.members:
        if t is type(item):
            return qname, t
    raise XmlError(f"{spec.name}: {type(item).__name__} is not a member of its substitution group")


def lexical(t: Simple, value: object) -> str:
    if t.kind == "bool":
        return "true" if value else "false"
    if t.lexical in ("hexBinary", "base64Binary"):
        if not isinstance(value, bytes | bytearray):
            raise XmlError(f"{t.name}: bytes expected, got {type(value).__name__}")
        return bytes(value).hex().upper() if t.lexical == "hexBinary" else base64.b64encode(value).decode()
    return str(value)


# -- XML -> objects --------------------------------------------------------------------------------
def from_xml(text: str | bytes, *, validate: bool = True) -> object:
    """Parse XML of a V2G message; the root element's namespace picks the schema it is validated with."""
    try:
        root = etree.fromstring(text.encode() if isinstance(text, str) else text)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc}") from None
    if validate:
        validate_element(root)
    cls = _elements().get(root.tag)
    if cls is None:
        raise XmlError(f"{root.tag} is not a global element of a known schema")
    return _build(cls, root)


def validate_element(root: etree._Element) -> None:
    schema = xml_schema(schema_of_namespace(_ns(root.tag)))
    if not schema.validate(root):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:5])
        raise XmlError(f"XML is not valid against the schema: {errors}")


def validate_xml(text: str) -> None:
    validate_element(etree.fromstring(text.encode()))


def _build(cls: type[XsdType], node: etree._Element) -> object:
    specs = cls.XSD_FIELDS
    kwargs: dict[str, object] = {s.name: None for s in specs if not s.repeated}
    lists: dict[str, list[object]] = {s.name: [] for s in specs if s.repeated}
    by_name: dict[str, tuple[FieldSpec, type[XsdType] | Simple]] = {}
    for spec in specs:
        if spec.kind == "attr":
            raw = node.get(spec.members[0][0])
            if raw is not None:
                kwargs[spec.name] = parse(_simple(spec), raw)
        elif spec.kind == "value":
            kwargs[spec.name] = parse(_simple(spec), node.text or "")
        else:
            for qname, t in spec.members:
                by_name[qname] = (spec, t)
    for child in node:
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        if child.tag not in by_name:
            raise XmlError(f"unexpected element {child.tag} in {node.tag}")
        spec, t = by_name[child.tag]
        value = parse(t, child.text or "") if isinstance(t, Simple) else _build(t, child)
        if spec.repeated:
            lists[spec.name].append(value)
        else:
            kwargs[spec.name] = value
    return cls(**kwargs, **lists)


def parse(t: Simple, text: str) -> object:
    text = text.strip() if t.kind != "string" else text
    try:
        if t.kind in ("nbit", "uint", "int"):
            return int(text)
        if t.kind == "bool":
            return text in ("true", "1")
        if t.kind == "enum" and t.enum is not None:
            return t.enum(text)
        if t.lexical == "hexBinary":
            return bytes.fromhex(text)
        if t.lexical == "base64Binary":
            return base64.b64decode("".join(text.split()), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise XmlError(f"bad {t.name} value {text!r}: {exc}") from None
    return text

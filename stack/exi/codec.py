"""Encode and decode whole EXI documents and fragments with the generated schema-set codecs."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType, TracebackType

from stack import schemas

from .errors import ExiDecodeError, ExiEncodeError, ExiError, ExiTruncatedError, ExiUnsupportedError
from .runtime import Reader, StringTable, to_bytes

# schema id -> generated codec module (stack.exi.gen), from the registry
SCHEMA_MODULES = {s.id: s.codec_module for s in schemas.SCHEMA_SETS.values()}
EXI_HEADER = 0x80  # distinguishing bits 10, no options, final version 1
EXI_COOKIE = b"$EXI"


@cache
def codec_module(schema: str) -> ModuleType:
    try:
        name = schemas.schema_set(schema).codec_module
    except schemas.UnknownSchemaError as exc:
        raise ExiError(str(exc)) from None
    return importlib.import_module(f"stack.exi.gen.{name}")


def default_schema(msg: object) -> str:
    """The schema id `msg` is encoded with unless told otherwise (the registry's owner of its class's module)."""
    try:
        return schemas.default_schema_id(type(msg))
    except schemas.UnknownSchemaError as exc:
        raise ExiEncodeError(str(exc)) from None


@cache
def _root_index(schema: str, cls: type, fragment: bool, element: str | None = None) -> tuple[str, int, object]:
    mod = codec_module(schema)
    table = mod.FRAGMENT_ENCODERS if fragment else mod.DOCUMENT_ENCODERS
    found = [(q, code, enc) for (c, q), (code, enc) in table.items() if c is cls and element in (None, q)]
    if not found:
        what = "fragment" if fragment else "global element"
        named = f" named {element}" if element else ""
        raise ExiEncodeError(f"{cls.__name__} is not a {what}{named} of schema {schema!r}")
    if len(found) > 1:
        raise ExiEncodeError(f"{cls.__name__} is the type of several elements, pass element=: {[f[0] for f in found]}")
    return found[0]


def encode(msg: object, *, string_table: bool = False, schema: str | None = None, element: str | None = None) -> bytes:
    """EXI document of `msg` (V2G profile; `string_table=True` for EXIficient's default options).

    `element` ("{namespace}Name") is needed only when the message's type serves several global elements
    (ACDP_ConnectReq and ACDP_DisconnectReq share one type).
    """
    schema = schema or default_schema(msg)
    _, code, enc = _root_index(schema, type(msg), False, element)
    mod = codec_module(schema)
    a = (1 << 8) | EXI_HEADER
    a = (a << mod.DOCUMENT_WIDTH) | code
    try:
        a = enc(a, msg, StringTable() if string_table else None)
    except ExiError as exc:
        raise _located(exc, exc.__traceback__, "_e_") from None
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError) as exc:
        raise _located(ExiEncodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_e_") from None
    return to_bytes(a)


def encode_fragment(
    msg: object, *, string_table: bool = False, schema: str | None = None, element: str | None = None
) -> bytes:
    """EXI fragment (8.5.2) holding the single element `msg`, as signatures need it."""
    schema = schema or default_schema(msg)
    _, code, enc = _root_index(schema, type(msg), True, element)
    mod = codec_module(schema)
    width = mod.FRAGMENT_WIDTH
    a = (1 << 8) | EXI_HEADER
    a = (a << width) | code
    try:
        a = enc(a, msg, StringTable() if string_table else None)
    except ExiError as exc:
        raise _located(exc, exc.__traceback__, "_e_") from None
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError) as exc:
        raise _located(ExiEncodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_e_") from None
    a = (a << width) | (len(mod.FRAGMENT_DECODERS) + 1)  # ED
    return to_bytes(a)


def _reader(data: bytes) -> Reader:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExiDecodeError(f"bytes expected, got {type(data).__name__}")
    data = bytes(data)
    if data.startswith(EXI_COOKIE):
        data = data[len(EXI_COOKIE) :]
    r = Reader(data)
    if len(data) == 0:
        raise ExiDecodeError("empty stream", bit_offset=0)
    header = data[0]
    if header >> 6 != 0b10:
        raise ExiDecodeError(f"not an EXI stream (header byte {header:#04x})", bit_offset=0)
    if header & 0x20:
        raise ExiUnsupportedError("EXI options in the header are not supported", bit_offset=2)
    if header & 0x1F:
        raise ExiUnsupportedError(f"EXI version field {header & 0x1F:#x} is not version 1", bit_offset=3)
    return r


def decode_element(data: bytes, schema: str, *, fragment: bool = False) -> tuple[str, object]:
    """(qname, message) of the root element of an EXI document (or the element of a fragment)."""
    mod = codec_module(schema)
    r = _reader(data)
    table = mod.FRAGMENT_DECODERS if fragment else mod.DOCUMENT_DECODERS
    width = mod.FRAGMENT_WIDTH if fragment else mod.DOCUMENT_WIDTH
    v, n = r.value, r.size
    p = 8
    try:
        code = (v >> (n - p - width)) & ((1 << width) - 1)
        p += width
        if code >= len(table):
            raise ExiUnsupportedError(f"root event code {code}: undeclared root element", bit_offset=p - width)
        qname, dec = table[code]
        if dec is None:
            raise ExiUnsupportedError(f"root element {qname} has a simple or ambiguous type", bit_offset=p)
        msg, p = dec(r, v, n, p)
        if fragment:
            end = (v >> (n - p - width)) & ((1 << width) - 1)
            if end != len(table) + 1:
                raise ExiUnsupportedError("fragment with more than one element", bit_offset=p)
        if p > n:
            raise ExiTruncatedError("stream ends inside the document", bit_offset=n)
    except ExiError as exc:
        raise _located(exc, exc.__traceback__, "_d_") from None
    except ValueError as exc:
        if "negative shift count" not in str(exc):
            raise _located(ExiDecodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_d_") from None
        error = ExiTruncatedError("stream ends inside the document", bit_offset=n)
        raise _located(error, exc.__traceback__, "_d_") from None
    except (IndexError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        error = ExiDecodeError(f"{type(exc).__name__}: {exc}")
        raise _located(error, exc.__traceback__, "_d_") from None
    return qname, msg


def decode(data: bytes, schema: str) -> object:
    """The message encoded in an EXI document of schema set `schema`; trailing bytes are ignored."""
    return decode_element(data, schema)[1]


def decode_fragment(data: bytes, schema: str) -> object:
    return decode_element(data, schema, fragment=True)[1]


def _located(exc: ExiError, tb: TracebackType | None, prefix: str) -> ExiError:
    """Name the innermost generated function's type as the element, when the error does not say."""
    if exc.element is None:
        name = None
        while tb is not None:
            code = tb.tb_frame.f_code.co_name
            if code.startswith(prefix):
                name = code[len(prefix) :].split("_", 1)[-1]
            tb = tb.tb_next
        if name:
            exc.element = name
            exc.args = (f"{exc.args[0]} (in {name})",) if exc.args else exc.args
    return exc

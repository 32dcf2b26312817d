"""Encode and decode whole EXI documents and fragments with the generated schema-set codecs."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType, TracebackType

from stack import schemas
from stack.messages._schema import XsdType

from .errors import ExiDecodeError, ExiEncodeError, ExiError, ExiLimitError, ExiTruncatedError, ExiUnsupportedError
from .runtime import DEFAULT_LIMITS, Decoder, Encoder, ExiLimits, Reader, Writer

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
def _root_index(schema: str, cls: type, fragment: bool, element: str | None = None) -> tuple[str, int, Encoder]:
    mod = codec_module(schema)
    table: dict[tuple[type, str], tuple[int, Encoder]] = mod.FRAGMENT_ENCODERS if fragment else mod.DOCUMENT_ENCODERS
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
    cls: type = type(msg)
    _, code, enc = _root_index(schema, cls, False, element)
    mod = codec_module(schema)
    w = Writer(string_table)
    a = (1 << 8) | EXI_HEADER
    a = (a << mod.DOCUMENT_WIDTH) | code
    try:
        a = enc(a, msg, w)
    except ExiError as exc:
        raise _located(exc, exc.__traceback__, "_e_") from None
    except Exception as exc:  # a message the generated code did not foresee: still a typed error
        raise _located(ExiEncodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_e_") from None
    return w.finish(a)


def encode_fragment(
    msg: object, *, string_table: bool = False, schema: str | None = None, element: str | None = None
) -> bytes:
    """EXI fragment (8.5.2) holding the single element `msg`, as signatures need it."""
    schema = schema or default_schema(msg)
    cls: type = type(msg)
    _, code, enc = _root_index(schema, cls, True, element)
    mod = codec_module(schema)
    width = mod.FRAGMENT_WIDTH
    w = Writer(string_table)
    a = (1 << 8) | EXI_HEADER
    a = (a << width) | code
    try:
        a = enc(a, msg, w)
    except ExiError as exc:
        raise _located(exc, exc.__traceback__, "_e_") from None
    except Exception as exc:  # a message the generated code did not foresee: still a typed error
        raise _located(ExiEncodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_e_") from None
    a = (a << width) | (len(mod.FRAGMENT_DECODERS) + 1)  # ED
    return w.finish(a)


def _checked(data: bytes, limits: ExiLimits) -> bytes:
    """The EXI body of `data` (cookie dropped) after the header and size checks."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ExiDecodeError(f"bytes expected, got {type(data).__name__}")
    if not isinstance(limits, ExiLimits):
        raise ExiError(f"limits: ExiLimits expected, got {type(limits).__name__}")
    data = bytes(data)
    if data.startswith(EXI_COOKIE):
        data = data[len(EXI_COOKIE) :]
    if len(data) > limits.max_message_bytes:
        raise ExiLimitError(f"message of {len(data)} bytes, at most {limits.max_message_bytes} allowed (ExiLimits)")
    if len(data) == 0:
        raise ExiDecodeError("empty stream", bit_offset=0)
    header = data[0]
    if header >> 6 != 0b10:
        raise ExiDecodeError(f"not an EXI stream (header byte {header:#04x})", bit_offset=0)
    if header & 0x20:
        raise ExiUnsupportedError("EXI options in the header are not supported", bit_offset=2)
    if header & 0x1F:
        raise ExiUnsupportedError(f"EXI version field {header & 0x1F:#x} is not version 1", bit_offset=3)
    return data


class _PastWindow(Exception):
    """A path read more than the reader's slack between two checkpoints: decode again with a wider one."""


def decode_element(
    data: bytes, schema: str, *, fragment: bool = False, limits: ExiLimits = DEFAULT_LIMITS
) -> tuple[str, object]:
    """(qname, message) of the root element of an EXI document (or the element of a fragment).

    `limits` (`ExiLimits`, defaults in its docstring) bound what a stream may ask for; exceeding one raises
    `ExiLimitError`. Only `ExiError`s leave this function. The cost is linear in the stream's length.
    """
    mod = codec_module(schema)
    data = _checked(data, limits)
    try:
        qname, msg = _decode(Reader(data, limits), mod, fragment)
    except _PastWindow:
        try:
            slack = max(mod.WINDOW_BITS, Reader.SLACK_BITS)
            qname, msg = _decode(Reader(data, limits, slack=slack), mod, fragment)
        except _PastWindow:
            raise ExiDecodeError(f"a read past the decoding window ({schema} WINDOW_BITS is wrong)") from None
    if limits.max_depth < mod.MAX_DEPTH:
        _check_depth(msg, limits.max_depth)
    return qname, msg


def _decode(r: Reader, mod: ModuleType, fragment: bool) -> tuple[str, object]:
    table: tuple[tuple[str, Decoder | None], ...] = mod.FRAGMENT_DECODERS if fragment else mod.DOCUMENT_DECODERS
    width: int = mod.FRAGMENT_WIDTH if fragment else mod.DOCUMENT_WIDTH
    v, n = r.v, r.n
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
            if p > r.lim:
                r.refill(p)
            end = (r.v >> (r.n - p - width)) & ((1 << width) - 1)
            if end != len(table) + 1:
                raise ExiUnsupportedError("fragment with more than one element", bit_offset=p)
        if p > r.end:
            raise ExiTruncatedError("stream ends inside the document", bit_offset=r.end)
    except ExiError as exc:
        raise _located(exc, exc.__traceback__, "_d_") from None
    except ValueError as exc:
        if "negative shift count" not in str(exc):
            raise _located(ExiDecodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_d_") from None
        if r.n < r.end:
            raise _PastWindow from None
        truncated = ExiTruncatedError("stream ends inside the document", bit_offset=r.end)
        raise _located(truncated, exc.__traceback__, "_d_") from None
    except Exception as exc:  # IndexError of an event code past a table, ...: never an untyped error
        raise _located(ExiDecodeError(f"{type(exc).__name__}: {exc}"), exc.__traceback__, "_d_") from None
    return qname, msg


def _check_depth(msg: object, limit: int) -> None:
    """Refuse a message nesting deeper than `limit` complex elements (only needed when the schema could)."""
    level = [msg]
    for depth in range(1, limit + 2):
        if not level:
            return
        if depth > limit:
            raise ExiLimitError(f"elements nested deeper than {limit} (ExiLimits.max_depth)")
        below: list[object] = []
        for item in level:
            for name in getattr(type(item), "__slots__", ()):
                value = getattr(item, name, None)
                for child in value if isinstance(value, list) else (value,):
                    if isinstance(child, XsdType):
                        below.append(child)
        level = below


def decode(data: bytes, schema: str, *, limits: ExiLimits = DEFAULT_LIMITS) -> object:
    """The message encoded in an EXI document of schema set `schema`; trailing bytes are ignored.

    `limits` bound message size, nesting depth, string, binary and unbounded-list lengths (`ExiLimits`).
    """
    return decode_element(data, schema, limits=limits)[1]


def decode_fragment(data: bytes, schema: str, *, limits: ExiLimits = DEFAULT_LIMITS) -> object:
    return decode_element(data, schema, fragment=True, limits=limits)[1]


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

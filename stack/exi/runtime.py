"""Bit-level primitives the generated codecs call: a windowed bit reader, a flushing bit writer, the EXI value
string table and the codec's limits.

Decoding. Generated decoders take `(r, v, n, p)`: the `Reader`, its window `v` (an int holding the stream's
bits from a byte-aligned start up to bit `n`, absolute), the window's end `n` and the absolute bit position
`p`; they read inline as `(v >> (n - p)) & mask` and return `(message, p)`. A shift costs O(p - window start),
so the window is re-based at checkpoints: at the top of every repeated-element loop and after every long
string or binary, `if p > r.lim: v, n = r.refill(p)`. After a refill at most `Reader.REBASE_BITS` bits lie
before `p` in the window and at least `Reader.SLACK_BITS` after it (or the stream ends there). A caller
reloads `v, n = r.v, r.n` after a child whose decoder holds a checkpoint. Every read then costs O(window),
never O(stream). A read past the window is a negative shift (ValueError): past the end of the stream,
`stack.exi.codec` reports truncation; past a window that ends before the stream (a path reading more than
SLACK_BITS between two checkpoints, which real messages do not), it decodes again with the slack the generator
proved enough for every path of the schema set (the module's WINDOW_BITS): at worst twice the work, still
linear.

Encoding. Generated encoders take `(a, o, w)`: an int accumulator `a` (every bit written since the last flush
behind a leading sentinel 1 bit), the message and the `Writer`; each returns the new accumulator
(`a = (a << k) | bits`). At the top of every repeated-element loop and after long values the accumulator is
flushed to the writer's byte chunks once it exceeds `Writer.flush_at`, so a shift costs O(flush size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, cast

from .errors import ExiDecodeError, ExiEncodeError, ExiError, ExiLimitError, ExiTruncatedError, ExiUnsupportedError

MAX_UINT_OCTETS = 40  # 280 bits: more than any integer in the V2G schemas (X509 serial numbers are <= 160)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ExiLimits:
    """What the decoder accepts beyond the schema's own facets; exceeding one raises `ExiLimitError`.

    Defaults:
    - `max_message_bytes` 65,536 (the V2GTP default payload limit);
    - `max_depth` 32 nested complex elements (the deepest V2G message nests 9);
    - `max_string_chars` 16,384 and `max_binary_bytes` 65,536, for values whose schema type sets no
      maxLength (a value with a maxLength facet is held to the facet instead);
    - `max_array_items` 1,024, for elements with maxOccurs="unbounded" (bounded ones are held to their
      maxOccurs by the grammar).
    """

    max_message_bytes: int = 65_536
    max_depth: int = 32
    max_string_chars: int = 16_384
    max_binary_bytes: int = 65_536
    max_array_items: int = 1_024

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_depth", "max_string_chars", "max_binary_bytes", "max_array_items"):
            value = getattr(self, name)
            if value.__class__ is not int or value < 1:
                raise ValueError(f"ExiLimits.{name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = ExiLimits()


class _New(Protocol):
    def __call__(self, cls: type[_T], /) -> _T: ...


# decoders fill every field themselves: build messages without running __init__
new = cast(_New, object.__new__)


def nbits(count: int) -> int:
    """Width of an n-bit unsigned integer that can hold `count` distinct values."""
    return (count - 1).bit_length() if count > 1 else 0


class StringTable:
    """EXI value partitions (EXI 1.0 section 7.3): a global one and one per element/attribute qname."""

    __slots__ = ("global_values", "global_index", "local_values", "local_index")

    def __init__(self) -> None:
        self.global_values: list[str] = []
        self.global_index: dict[str, int] = {}
        self.local_values: dict[str, list[str]] = {}
        self.local_index: dict[str, dict[str, int]] = {}

    def add(self, key: str, value: str) -> None:
        if value in self.global_index:
            return
        self.global_index[value] = len(self.global_values)
        self.global_values.append(value)
        values = self.local_values.setdefault(key, [])
        self.local_index.setdefault(key, {})[value] = len(values)
        values.append(value)


class Reader:
    """The decoding context of one stream: its bytes, the current window (`v`, `n`, `lim`), the string table
    and the limits. `refills` counts re-basings (tests read it)."""

    REBASE_BITS: ClassVar[int] = 1_024  # how far p may run past the window's start before a checkpoint re-bases
    SLACK_BITS: ClassVar[int] = 4_096  # bits a checkpoint leaves after p, unless told more (see `slack`)

    __slots__ = ("data", "end", "v", "n", "lim", "slack", "strings", "limits", "refills")

    def __init__(self, data: bytes, limits: ExiLimits = DEFAULT_LIMITS, slack: int = 0) -> None:
        """`slack`: the bits a checkpoint leaves after p (default SLACK_BITS); a path that reads more between
        two checkpoints runs past the window, and `stack.exi.codec` decodes again with the slack the generator
        proved enough for the schema (its module's WINDOW_BITS)."""
        self.data = data
        self.end = len(data) * 8
        self.strings = StringTable()
        self.limits = limits
        self.refills = 0
        self.slack = slack or self.SLACK_BITS
        stop = ((self.REBASE_BITS + self.slack) >> 3) + 1  # the window at bit 0, as refill(0) would set it
        self.v = int.from_bytes(data[:stop], "big")
        self.n = min(stop, len(data)) * 8
        self.lim = self.REBASE_BITS

    def refill(self, p: int) -> tuple[int, int]:
        """Re-base the window at the byte holding bit `p`; returns the new (v, n)."""
        start = p >> 3
        stop = start + ((self.REBASE_BITS + self.slack) >> 3) + 1
        self.v = int.from_bytes(self.data[start:stop], "big")
        self.n = min(stop, len(self.data)) * 8
        self.lim = p + self.REBASE_BITS
        self.refills += 1
        return self.v, self.n

    def bits(self, p: int, width: int) -> int:
        """`width` bits at `p` straight from the bytes, in O(width) (for long values); p + width <= end."""
        start = p >> 3
        stop = (p + width + 7) >> 3
        tail = stop * 8 - p - width
        return (int.from_bytes(self.data[start:stop], "big") >> tail) & ((1 << width) - 1)


def r_uint(v: int, n: int, p: int, max_octets: int | None = None) -> tuple[int, int]:
    """Unsigned Integer (EXI 7.1.6): 7-bit groups, least significant first."""
    limit = max_octets or MAX_UINT_OCTETS
    result = shift = 0
    for _ in range(limit):
        p += 8
        octet = (v >> (n - p)) & 0xFF  # past the end: negative shift, reported as truncation
        result |= (octet & 0x7F) << shift
        if octet < 0x80:
            return result, p
        shift += 7
    raise ExiLimitError(f"unsigned integer longer than {limit} octets", bit_offset=p)


def r_sint(v: int, n: int, p: int, max_octets: int | None = None) -> tuple[int, int]:
    """Integer (EXI 7.1.5): sign bit, then the magnitude (minus one when negative)."""
    negative = (v >> (n - p - 1)) & 1  # past the window: negative shift, as every read
    magnitude, p = r_uint(v, n, p + 1, max_octets)
    return (-magnitude - 1 if negative else magnitude), p


def r_string(r: Reader, v: int, n: int, p: int, key: str, max_length: int | None) -> tuple[str, int]:
    """String value (EXI 7.1.10 and 7.3.3): local hit, global hit, or literal of length + 2.

    A hit costs O(1). A literal is read from the window when it lies inside it, else from the bytes (the
    caller then re-bases); either way in O(length).
    """
    start = p
    code, p = r_uint(v, n, p, 5)
    table = r.strings
    if code < 2:
        values = table.local_values.get(key, ()) if code == 0 else table.global_values
        which = "local" if code == 0 else "global"
        if not values:
            raise ExiDecodeError(f"{which} string-table hit on an empty partition", bit_offset=start)
        width = nbits(len(values))
        index = (v >> (n - p - width)) & ((1 << width) - 1)
        if index >= len(values):
            raise ExiDecodeError(f"{which} string-table index {index} out of range", bit_offset=start)
        return values[index], p + width
    length = code - 2
    limit = max_length if max_length is not None else r.limits.max_string_chars
    if length > limit:
        raise ExiLimitError(f"string of {length} characters, at most {limit} allowed", bit_offset=start)
    width = 8 * length
    if width > r.end - p:
        raise ExiTruncatedError(f"string of {length} characters runs past the end", bit_offset=start)
    inside = p + width <= n  # in the window, or (a long literal) straight from the bytes
    octets = (v >> (n - p - width)) & ((1 << width) - 1) if inside else r.bits(p, width)
    raw = octets.to_bytes(length, "big")
    if raw.isascii():  # every character one octet: the common case
        value = raw.decode("ascii")
        p += width
    else:
        value, p = _r_chars(r, p, length)
    if length:
        table.add(key, value)
    return value, p


def _r_chars(r: Reader, p: int, length: int) -> tuple[str, int]:
    """Characters as code points (each an Unsigned Integer of up to 3 octets), through a window of their own."""
    chars = []
    v = n = 0
    lim = -1
    for _ in range(length):
        if p > lim:
            width = min(r.end - p, _CHARS_WINDOW_BITS)
            v, n, lim = r.bits(p, width), p + width, p + width - 24
        cp, p = r_uint(v, n, p, 3)
        if cp > 0x10FFFF:
            raise ExiDecodeError(f"code point {cp:#x} out of range", bit_offset=p)
        chars.append(chr(cp))
    return "".join(chars), p


_CHARS_WINDOW_BITS = 8_192


def r_binary(r: Reader, v: int, n: int, p: int, max_length: int | None) -> tuple[bytes, int]:
    """Binary value (EXI 7.1.1): length, then the octets (from the window or, when longer, from the bytes)."""
    start = p
    length, p = r_uint(v, n, p, 5)
    if max_length is not None and length > max_length:
        raise ExiLimitError(f"binary of {length} bytes, at most {max_length} allowed", bit_offset=start)
    width = 8 * length
    if width > r.end - p:
        raise ExiTruncatedError(f"binary of {length} bytes runs past the end", bit_offset=start)
    if max_length is None and length > r.limits.max_binary_bytes:
        limit = r.limits.max_binary_bytes
        raise ExiLimitError(f"binary of {length} bytes, at most {limit} allowed", bit_offset=start)
    if p + width <= n:
        return ((v >> (n - p - width)) & ((1 << width) - 1)).to_bytes(length, "big"), p + width
    return r.bits(p, width).to_bytes(length, "big"), p + width


def too_many(p: int, what: str, limit: int) -> ExiLimitError:
    return ExiLimitError(f"more than {limit} {what} items (ExiLimits.max_array_items)", bit_offset=p)


def unexpected(p: int, width: int, what: str) -> ExiError:
    return ExiUnsupportedError(f"second-level event code where {what} was expected", bit_offset=p)


def out_of_range(p: int, value: int, lo: int | None, hi: int | None) -> ExiError:
    return ExiLimitError(f"value {value} outside [{lo}, {hi}]", bit_offset=p)


def bad_event(p: int, fid: int, expected: str) -> ExiDecodeError:
    if fid == -3:
        return ExiUnsupportedError(
            f"second-level event (schema deviation, xsi:type or xsi:nil) where {expected} was expected", bit_offset=p
        )
    if fid == -2:
        return ExiUnsupportedError(f"wildcard or mixed content in {expected}", bit_offset=p)
    what = "end of element" if fid == -1 else f"field #{fid}"
    return ExiDecodeError(f"{what} found where {expected} was expected", bit_offset=p)


def missing(p: int, what: str) -> ExiDecodeError:
    return ExiDecodeError(f"{what} missing", bit_offset=p)


# -- encoding ----------------------------------------------------------------------------------------
class Writer:
    """The encoding context of one stream: the string table (None: not used) and the bytes flushed so far."""

    flush_at: ClassVar[int] = 1 << 2_048  # flush an accumulator above this (more than 2,048 bits)

    __slots__ = ("st", "chunks")

    def __init__(self, string_table: bool = False) -> None:
        self.st = StringTable() if string_table else None
        self.chunks: list[bytes] = []

    def flush(self, a: int) -> int:
        """Move the whole octets of accumulator `a` to the chunks; returns the accumulator of the rest."""
        size = a.bit_length() - 1
        keep = size & 7
        whole = size - keep
        self.chunks.append(((a >> keep) ^ (1 << whole)).to_bytes(whole >> 3, "big"))
        return (1 << keep) | (a & ((1 << keep) - 1))

    def finish(self, a: int) -> bytes:
        """Every byte written: the chunks, then `a` padded to a whole byte."""
        if not self.chunks:
            return to_bytes(a)
        return b"".join([*self.chunks, to_bytes(a)])


def e_uint(a: int, v: int) -> int:
    if v < 0:
        raise ExiEncodeError(f"negative value {v} for an unsigned integer")
    while v > 0x7F:
        a = (a << 8) | 0x80 | (v & 0x7F)
        v >>= 7
    return (a << 8) | v


def e_int(a: int, v: int) -> int:
    if v < 0:
        return e_uint((a << 1) | 1, -v - 1)
    return e_uint(a << 1, v)


def check_range(v: object, lo: int | None, hi: int | None, name: str) -> int:
    if not isinstance(v, int):
        raise ExiEncodeError(f"{name}: integer expected, got {type(v).__name__}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ExiEncodeError(f"{name}: value {v} outside [{lo}, {hi}]")
    return v


def range_error(name: str, value: object, lo: int | None, hi: int | None) -> ExiEncodeError:
    if not isinstance(value, int):
        return ExiEncodeError(f"{name}: integer expected, got {type(value).__name__}")
    return ExiEncodeError(f"{name}: value {value} outside [{lo}, {hi}]")


def type_error(name: str, expected: str, value: object) -> ExiEncodeError:
    return ExiEncodeError(f"{name}: {expected} expected, got {type(value).__name__}")


def e_str(a: int, v: object, w: Writer, key: str, max_length: int | None, name: str) -> int:
    if not isinstance(v, str):
        raise ExiEncodeError(f"{name}: string expected, got {type(v).__name__}")
    if max_length is not None and len(v) > max_length:
        raise ExiEncodeError(f"{name}: {len(v)} characters, at most {max_length} allowed")
    st = w.st
    if st is not None:
        local = st.local_index.get(key)
        if local is not None and v in local:
            return (e_uint(a, 0) << nbits(len(local))) | local[v]
        index = st.global_index.get(v)
        if index is not None:
            return (e_uint(a, 1) << nbits(len(st.global_values))) | index
        if v:
            st.add(key, v)
    a = e_uint(a, len(v) + 2)
    if v.isascii():  # one octet per character: one shift
        a = (a << (8 * len(v))) | int.from_bytes(v.encode("ascii"), "big")
    else:
        for ch in v:
            cp = ord(ch)
            a = (a << 8) | cp if cp < 0x80 else e_uint(a, cp)
            if a > w.flush_at:
                a = w.flush(a)
    return w.flush(a) if a > w.flush_at else a


def e_bin(a: int, v: object, w: Writer, min_length: int | None, max_length: int | None, name: str) -> int:
    if not isinstance(v, bytes | bytearray):
        raise ExiEncodeError(f"{name}: bytes expected, got {type(v).__name__}")
    n = len(v)
    if (max_length is not None and n > max_length) or (min_length is not None and n < min_length):
        raise ExiEncodeError(f"{name}: {n} bytes, allowed {min_length or 0}..{max_length}")
    a = (e_uint(a, n) << (8 * n)) | int.from_bytes(v, "big")
    return w.flush(a) if a > w.flush_at else a


def to_bytes(a: int) -> bytes:
    """Pad the accumulated bits to a whole byte and drop the sentinel bit."""
    n = a.bit_length() - 1
    pad = -n % 8
    total = (n + pad) // 8
    return ((a << pad) ^ (1 << (n + pad))).to_bytes(total, "big")


def enum_index(index: dict[_T, int], value: object, name: str) -> int:
    try:
        return index[cast(_T, value)]
    except (KeyError, TypeError):
        raise ExiEncodeError(f"{name}: {value!r} is not one of {list(index)}") from None


# what the generated modules' root tables hold
Encoder = Callable[[int, Any, Writer], int]
Decoder = Callable[[Reader, int, int, int], tuple[Any, int]]

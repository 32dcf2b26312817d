"""Bit-level primitives the generated codecs call: a bit reader, encoders over an int accumulator, and the
EXI value string table.

Encoders work on a Python int `a` that holds every bit written so far behind a leading sentinel 1 bit;
each primitive returns the new accumulator. That keeps the generated code free of method calls for the
common case (`a = (a << n) | bits`).
"""

from __future__ import annotations

from .errors import ExiDecodeError, ExiEncodeError, ExiError, ExiLimitError, ExiTruncatedError, ExiUnsupportedError

MAX_UINT_OCTETS = 40  # 280 bits: more than any integer in the V2G schemas (X509 serial numbers are <= 160)
MAX_STRING_CHARS = 1 << 16  # for strings without a maxLength facet


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
    """The decoding context of one stream: the bits as an int, their count and the string table.

    Generated decoders take (reader, value, size, pos) and return (message, pos); they read bits inline as
    `(value >> (size - pos)) & mask`, so a read past the end shows up as a negative shift (ValueError), which
    `stack.exi.codec` reports as truncation.
    """

    __slots__ = ("value", "size", "strings")

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.strings = StringTable()


def _bits(v: int, n: int, p: int, width: int) -> int:
    if p + width > n:
        raise ExiTruncatedError(f"stream ends, {width} more bits needed", bit_offset=p)
    return (v >> (n - p - width)) & ((1 << width) - 1)


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
    negative = _bits(v, n, p, 1)
    magnitude, p = r_uint(v, n, p + 1, max_octets)
    return (-magnitude - 1 if negative else magnitude), p


def r_string(r: Reader, v: int, n: int, p: int, key: str, max_length: int | None) -> tuple[str, int]:
    """String value (EXI 7.1.10 and 7.3.3): local hit, global hit, or literal of length + 2."""
    start = p
    code, p = r_uint(v, n, p, 5)
    table = r.strings
    if code < 2:
        values = table.local_values.get(key, ()) if code == 0 else table.global_values
        which = "local" if code == 0 else "global"
        if not values:
            raise ExiDecodeError(f"{which} string-table hit on an empty partition", bit_offset=start)
        width = nbits(len(values))
        index = _bits(v, n, p, width)
        if index >= len(values):
            raise ExiDecodeError(f"{which} string-table index {index} out of range", bit_offset=start)
        return values[index], p + width
    length = code - 2
    limit = max_length if max_length is not None else MAX_STRING_CHARS
    if length > limit:
        raise ExiLimitError(f"string of {length} characters, at most {limit} allowed", bit_offset=start)
    if length * 8 > n - p:
        raise ExiTruncatedError(f"string of {length} characters runs past the end", bit_offset=start)
    raw = ((v >> (n - p - 8 * length)) & ((1 << (8 * length)) - 1)).to_bytes(length, "big")
    if raw.isascii():  # every character one octet: the common case
        value = raw.decode("ascii")
        p += 8 * length
    else:
        value, p = _r_chars(v, n, p, length)
    if length:
        table.add(key, value)
    return value, p


def _r_chars(v: int, n: int, p: int, length: int) -> tuple[str, int]:
    chars = []
    for _ in range(length):
        cp, p = r_uint(v, n, p, 3)
        if cp > 0x10FFFF:
            raise ExiDecodeError(f"code point {cp:#x} out of range", bit_offset=p)
        chars.append(chr(cp))
    return "".join(chars), p


def r_binary(v: int, n: int, p: int, max_length: int | None) -> tuple[bytes, int]:
    """Binary value (EXI 7.1.1): length, then the octets."""
    start = p
    length, p = r_uint(v, n, p, 5)
    if max_length is not None and length > max_length:
        raise ExiLimitError(f"binary of {length} bytes, at most {max_length} allowed", bit_offset=start)
    if length * 8 > n - p:
        raise ExiTruncatedError(f"binary of {length} bytes runs past the end", bit_offset=start)
    return _bits(v, n, p, length * 8).to_bytes(length, "big"), p + length * 8


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


# -- encoding ----------------------------------------------------------------------------------------
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


def check_range(v: int, lo: int | None, hi: int | None, name: str) -> int:
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


def e_str(a: int, v: str, st: StringTable | None, key: str, max_length: int | None, name: str) -> int:
    if not isinstance(v, str):
        raise ExiEncodeError(f"{name}: string expected, got {type(v).__name__}")
    if max_length is not None and len(v) > max_length:
        raise ExiEncodeError(f"{name}: {len(v)} characters, at most {max_length} allowed")
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
    for ch in v:
        cp = ord(ch)
        a = (a << 8) | cp if cp < 0x80 else e_uint(a, cp)
    return a


def e_bin(a: int, v: bytes, min_length: int | None, max_length: int | None, name: str) -> int:
    if not isinstance(v, bytes | bytearray):
        raise ExiEncodeError(f"{name}: bytes expected, got {type(v).__name__}")
    n = len(v)
    if (max_length is not None and n > max_length) or (min_length is not None and n < min_length):
        raise ExiEncodeError(f"{name}: {n} bytes, allowed {min_length or 0}..{max_length}")
    return (e_uint(a, n) << (8 * n)) | int.from_bytes(v, "big")


def to_bytes(a: int) -> bytes:
    """Pad the accumulated bits to a whole byte and drop the sentinel bit."""
    n = a.bit_length() - 1
    pad = -n % 8
    total = (n + pad) // 8
    return ((a << pad) ^ (1 << (n + pad))).to_bytes(total, "big")


def enum_index(index: dict, value, name: str) -> int:
    try:
        return index[value]
    except (KeyError, TypeError):
        raise ExiEncodeError(f"{name}: {value!r} is not one of {list(index)}") from None

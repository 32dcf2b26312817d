"""Bit-level primitives the generated codecs call: a bit reader, encoders over an int accumulator, and the
EXI value string table.

Encoders work on a Python int `a` that holds every bit written so far behind a leading sentinel 1 bit;
each primitive returns the new accumulator. That keeps the generated code free of method calls for the
common case (`a = (a << n) | bits`).
"""

from __future__ import annotations

from .errors import ExiDecodeError, ExiEncodeError, ExiLimitError, ExiTruncatedError, ExiUnsupportedError

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
    """Reads a bit-packed EXI stream; every read is bounds-checked."""

    __slots__ = ("value", "size", "pos", "strings")

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.size = len(data) * 8
        self.pos = 0
        self.strings = StringTable()

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self.size:
            raise ExiTruncatedError(f"stream ends, {n} more bits needed", bit_offset=self.pos)
        self.pos = end
        return (self.value >> (self.size - end)) & ((1 << n) - 1)

    def uint(self, max_octets: int = MAX_UINT_OCTETS) -> int:
        result = shift = 0
        for _ in range(max_octets):
            octet = self.read(8)
            result |= (octet & 0x7F) << shift
            if octet < 0x80:
                return result
            shift += 7
        raise ExiLimitError(f"unsigned integer longer than {max_octets} octets", bit_offset=self.pos)

    def sint(self, max_octets: int = MAX_UINT_OCTETS) -> int:
        negative = self.read(1)
        magnitude = self.uint(max_octets)
        return -magnitude - 1 if negative else magnitude

    def ranged(self, value: int, lo: int | None, hi: int | None) -> int:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ExiLimitError(f"value {value} outside [{lo}, {hi}]", bit_offset=self.pos)
        return value

    def string(self, key: str, max_length: int | None) -> str:
        start = self.pos
        code = self.uint(5)
        table = self.strings
        if code == 0:
            values = table.local_values.get(key, ())
            if not values:
                raise ExiDecodeError("local string-table hit on an empty partition", bit_offset=start)
            index = self.read(nbits(len(values)))
            if index >= len(values):
                raise ExiDecodeError(f"local string-table index {index} out of range", bit_offset=start)
            return values[index]
        if code == 1:
            values = table.global_values
            if not values:
                raise ExiDecodeError("global string-table hit on an empty table", bit_offset=start)
            index = self.read(nbits(len(values)))
            if index >= len(values):
                raise ExiDecodeError(f"global string-table index {index} out of range", bit_offset=start)
            return values[index]
        length = code - 2
        limit = max_length if max_length is not None else MAX_STRING_CHARS
        if length > limit:
            raise ExiLimitError(f"string of {length} characters, at most {limit} allowed", bit_offset=start)
        if length * 8 > self.size - self.pos:
            raise ExiTruncatedError(f"string of {length} characters runs past the end", bit_offset=start)
        chars = []
        for _ in range(length):
            cp = self.uint(3)
            if cp > 0x10FFFF:
                raise ExiDecodeError(f"code point {cp:#x} out of range", bit_offset=self.pos)
            chars.append(chr(cp))
        value = "".join(chars)
        if length:
            table.add(key, value)
        return value

    def binary(self, max_length: int | None) -> bytes:
        start = self.pos
        length = self.uint(5)
        if max_length is not None and length > max_length:
            raise ExiLimitError(f"binary of {length} bytes, at most {max_length} allowed", bit_offset=start)
        if length * 8 > self.size - self.pos:
            raise ExiTruncatedError(f"binary of {length} bytes runs past the end", bit_offset=start)
        return self.read(length * 8).to_bytes(length, "big")

    def step(self, table, state: int):
        """Read the event code of `state`; returns (field id, member index, next state)."""
        width, prods = table[state]
        code = self.read(width)
        if code >= len(prods):
            raise ExiUnsupportedError(
                "second-level event (schema deviation, xsi:type or xsi:nil) is not supported",
                bit_offset=self.pos - width,
            )
        return prods[code]

    def expect(self, n: int, bits: int, what: str) -> None:
        got = self.read(n)
        if got != bits:
            raise ExiUnsupportedError(
                f"unexpected event code {got:0{n}b} where {what} was expected (second-level event)",
                bit_offset=self.pos - n,
            )


def bad_event(reader: Reader, fid: int, expected: str) -> ExiDecodeError:
    what = "end of element" if fid < 0 else f"field #{fid}"
    return ExiDecodeError(f"{what} found where {expected} was expected", bit_offset=reader.pos)


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


def enum_member(reader: Reader, members: tuple, n: int):
    index = reader.read(n)
    if index >= len(members):
        raise ExiDecodeError(
            f"enumeration index {index} out of range ({len(members)} values)", bit_offset=reader.pos - n
        )
    return members[index]


def enum_index(index: dict, value, name: str) -> int:
    try:
        return index[value]
    except (KeyError, TypeError):
        raise ExiEncodeError(f"{name}: {value!r} is not one of {list(index)}") from None

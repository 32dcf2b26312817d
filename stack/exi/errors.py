"""Typed errors of the EXI codec: every failure on bad input or a bad message is one of these."""

from __future__ import annotations


class ExiError(ValueError):
    """Base of all codec errors. `bit_offset` and `element` say where it happened, when known."""

    def __init__(self, message: str, *, bit_offset: int | None = None, element: str | None = None) -> None:
        self.reason = message
        self.bit_offset = bit_offset
        self.element = element
        where = []
        if element:
            where.append(f"in {element}")
        if bit_offset is not None:
            where.append(f"at bit {bit_offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)


class ExiDecodeError(ExiError):
    """The stream does not follow the grammar (bad event code, bad header, out-of-range value)."""


class ExiTruncatedError(ExiDecodeError):
    """The stream ended before the document did."""


class ExiLimitError(ExiDecodeError):
    """A length, count or integer exceeds what the schema or the codec allows."""


class ExiUnsupportedError(ExiDecodeError):
    """A legal EXI construct this codec does not handle (second-level events, wildcard content)."""


class ExiEncodeError(ExiError):
    """The message cannot be encoded: missing or extra field, wrong type, value outside the schema."""

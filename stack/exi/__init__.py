"""Schema-informed EXI codec for ISO 15118-20, AppProtocol and xmldsig, generated from the XSDs.

Stable API: `encode(msg, *, string_table=False) -> bytes`, `decode(data, schema, *, limits=DEFAULT_LIMITS) ->
msg`, `to_xml(msg) -> str`, `from_xml(text) -> msg`, the fragment variants, `ExiLimits` (what a stream may ask
for; the defaults are in its docstring) and `ExiError`. Decoding and encoding cost time linear in the size.
"""

from stack.schemas import SCHEMA_IDS

from .codec import decode, decode_element, decode_fragment, encode, encode_fragment
from .errors import (
    ExiDecodeError,
    ExiEncodeError,
    ExiError,
    ExiLimitError,
    ExiTruncatedError,
    ExiUnsupportedError,
)
from .runtime import DEFAULT_LIMITS, ExiLimits
from .xml import XmlError, from_xml, to_xml, validate_xml

__all__ = [
    "DEFAULT_LIMITS",
    "SCHEMA_IDS",
    "ExiDecodeError",
    "ExiEncodeError",
    "ExiError",
    "ExiLimitError",
    "ExiLimits",
    "ExiTruncatedError",
    "ExiUnsupportedError",
    "XmlError",
    "decode",
    "decode_element",
    "decode_fragment",
    "encode",
    "encode_fragment",
    "from_xml",
    "to_xml",
    "validate_xml",
]

"""`ExiLimits`: each limit refuses a stream just over it with `ExiLimitError` and accepts one at it; bad
settings are refused; nothing but an `ExiError` leaves the decoder or the encoder."""

from __future__ import annotations

import dataclasses

import pytest

from stack import exi
from stack.exi.codec import codec_module
from stack.exi.runtime import Writer, e_str
from tools.bench.samples import dc_charge_loop_req, session_setup_req, string_table_frame

# the longest string of `signed()`: SignatureMethod/@Algorithm, an anyURI without maxLength
ALGORITHM = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"


def signed(references: int = 3, digest: bytes = bytes(32)) -> bytes:
    msg = string_table_frame(references)
    assert msg.header.signature is not None
    assert msg.header.signature.signed_info.signature_method.algorithm == ALGORITHM
    for ref in msg.header.signature.signed_info.reference:
        ref.digest_value = digest  # DigestValue: base64Binary, no maxLength
    return exi.encode(msg)


def limits(**changes: int) -> exi.ExiLimits:
    return dataclasses.replace(exi.DEFAULT_LIMITS, **changes)


def test_the_defaults_are_documented_and_safe() -> None:
    d = exi.DEFAULT_LIMITS
    assert (d.max_message_bytes, d.max_depth, d.max_string_chars, d.max_binary_bytes, d.max_array_items) == (
        65_536,
        32,
        16_384,
        65_536,
        1_024,
    )
    for name in ("max_message_bytes", "max_depth", "max_string_chars", "max_binary_bytes", "max_array_items"):
        assert f"`{name}`" in (exi.ExiLimits.__doc__ or "")


def test_message_size() -> None:
    data = exi.encode(dc_charge_loop_req())
    assert exi.decode(data, "iso20-dc", limits=limits(max_message_bytes=len(data))) == dc_charge_loop_req()
    with pytest.raises(exi.ExiLimitError, match=f"message of {len(data)} bytes, at most {len(data) - 1}"):
        exi.decode(data, "iso20-dc", limits=limits(max_message_bytes=len(data) - 1))


def test_nesting_depth() -> None:
    """DC_ChargeLoopReq > BPT_Dynamic_DC_CLReqControlMode > RationalNumber: three complex levels."""
    data = exi.encode(dc_charge_loop_req())
    assert codec_module("iso20-dc").MAX_DEPTH > 3
    assert exi.decode(data, "iso20-dc", limits=limits(max_depth=3)) == dc_charge_loop_req()
    with pytest.raises(exi.ExiLimitError, match="nested deeper than 2"):
        exi.decode(data, "iso20-dc", limits=limits(max_depth=2))


def test_string_length_without_a_facet() -> None:
    data = signed()
    assert exi.decode(data, "iso20-common", limits=limits(max_string_chars=len(ALGORITHM)))
    with pytest.raises(exi.ExiLimitError, match=f"string of {len(ALGORITHM)} characters"):
        exi.decode(data, "iso20-common", limits=limits(max_string_chars=len(ALGORITHM) - 1))


def test_binary_length_without_a_facet() -> None:
    data = signed(digest=bytes(100))
    assert exi.decode(data, "iso20-common", limits=limits(max_binary_bytes=100))
    with pytest.raises(exi.ExiLimitError, match="binary of 100 bytes, at most 99"):
        exi.decode(data, "iso20-common", limits=limits(max_binary_bytes=99))


def test_unbounded_list_length() -> None:
    data = signed(references=5)
    msg = exi.decode(data, "iso20-common", limits=limits(max_array_items=5))
    assert isinstance(msg, type(string_table_frame(1)))
    with pytest.raises(exi.ExiLimitError, match="more than 4 SignedInfo.reference items"):
        exi.decode(data, "iso20-common", limits=limits(max_array_items=4))


def test_a_value_with_a_facet_is_held_to_the_facet_not_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = session_setup_req()  # EVCCID: 17 characters, maxLength 255
    assert exi.decode(exi.encode(msg), "iso20-common", limits=limits(max_string_chars=5)) == msg
    mod = codec_module("iso20-common")

    def lenient(a: int, v: object, w: Writer, key: str, max_length: int | None, name: str) -> int:
        return e_str(a, v, w, key, None, name)  # an encoder that ignores the facet, as a bad peer's would

    monkeypatch.setattr(mod, "e_str", lenient)
    data = exi.encode(dataclasses.replace(msg, evccid="W" * 256))
    with pytest.raises(exi.ExiLimitError, match="string of 256 characters, at most 255"):
        exi.decode(data, "iso20-common", limits=limits(max_string_chars=100_000))


@pytest.mark.parametrize("value", [0, -1, 1.5, "10", True, None])
def test_bad_settings_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="max_depth must be a positive integer"):
        exi.ExiLimits(max_depth=value)  # type: ignore[arg-type]


def test_limits_of_the_wrong_type() -> None:
    with pytest.raises(exi.ExiError, match="ExiLimits expected"):
        exi.decode(exi.encode(dc_charge_loop_req()), "iso20-dc", limits={"max_depth": 3})  # type: ignore[arg-type]


def test_an_unforeseen_exception_inside_the_decoder_becomes_an_exi_error(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = codec_module("iso20-dc")

    def broken(*args: object) -> tuple[object, int]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(mod, "_d_dc_BptDynamicDcClReqControlMode", broken)
    monkeypatch.setattr(mod, "_R_dc_DcChargeLoopReq_4", (broken,) * 5)
    with pytest.raises(exi.ExiDecodeError, match="ZeroDivisionError: a bug"):
        exi.decode(exi.encode(dc_charge_loop_req()), "iso20-dc")


def test_an_unforeseen_exception_inside_the_encoder_becomes_an_exi_error(monkeypatch: pytest.MonkeyPatch) -> None:
    mod = codec_module("iso20-dc")

    def broken(*args: object) -> int:
        raise MemoryError("out of memory")

    cls = type(dc_charge_loop_req().cl_req_control_mode)
    code, _ = mod._S_dc_DcChargeLoopReq_4[cls]
    monkeypatch.setitem(mod._S_dc_DcChargeLoopReq_4, cls, (code, broken))
    with pytest.raises(exi.ExiEncodeError, match="MemoryError: out of memory"):
        exi.encode(dc_charge_loop_req())

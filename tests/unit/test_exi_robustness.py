"""Robustness of the EXI codec: hostile input only ever raises `ExiError`, bad messages raise `ExiEncodeError`.

Decoding side: truncations, bit flips and byte mutations of real and generated streams, random bytes, hand-made
hostile lengths and event codes, the wrong schema id and non-bytes arguments must raise an `ExiError` (never
IndexError, KeyError, RecursionError, MemoryError, ...) or decode to a message, and must not hang: every call
runs under a SIGALRM hang guard (a guard, not a speed assertion). When a mutated stream does decode, encoding
the result either works (and decodes back to the same message) or raises `ExiEncodeError`.

Encoding side: a missing required field, a value of the wrong type, out-of-range integers, too-long strings,
binaries and lists, two alternatives of one choice and the wrong class in a substitution group raise
`ExiEncodeError` naming the field (swept over every field of every message type).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stack import exi
from stack.messages import app_protocol as ap
from stack.messages import iso20_ac as ac
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages import xmldsig as ds
from stack.messages._schema import FieldSpec, Simple
from tests.conftest import load_vectors, vectors_missing
from tests.prerequisites import require, requires
from tests.strategies import (
    ROOT_MESSAGES,
    codec_module,
    element_names,
    message_strategy,
    minimal_instance,
    minimal_value,
    usable_members,
)

EXAMPLES = int(os.environ.get("MCS_V2G_HYPOTHESIS_EXAMPLES", "15"))
FUZZ = settings(
    max_examples=EXAMPLES * 10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HANG_SECONDS = float(os.environ.get("MCS_V2G_HANG_SECONDS", "5"))

# every record once (the same bytes appear in several sources)
VECTORS = list({(v["schema_id"], v["hex"]): v for v in load_vectors()}.values())
needs_vectors = requires("vectors", vectors_missing(VECTORS))
# messages whose class is the type of one element only (the others need exi.encode(..., element=))
ENCODABLE = [(s, c) for s, c in ROOT_MESSAGES if len(element_names(s, c)) == 1]
SCHEMAS = list(exi.SCHEMA_IDS)


# -- the hang guard and the decoding checks ---------------------------------------------------------------
class _Hang(BaseException):  # BaseException: the codec's `except Exception`-style wrappers cannot swallow it
    pass


@contextmanager
def hang_guard(what: str | Callable[[], str]) -> Iterator[None]:
    """Fail the test (clearly) when the block runs longer than HANG_SECONDS; a no-op without SIGALRM."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise _Hang

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        yield
    except _Hang:
        label = what if isinstance(what, str) else what()
        pytest.fail(f"hang guard: {label} did not return within {HANG_SECONDS} s", pytrace=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def decode_or_error(data: object, schema: str, *, fragment: bool = False) -> tuple[object, Exception | None]:
    """(message, None) when `data` decodes, (None, the ExiError) when it does not; anything else fails."""
    decode = exi.decode_fragment if fragment else exi.decode
    with hang_guard(lambda: f"decode({_show(data)}, {schema!r})"):
        try:
            return decode(data, schema), None
        except exi.ExiError as exc:
            return None, exc
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"decode({_show(data)}, {schema!r}) raised {type(exc).__name__}: {exc}", pytrace=False)
    raise AssertionError("unreachable")


def reencode(msg: object, schema: str, *, fragment: bool = False) -> None:
    """A message decoded from a hostile stream encodes, or raises ExiEncodeError; what encodes decodes back."""
    encode = exi.encode_fragment if fragment else exi.encode
    with hang_guard(lambda: f"encode({msg!r})"):
        try:
            data = encode(msg, schema=schema)
        except exi.ExiEncodeError:
            return
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"encode of a decoded message raised {type(exc).__name__}: {exc}\n{msg!r}", pytrace=False)
    back, error = decode_or_error(data, schema, fragment=fragment)
    assert error is None, f"re-encoded message does not decode: {error}\n{data.hex()}\n{msg!r}"
    assert back == msg, data.hex()


def check_hostile(data: object, schema: str, *, fragment: bool = False) -> Exception | None:
    msg, error = decode_or_error(data, schema, fragment=fragment)
    if msg is not None:
        reencode(msg, schema, fragment=fragment)
    return error


def walk(msg: object) -> Iterator[object]:
    yield msg
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        for item in value if isinstance(value, list) else [value]:
            if dataclasses.is_dataclass(item):
                yield from walk(item)


def _show(data: object) -> str:
    if isinstance(data, bytes | bytearray):
        text = bytes(data).hex()
        return f"bytes.fromhex({text[:400]!r}{'...' if len(text) > 400 else ''})"
    return repr(data)[:200]


def test_hang_guard_fires(monkeypatch: pytest.MonkeyPatch) -> None:
    require("sigalrm", None if hasattr(signal, "setitimer") else "no setitimer on this platform: no hang guard")
    monkeypatch.setitem(globals(), "HANG_SECONDS", 0.05)
    with (
        pytest.raises(pytest.fail.Exception, match="hang guard: a busy loop did not return"),
        hang_guard("a busy loop"),
    ):
        while True:
            pass


# -- sources of valid streams -----------------------------------------------------------------------------
@st.composite
def generated_message(draw: st.DrawFn) -> tuple[str, bytes, object]:
    """(schema, encoding, message) of a generated valid message, with or without the string table."""
    schema, cls = draw(st.sampled_from(ENCODABLE))
    msg = draw(message_strategy(cls))
    return schema, exi.encode(msg, schema=schema, string_table=draw(st.booleans())), msg


def generated_stream() -> st.SearchStrategy[tuple[str, bytes]]:
    return generated_message().map(lambda g: g[:2])


def valid_streams() -> st.SearchStrategy[tuple[str, bytes]]:
    sources = [generated_stream()]
    if VECTORS:
        sources.append(st.sampled_from([(v["schema_id"], bytes.fromhex(v["hex"])) for v in VECTORS]))
    return st.one_of(sources)


# -- (a) truncations --------------------------------------------------------------------------------------
def assert_prefixes_truncated(data: bytes, schema: str, cuts: range | list[int]) -> None:
    """Every strict prefix raises ExiTruncatedError (the empty one: 'empty stream')."""
    for k in cuts:
        error = check_hostile(data[:k], schema)
        if k == 0:
            assert isinstance(error, exi.ExiDecodeError)
        else:
            assert isinstance(error, exi.ExiTruncatedError), f"prefix of {k} bytes: {error!r}\n{data[:k].hex()}"


@needs_vectors
@pytest.mark.parametrize("schema", sorted({v["schema_id"] for v in VECTORS}) or ["no-vectors"])
def test_every_truncation_of_every_vector(schema: str) -> None:
    for rec in (v for v in VECTORS if v["schema_id"] == schema):
        data = bytes.fromhex(rec["hex"])
        assert_prefixes_truncated(data, schema, range(len(data)))


@FUZZ
@given(generated_message(), st.data())
def test_truncations_of_generated_messages(generated: tuple[str, bytes, object], data: st.DataObject) -> None:
    schema, encoded, msg = generated
    if len(encoded) <= 256:
        cuts: range | list[int] = range(len(encoded))
    else:  # long messages: the start, the end and some cuts in between
        middle = data.draw(st.lists(st.integers(0, len(encoded) - 1), max_size=16))
        cuts = sorted({*range(32), *range(len(encoded) - 32, len(encoded)), *middle})
    assert_prefixes_truncated(encoded, schema, cuts)


# -- (b) bit flips and byte mutations -----------------------------------------------------------------------
@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "flip", "set", "insert", "delete", "ones", "zeros"]))
        i = draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif not buf:
            continue
        elif op == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[i] = draw(st.integers(0, 255))
        elif op == "delete":
            del buf[i : i + draw(st.integers(1, 4))]
        else:  # a run of 1 or 0 bits: long continuation chains, large lengths, event codes past the grammar
            run = draw(st.integers(1, 16))
            buf[i : i + run] = (b"\xff" if op == "ones" else b"\x00") * len(buf[i : i + run])
    return bytes(buf)


@FUZZ
@given(valid_streams(), st.data())
def test_mutated_streams(stream: tuple[str, bytes], data: st.DataObject) -> None:
    schema, encoded = stream
    check_hostile(data.draw(mutations(encoded)), schema)


FRAGMENTS = [("xmldsig", ds.SignedInfo), ("iso20-common", ds.SignedInfo), ("iso20-common", cm.SignedInstallationData)]


@st.composite
def fragment_stream(draw: st.DrawFn) -> tuple[str, bytes]:
    schema, cls = draw(st.sampled_from(FRAGMENTS))
    return schema, exi.encode_fragment(draw(message_strategy(cls)), schema=schema)


@FUZZ
@given(fragment_stream(), st.data())
def test_mutated_fragments(stream: tuple[str, bytes], data: st.DataObject) -> None:
    schema, encoded = stream
    check_hostile(data.draw(mutations(encoded)), schema, fragment=True)
    check_hostile(encoded[: data.draw(st.integers(0, len(encoded) - 1))], schema, fragment=True)


@FUZZ
@given(valid_streams(), st.integers(min_value=0))
def test_single_bit_flips(stream: tuple[str, bytes], bit: int) -> None:
    schema, encoded = stream
    bit %= 8 * len(encoded)
    flipped = bytearray(encoded)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    check_hostile(bytes(flipped), schema)


@needs_vectors
def test_every_bit_flip_of_a_few_vectors() -> None:
    """Exhaustive single-bit flips of the shortest vector of each message type (a deterministic sweep)."""
    shortest: dict[tuple[str, str], bytes] = {}
    for v in VECTORS:
        data = bytes.fromhex(v["hex"])
        key = (v["schema_id"], v["message"])
        if key not in shortest or len(data) < len(shortest[key]):
            shortest[key] = data
    for (schema, _), data in sorted(shortest.items()):
        for bit in range(8 * len(data)):
            flipped = bytearray(data)
            flipped[bit // 8] ^= 0x80 >> (bit % 8)
            check_hostile(bytes(flipped), schema)


# -- (c) random bytes -------------------------------------------------------------------------------------
@FUZZ
@given(
    st.sampled_from(SCHEMAS),
    st.sampled_from([b"", b"\x80", b"$EXI\x80"]),
    st.binary(max_size=256),
    st.booleans(),
)
def test_random_bytes(schema: str, prefix: bytes, body: bytes, fragment: bool) -> None:
    check_hostile(prefix + body, schema, fragment=fragment)


# -- (d) hostile lengths, integers and event codes, patched into a known layout ---------------------------
def bits(data: bytes) -> str:
    return "".join(f"{b:08b}" for b in data)


def unbits(text: str) -> bytes:
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def uint_bits(value: int) -> str:
    """EXI Unsigned Integer: 7-bit groups, least significant first, high bit = more to come."""
    out = []
    while True:
        group, value = value & 0x7F, value >> 7
        out.append(f"{group | (0x80 if value else 0):08b}")
        if not value:
            return "".join(out)


def text_bits(text: str) -> str:
    return "".join(uint_bits(ord(ch)) for ch in text)


def patch(data: bytes, needle: str, offset: int, old: str, new: str) -> bytes:
    """Replace the bits `old` found at `offset` into the (unique) bit pattern `needle` with `new`."""
    stream = bits(data)
    at = stream.find(needle)
    assert at >= 0 and stream.find(needle, at + 1) < 0, "layout changed: the bit pattern is not unique"
    at += offset
    assert stream[at : at + len(old)] == old, "layout changed"
    return unbits(stream[:at] + new + stream[at + len(old) :])


EVCCID = "WMIV2GTEST0123456789"  # identifierType: maxLength 255
SESSION_ID = bytes.fromhex("A1B2C3D4E5F60718")  # sessionIDType: exactly 8 octets
TIME_STAMP = 0x0123456789ABCDEF  # unsignedLong: 9 octets as an EXI Unsigned Integer
SESSION_SETUP = cm.SessionSetupReq(header=ct.MessageHeader(session_id=SESSION_ID, time_stamp=TIME_STAMP), evccid=EVCCID)
EVCCID_BITS = uint_bits(len(EVCCID) + 2) + text_bits(EVCCID)
SESSION_ID_BITS = uint_bits(8) + bits(SESSION_ID)


def session_setup_bytes() -> bytes:
    data = exi.encode(SESSION_SETUP)
    assert exi.decode(data, "iso20-common") == SESSION_SETUP
    return data


@pytest.mark.parametrize(
    ("length", "error"),
    [
        (2**40, exi.ExiLimitError),  # the length itself longer than the codec reads
        (2**34, exi.ExiLimitError),  # fits, but far over maxLength 255
        (256, exi.ExiLimitError),  # just over maxLength
        (255, exi.ExiTruncatedError),  # allowed, but runs past the end of the stream
        (200, exi.ExiTruncatedError),
    ],
)
def test_hostile_string_length(length: int, error: type[exi.ExiError]) -> None:
    old = uint_bits(len(EVCCID) + 2)
    data = patch(session_setup_bytes(), EVCCID_BITS, 0, old, uint_bits(length + 2))
    assert isinstance(check_hostile(data, "iso20-common"), error)


@pytest.mark.parametrize(("code", "what"), [(0, "local"), (1, "global")])
def test_string_table_hit_on_an_empty_table(code: int, what: str) -> None:
    data = patch(session_setup_bytes(), EVCCID_BITS, 0, uint_bits(len(EVCCID) + 2), uint_bits(code))
    error = check_hostile(data, "iso20-common")
    assert isinstance(error, exi.ExiDecodeError) and what in str(error)


@pytest.mark.parametrize("code_point", [0x110000, 0x1FFFFF, 2**28, 2**70])
def test_hostile_code_point(code_point: int) -> None:
    """The first EVCCID character replaced by a code point past U+10FFFF (or longer than 3 octets)."""
    data = patch(session_setup_bytes(), EVCCID_BITS, 8, uint_bits(ord("W")), uint_bits(code_point))
    assert isinstance(check_hostile(data, "iso20-common"), exi.ExiDecodeError)


@pytest.mark.parametrize(
    ("length", "error"),
    [(2**40, exi.ExiLimitError), (2**34, exi.ExiLimitError), (9, exi.ExiLimitError), (7, None)],
)
def test_hostile_binary_length_with_max_length(length: int, error: type[exi.ExiError] | None) -> None:
    data = patch(session_setup_bytes(), SESSION_ID_BITS, 0, uint_bits(8), uint_bits(length))
    got = check_hostile(data, "iso20-common")
    if error is None:  # 7 octets of a fixed 8-octet type: the bits that follow are misread; any ExiError
        assert got is None or isinstance(got, exi.ExiError)
    else:
        assert isinstance(got, error)


DIGEST = bytes(range(0xA0, 0xC0))  # DigestValue: base64Binary without maxLength


def signed_session_setup() -> tuple[bytes, str]:
    sig = ds.Signature(
        signed_info=ds.SignedInfo(
            canonicalization_method=ds.CanonicalizationMethod(algorithm="http://www.w3.org/TR/canonical-exi/"),
            signature_method=ds.SignatureMethod(algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
            reference=[
                ds.Reference(
                    uri="#id1",
                    digest_method=ds.DigestMethod(algorithm="http://www.w3.org/2001/04/xmlenc#sha256"),
                    digest_value=DIGEST,
                )
            ],
        ),
        signature_value=ds.SignatureValue(value=b"\x01" * 64),
    )
    msg = dataclasses.replace(SESSION_SETUP, header=dataclasses.replace(SESSION_SETUP.header, signature=sig))
    data = exi.encode(msg)
    assert exi.decode(data, "iso20-common") == msg
    return data, uint_bits(len(DIGEST)) + bits(DIGEST)


@pytest.mark.parametrize(
    ("length", "error"),
    [
        (2**40, exi.ExiLimitError),
        (2**34, exi.ExiTruncatedError),  # no maxLength: 16 GiB announced, must not be allocated
        (2**20, exi.ExiTruncatedError),
        (len(DIGEST) + 1000, exi.ExiTruncatedError),
    ],
)
def test_hostile_binary_length_without_max_length(length: int, error: type[exi.ExiError]) -> None:
    data, needle = signed_session_setup()
    data = patch(data, needle, 0, uint_bits(len(DIGEST)), uint_bits(length))
    assert isinstance(check_hostile(data, "iso20-common"), error)


@pytest.mark.parametrize("octets", [11, 41, 100, 1000])
def test_unsigned_integer_with_endless_continuation_octets(octets: int) -> None:
    """TimeStamp (unsignedLong, at most 10 octets): 100 continuation octets is a limit error, not a loop."""
    old = uint_bits(TIME_STAMP)
    data = patch(session_setup_bytes(), SESSION_ID_BITS + "000", len(SESSION_ID_BITS) + 3, old, "11111111" * octets)
    assert isinstance(check_hostile(data, "iso20-common"), exi.ExiLimitError)


def test_unbounded_integer_with_endless_continuation_octets() -> None:
    """X509SerialNumber (xs:integer, no bounds): the codec's octet limit still applies."""
    serial = 0x5EC12A1F00D
    chain = minimal_instance(cm.CertificateInstallationReq)
    chain.list_of_root_certificate_ids.root_certificate_id[0] = ds.X509IssuerSerial(
        x509_issuer_name="CN=V2G Root", x509_serial_number=serial
    )
    data = exi.encode(chain)
    assert exi.decode(data, "iso20-common") == chain
    needle = "0" + uint_bits(serial)  # sign bit, then the magnitude
    data = patch(data, needle, 1, uint_bits(serial), "11111111" * 100 + "00000001")
    assert isinstance(check_hostile(data, "iso20-common"), exi.ExiLimitError)


@pytest.mark.parametrize("schema", SCHEMAS)
def test_root_event_code_past_the_grammar(schema: str) -> None:
    mod = codec_module(schema)
    width, declared = mod.DOCUMENT_WIDTH, len(mod.DOCUMENT_DECODERS)
    assert declared < 2**width, "every code declared: nothing past the grammar to test"
    for code in range(declared, 2**width):
        data = unbits("10000000" + f"{code:0{width}b}" + "0" * 64)
        error = check_hostile(data, schema)
        assert isinstance(error, exi.ExiUnsupportedError) and "root" in str(error), error


def test_event_code_past_the_grammar_inside_a_message() -> None:
    """After TimeStamp, MessageHeader has a 2-bit event code: 00 Signature, 01 end, 10 second level, 11 none."""
    needle = uint_bits(TIME_STAMP)
    data = session_setup_bytes()
    past = check_hostile(patch(data, needle, len(needle), "001", "011"), "iso20-common")
    assert isinstance(past, exi.ExiDecodeError), past
    second_level = check_hostile(patch(data, needle, len(needle), "001", "010"), "iso20-common")
    assert isinstance(second_level, exi.ExiUnsupportedError), second_level
    # the 1-bit code of Header (0: Header, 1: second level) right after the root element's 6-bit code
    stream = bits(data)
    assert stream[8 + 6] == "0"
    header = check_hostile(unbits(stream[:14] + "1" + stream[15:]), "iso20-common")
    assert isinstance(header, exi.ExiUnsupportedError), header


def test_deeply_nested_garbage_does_not_recurse_forever() -> None:
    """All-ones / all-zeros streams of every length and schema: no RecursionError, no hang."""
    for schema in SCHEMAS:
        for n in (1, 2, 8, 64, 4096):
            for body in (b"\xff" * n, b"\x00" * n, b"\x80" + b"\xff" * n, b"\x80" + b"\x00" * n):
                for fragment in (False, True):
                    check_hostile(body, schema, fragment=fragment)


# -- (e) wrong schema id, wrong argument types ---------------------------------------------------------------
@needs_vectors
def test_vectors_decoded_with_every_other_schema() -> None:
    for rec in VECTORS:
        data = bytes.fromhex(rec["hex"])
        for schema in SCHEMAS:
            if schema != rec["schema_id"]:
                check_hostile(data, schema)


@FUZZ
@given(generated_stream(), st.sampled_from(SCHEMAS))
def test_generated_messages_decoded_with_another_schema(stream: tuple[str, bytes], schema: str) -> None:
    check_hostile(stream[1], schema)


def test_dc_bytes_with_the_app_protocol_schema() -> None:
    msg = minimal_instance(dc.DcChargeLoopReq)
    data = exi.encode(msg)
    assert check_hostile(data, "appProtocol") is not None


@pytest.mark.parametrize("schema", ["", "iso20", "ISO20-DC", "din", None, 3])
def test_unknown_schema_id(schema: object) -> None:
    with hang_guard(lambda: "decode"), pytest.raises(exi.ExiError):
        exi.decode(session_setup_bytes(), schema)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [None, "808c04", 0x80, [0x80, 0x8C], 1.5, object(), {"hex": "80"}, "\x80"],
    ids=["None", "str", "int", "list", "float", "object", "dict", "str1"],
)
@pytest.mark.parametrize("fragment", [False, True], ids=["document", "fragment"])
def test_non_bytes_argument(data: object, fragment: bool) -> None:
    _, error = decode_or_error(data, "iso20-common", fragment=fragment)
    assert isinstance(error, exi.ExiError)


def test_bytes_like_arguments_decode_like_bytes() -> None:
    data = session_setup_bytes()
    for alias in (bytearray(data), memoryview(data), b"$EXI" + data):
        assert exi.decode(alias, "iso20-common") == SESSION_SETUP


def test_encode_rejects_non_messages() -> None:
    for thing in (None, "SessionSetupReq", 42, b"\x80", object(), ct.RationalNumber):
        with pytest.raises(exi.ExiEncodeError):
            exi.encode(thing)  # type: ignore[arg-type]
    with pytest.raises(exi.ExiEncodeError):
        exi.encode(SESSION_SETUP, schema="appProtocol")  # a class the schema does not declare
    with pytest.raises(exi.ExiError):
        exi.encode(SESSION_SETUP, schema="no-such-schema")


# -- encode-side errors: hand-picked cases --------------------------------------------------------------------
def expect_encode_error(msg: object, *names: str) -> exi.ExiEncodeError:
    with hang_guard(lambda: f"encode({msg!r})"), pytest.raises(exi.ExiEncodeError) as info:
        exi.encode(msg)
    text = str(info.value)
    assert any(name in text for name in names), f"{text!r} names none of {names}"
    return info.value


def test_missing_required_string() -> None:
    expect_encode_error(dataclasses.replace(SESSION_SETUP, evccid=None), "evccid")


def test_missing_required_binary() -> None:
    msg = copy.deepcopy(SESSION_SETUP)
    msg.header.session_id = None
    expect_encode_error(msg, "session_id")


def test_out_of_range_integers() -> None:
    for value in (-1, 2**64):
        msg = copy.deepcopy(SESSION_SETUP)
        msg.header.time_stamp = value
        expect_encode_error(msg, "time_stamp")
    for priority in (0, 21):  # priorityType: 1..20
        proto = ap.AppProtocol(
            protocol_namespace="urn:x", version_number_major=1, version_number_minor=0, schema_id=1, priority=priority
        )
        expect_encode_error(ap.SupportedAppProtocolReq(app_protocol=[proto]), "priority")


def test_too_long_string_and_binary() -> None:
    expect_encode_error(dataclasses.replace(SESSION_SETUP, evccid="x" * 256), "evccid")
    for session_id in (bytes(7), bytes(9)):
        msg = copy.deepcopy(SESSION_SETUP)
        msg.header.session_id = session_id
        expect_encode_error(msg, "session_id")


def test_too_many_list_items() -> None:
    proto = ap.AppProtocol(
        protocol_namespace="urn:x", version_number_major=1, version_number_minor=0, schema_id=1, priority=1
    )
    expect_encode_error(ap.SupportedAppProtocolReq(app_protocol=[proto] * 21), "app_protocol")
    expect_encode_error(ap.SupportedAppProtocolReq(app_protocol=[]), "app_protocol", "AppProtocol")


def test_two_alternatives_of_one_choice() -> None:
    msg = minimal_instance(cm.AuthorizationReq)
    msg.eim_a_req_authorization_mode = cm.EimAReqAuthorizationMode()
    msg.pnc_a_req_authorization_mode = minimal_instance(cm.PncAReqAuthorizationMode)
    expect_encode_error(msg, "eim_a_req_authorization_mode", "pnc_a_req_authorization_mode")


def test_no_alternative_of_a_required_choice() -> None:
    msg = minimal_instance(cm.AuthorizationReq)
    msg.eim_a_req_authorization_mode = msg.pnc_a_req_authorization_mode = None
    expect_encode_error(msg, "eim_a_req_authorization_mode", "pnc_a_req_authorization_mode")


def test_wrong_class_in_a_substitution_group() -> None:
    msg = minimal_instance(dc.DcChargeLoopReq)
    msg.cl_req_control_mode = minimal_instance(ac.ScheduledAcClReqControlMode)  # AC member in a DC message
    expect_encode_error(msg, "cl_req_control_mode")


def test_wrong_type_str_for_int() -> None:
    msg = copy.deepcopy(SESSION_SETUP)
    msg.header.time_stamp = "123"
    expect_encode_error(msg, "time_stamp")


def test_missing_required_bool() -> None:
    msg = minimal_instance(dc.DcChargeLoopReq)
    msg.meter_info_requested = None
    expect_encode_error(msg, "meter_info_requested")


def test_wrong_type_str_for_bool() -> None:
    msg = minimal_instance(dc.DcChargeLoopReq)
    msg.meter_info_requested = "false"
    expect_encode_error(msg, "meter_info_requested")


def test_missing_required_element() -> None:
    expect_encode_error(dataclasses.replace(SESSION_SETUP, header=None), "header")


def test_wrong_class_in_an_empty_element() -> None:
    msg = minimal_instance(cm.AuthorizationReq)
    msg.eim_a_req_authorization_mode = "x"
    expect_encode_error(msg, "eim_a_req_authorization_mode")


# -- encode-side errors: a sweep over every field of every message type --------------------------------------
def _paths(msg: object, path: tuple = ()) -> Iterator[tuple[tuple, object]]:
    yield path, msg
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            if dataclasses.is_dataclass(item):
                yield from _paths(item, (*path, (f.name, i)))


def _get(msg: object, path: tuple) -> object:
    for name, i in path:
        msg = getattr(msg, name)
        msg = msg if i is None else msg[i]
    return msg


def _one(f: FieldSpec) -> object:
    kind = usable_members(f)[0]
    return minimal_instance(kind) if isinstance(kind, type) else minimal_value(kind)


def _simple(f: FieldSpec) -> Simple | None:
    kind = f.members[0][1]
    return kind if isinstance(kind, Simple) and not f.repeated else None


def _kind(*kinds: str) -> Callable[[FieldSpec], bool]:
    """A single field of one of these simple kinds."""
    return lambda f: _simple(f) is not None and _simple(f).kind in kinds


def _facet(name: str, *kinds: str) -> Callable[[FieldSpec], bool]:
    return lambda f: _kind(*kinds)(f) and getattr(_simple(f), name) is not None


def _required(*kinds: str) -> Callable[[FieldSpec], bool]:
    """A single required field (not an alternative of a choice) of one of these simple kinds ('' = complex)."""

    def applies(f: FieldSpec) -> bool:
        if f.min_occurs < 1 or f.choice is not None or f.repeated:
            return False
        simple = _simple(f)
        return simple.kind in kinds if simple is not None else "" in kinds

    return applies


def _wrong_object(f: FieldSpec) -> object:
    return ap.AppProtocol(
        protocol_namespace="urn:x", version_number_major=1, version_number_minor=0, schema_id=1, priority=1
    )


INTS = ("nbit", "uint", "int")
# category -> (which fields it applies to, the invalid value)
CASES: dict[str, tuple[Callable[[FieldSpec], bool], Callable[[FieldSpec], object]]] = {
    "int above max": (_facet("hi", *INTS), lambda f: _simple(f).hi + 1),
    "int below min": (_facet("lo", *INTS), lambda f: _simple(f).lo - 1),
    "string too long": (_facet("max_length", "string"), lambda f: "x" * (_simple(f).max_length + 1)),
    "binary too long": (_facet("max_length", "binary"), lambda f: bytes(_simple(f).max_length + 1)),
    "binary too short": (_facet("min_length", "binary"), lambda f: bytes(_simple(f).min_length - 1)),
    "too many items": (
        lambda f: f.repeated and f.max_occurs is not None,
        lambda f: [_one(f) for _ in range(f.max_occurs + 1)],
    ),
    "not an enum member": (_kind("enum"), lambda f: "NoSuchValue"),
    "int for string": (_kind("string"), lambda f: 1),
    "str for binary": (_kind("binary"), lambda f: "00"),
    "missing string or binary": (_required("string", "binary"), lambda f: None),
    "missing enum": (_required("enum"), lambda f: None),
    "missing int": (_required(*INTS), lambda f: None),
    "missing bool": (_required("bool"), lambda f: None),
    "missing element": (_required(""), lambda f: None),
    "empty required list": (lambda f: f.repeated and f.min_occurs >= 1 and f.choice is None, lambda f: []),
    "str for int": (_kind(*INTS), lambda f: "1"),
    "str for bool": (_kind("bool"), lambda f: "false"),
    "wrong class for an element": (
        lambda f: not f.repeated and _simple(f) is None and len(f.members) == 1,
        _wrong_object,
    ),
    "wrong class in a substitution group": (lambda f: not f.repeated and len(f.members) > 1, _wrong_object),
}
KNOWN: dict[str, str] = {}  # sweep cases with a known bug (none left)


def _sweep(case: str) -> tuple[int, list[str]]:
    applies, bad_value = CASES[case]
    checked, problems = 0, []
    for schema, cls in ENCODABLE:
        base = minimal_instance(cls)
        for path, obj in list(_paths(base)):
            for f in type(obj).XSD_FIELDS:
                if not applies(f):
                    continue
                msg = copy.deepcopy(base)
                setattr(_get(msg, path), f.name, bad_value(f))
                checked += 1
                where = f"{cls.__name__}{''.join(f'.{n}' + (f'[{i}]' if i is not None else '') for n, i in path)}"
                try:
                    with hang_guard(f"encode of {where}.{f.name}"):
                        exi.encode(msg, schema=schema)
                except exi.ExiEncodeError as exc:
                    element = f.members[0][0].rsplit("}", 1)[-1]
                    if f.name not in str(exc) and element not in str(exc):
                        problems.append(f"{where}.{f.name}: error does not name the field: {exc}")
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{where}.{f.name}: {type(exc).__name__}: {exc}")
                else:
                    problems.append(f"{where}.{f.name}: no error")
    return checked, problems


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[c])] if c in KNOWN else []) for c in CASES],
)
def test_encode_error_sweep(case: str) -> None:
    checked, problems = _sweep(case)
    assert checked > 0, "the sweep found no field of this kind"
    shown = "\n".join(problems[:10])
    assert not problems, f"{len(problems)} of {checked} fields:\n{shown}"

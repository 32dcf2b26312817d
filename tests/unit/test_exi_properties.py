"""Property tests: every schema-valid message survives an EXI round trip, with and without the string table.

The messages come from `tests/strategies.py` (built from the generated classes' XSD metadata). The number of
examples per class is small for CI; scale it up locally with MCS_V2G_HYPOTHESIS_EXAMPLES=200.
"""

from __future__ import annotations

import dataclasses
import os
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from stack import exi
from stack.exi.runtime import Writer
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import xmldsig as ds
from tests.strategies import (
    FRAGMENT_CLASSES,
    ROOT_MESSAGES,
    XSD_DIR,
    codec_module,
    element_names,
    is_schema_valid,
    lexical_class,
    message_strategy,
    minimal_instance,
    schema_errors,
    to_xml_available,
)

EXAMPLES = int(os.environ.get("MCS_V2G_HYPOTHESIS_EXAMPLES", "15"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(SETTINGS, max_examples=max(2, EXAMPLES // 5))
# for the cases marked xfail: fail on the first example, do not spend seconds shrinking it
NO_SHRINK = settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])


def walk(msg: object):
    """Every generated-class instance inside `msg` (itself included)."""
    yield msg
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        for item in value if isinstance(value, list) else [value]:
            if dataclasses.is_dataclass(item):
                yield from walk(item)


def root_params() -> list:
    params = []
    for schema, cls in ROOT_MESSAGES:
        marks = []
        params.append(pytest.param(schema, cls, id=cls.__name__, marks=marks))
    return params


ROOT_PARAMS = root_params()


def xsd_message_elements() -> set[str]:
    """Global elements named ...Req/...Res in the AppProtocol and -20 XSDs, read straight from the files."""
    found = set()
    for path in [XSD_DIR / "V2G_CI_AppProtocol.xsd", *sorted((XSD_DIR / "iso15118_20").glob("V2G_CI_*.xsd"))]:
        root = ET.parse(path).getroot()
        tns = root.get("targetNamespace")
        for node in root.findall("{http://www.w3.org/2001/XMLSchema}element"):
            if node.get("name").endswith(("Req", "Res")) and node.get("abstract") != "true":
                found.add(f"{{{tns}}}{node.get('name')}")
    return found


def test_root_messages_cover_every_message_type() -> None:
    covered = {q for schema, cls in ROOT_MESSAGES for q in element_names(schema, cls)}
    assert covered == xsd_message_elements()
    assert len(covered) == 62 and len(ROOT_MESSAGES) >= 60  # ACDP_Connect/Disconnect share their types
    assert not any(cls.__name__ in ("ClReqControlMode", "ClResControlMode") for _, cls in ROOT_MESSAGES)


# -- documents --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("schema", "cls"), ROOT_PARAMS)
def test_document_round_trip(schema: str, cls: type) -> None:
    names = element_names(schema, cls)

    @SETTINGS
    @given(message_strategy(cls))
    def check(msg: object) -> None:
        for string_table in (False, True):
            for element in names:  # ACDP_ConnectReq and ACDP_DisconnectReq share one type: name the element
                data = exi.encode(msg, string_table=string_table, schema=schema, element=element)
                qname, back = exi.decode_element(data, schema)
                assert qname == element
                assert back == msg, f"string_table={string_table}: {data.hex()}"

    check()


@pytest.mark.parametrize(("schema", "cls"), [pytest.param(s, c, id=c.__name__) for s, c in ROOT_MESSAGES])
def test_generated_messages_are_schema_valid(schema: str, cls: type) -> None:
    """The strategies themselves: what they build validates against the XSDs (lxml)."""
    element = element_names(schema, cls)[0]

    @FEW
    @given(message_strategy(cls))
    def check(msg: object) -> None:
        assert schema_errors(msg, element=element) == []

    check()


def test_is_schema_valid_helper() -> None:
    msg = minimal_instance(cm.SessionSetupReq)
    assert is_schema_valid(msg) in (True, None)
    if to_xml_available():
        bad = dataclasses.replace(msg, evccid="x" * 256)
        assert is_schema_valid(bad) is False


def test_last_allowed_occurrence_of_a_long_list() -> None:
    """maxOccurs=20 (more than the strategies' exact-max limit): the 20th AppProtocol ends the list."""
    protocols = [
        ap.AppProtocol(
            protocol_namespace=f"urn:iso:std:iso:15118:-20:DC{i}",
            version_number_major=1,
            version_number_minor=i,
            schema_id=i,
            priority=i + 1,
        )
        for i in range(20)
    ]
    msg = ap.SupportedAppProtocolReq(app_protocol=protocols)
    for string_table in (False, True):
        assert exi.decode(exi.encode(msg, string_table=string_table), "appProtocol") == msg


def test_string_table_hits_shorten_the_stream() -> None:
    """The same value in several fields: with the string table the repeats cost an index, not a literal."""
    name = "urn:iso:std:iso:15118:-20:DC-Überladung-充電"
    protocols = [
        ap.AppProtocol(
            protocol_namespace=name, version_number_major=1, version_number_minor=0, schema_id=i, priority=i + 1
        )
        for i in range(4)
    ]
    msg = ap.SupportedAppProtocolReq(app_protocol=protocols)
    plain, table = exi.encode(msg), exi.encode(msg, string_table=True)
    assert len(table) < len(plain)
    assert exi.decode(plain, "appProtocol") == exi.decode(table, "appProtocol") == msg


# -- fragments --------------------------------------------------------------------------------------------
# classes that are the type of one element only (for the others encode_fragment needs element=)
UNAMBIGUOUS_FRAGMENTS = [(s, c) for s, c in FRAGMENT_CLASSES if len(element_names(s, c, fragment=True)) == 1]


def has_id_attribute(cls: type) -> bool:
    return any(f.kind == "attr" and lexical_class(f.members[0][1]) == "id" for f in cls.XSD_FIELDS)


# what signatures are computed over: SignedInfo in every schema set, and the -20 elements a Reference can
# point at (those with an Id attribute: PnC_AReqAuthorizationMode, SignedInstallationData, ...)
SIGNED_FRAGMENTS = [
    (s, c)
    for s, c in UNAMBIGUOUS_FRAGMENTS
    if c is ds.SignedInfo or (c.__module__ != ds.__name__ and has_id_attribute(c))
]


@pytest.mark.parametrize(("schema", "cls"), [pytest.param(s, c, id=f"{s}:{c.__name__}") for s, c in SIGNED_FRAGMENTS])
def test_signed_fragment_round_trip(schema: str, cls: type) -> None:
    @SETTINGS
    @given(message_strategy(cls))
    def check(msg: object) -> None:
        for string_table in (False, True):
            data = exi.encode_fragment(msg, string_table=string_table, schema=schema)
            assert exi.decode_fragment(data, schema) == msg, f"string_table={string_table}: {data.hex()}"

    check()


def fragment_params() -> list:
    params = []
    for schema, cls in UNAMBIGUOUS_FRAGMENTS:
        marks = []
        params.append(pytest.param(schema, cls, id=f"{schema}:{cls.__name__}", marks=marks))
    return params


@pytest.mark.parametrize(("schema", "cls"), fragment_params())
def test_every_fragment_class_round_trips(schema: str, cls: type) -> None:
    """Every element class of every fragment grammar (few examples each: they are parts of the messages)."""

    @settings(NO_SHRINK if cls is ds.DsaKeyValue else SETTINGS, max_examples=max(1, EXAMPLES // 5))
    @given(message_strategy(cls))
    def check(msg: object) -> None:
        data = exi.encode_fragment(msg, schema=schema)
        assert exi.decode_fragment(data, schema) == msg, data.hex()

    check()


# -- reproducers of the bugs found ------------------------------------------------------------------------
def dsa_signature(**key: bytes) -> ds.Signature:
    return ds.Signature(
        signed_info=ds.SignedInfo(
            canonicalization_method=ds.CanonicalizationMethod(algorithm="http://www.w3.org/TR/canonical-exi/"),
            signature_method=ds.SignatureMethod(algorithm="http://www.w3.org/2000/09/xmldsig#dsa-sha1"),
            reference=[
                ds.Reference(
                    uri="#id1",
                    digest_method=ds.DigestMethod(algorithm="http://www.w3.org/2001/04/xmlenc#sha256"),
                    digest_value=b"\x00" * 4,
                )
            ],
        ),
        signature_value=ds.SignatureValue(value=b"\x01\x02"),
        key_info=ds.KeyInfo(key_value=[ds.KeyValue(dsa_key_value=ds.DsaKeyValue(y=b"\x09", **key))]),
    )


@pytest.mark.parametrize("with_p", [False, True], ids=["no-P", "P"])
@pytest.mark.parametrize(
    ("schema", "cls"),
    [("xmldsig", ds.Signature), ("iso20-common", cm.SessionSetupReq), ("iso20-dc", dc.DcPreChargeReq)],
)
def test_dsa_key_value_round_trips(schema: str, cls: type, with_p: bool) -> None:
    signature = dsa_signature(p=b"\x86", q=b"\x07") if with_p else dsa_signature()
    if cls is ds.Signature:
        msg = signature
    else:
        msg = minimal_instance(cls)
        msg.header.signature = signature
    data = exi.encode(msg, schema=schema)
    assert exi.decode(data, schema) == msg, data.hex()


def encode_as(msg: object, schema: str, qname: str) -> bytes:
    """What exi.encode would do with an element= argument: the generated encoder of that element."""
    mod = codec_module(schema)
    code, encoder = mod.DOCUMENT_ENCODERS[(type(msg), qname)]
    w = Writer()
    return w.finish(encoder((((1 << 8) | 0x80) << mod.DOCUMENT_WIDTH) | code, msg, w))


@pytest.mark.parametrize("local", ["ACDP_ConnectReq", "ACDP_DisconnectReq", "ACDP_ConnectRes", "ACDP_DisconnectRes"])
def test_elements_sharing_a_type_decode(local: str) -> None:
    """Both elements of a shared type decode, and decode_element tells them apart."""
    schema = "iso20-acdp"
    qname = f"{{urn:iso:std:iso:15118:-20:ACDP}}{local}"
    cls = next(c for (c, q) in codec_module(schema).DOCUMENT_ENCODERS if q == qname)
    msg = minimal_instance(cls)
    assert exi.decode_element(encode_as(msg, schema, qname), schema) == (qname, msg)


def test_rsa_key_value_round_trips() -> None:
    """The same signature with an RSAKeyValue round-trips too."""
    sig = dsa_signature()
    sig.key_info = ds.KeyInfo(
        key_value=[ds.KeyValue(rsa_key_value=ds.RsaKeyValue(modulus=b"\xc3" * 5, exponent=b"\x03"))]
    )
    assert exi.decode(exi.encode(sig), "xmldsig") == sig

"""EXI fragments (EXI 1.0 8.5.2) against EXIficient's, as Josev makes them for its signatures.

Josev's jar encodes the elements a -20 signature references as EXI fragments with the CommonMessages grammars
(`AbstractEXICodec.UseFragmentMode`: `setFragment(true)`, otherwise the same grammars and options), and the
-2 SignedInfo with the xmldsig grammars (`XSDCore`). The bridge's `encode_xml(..., fragment=True, schema=...)`
does the same on the SAX path. The digests and signatures of Plug & Charge are computed over these bytes, so a
fragment that differs by one bit breaks every signature between us and such a peer.

Compared here: `SignedInfo` in the xmldsig grammars and in each -20 grammar set, and the -20 elements that
carry an `Id` and get signed (all in the CommonMessages set): PnC_AReqAuthorizationMode (AuthorizationReq,
local element), OEMProvisioningCertificateChain (CertificateInstallationReq, local), SignedInstallationData
(CertificateInstallationRes), SignedMeteringData (MeteringConfirmationReq), AbsolutePriceSchedule and
PriceLevelSchedule (ScheduleExchangeRes, local).

The fragment grammar (EXI 1.0 8.5.2: "the number of unique element qnames declared in the schema", sorted by
local name, then uri) lists every element declaration of the schema set, global and local, also the local
elements of named types that no element of the set uses (CommonTypes' abstract ChargeLoopReqType with
DisplayParameters and MeterInfoRequested, TargetPositionType, and in the DC, AC, ACDP and WPT sets
ListOfRootCertificateIDsType); EXIficient does the same, so the lists are equal and so are the fragments, bit
for bit: the SE event code of the element, its content and the ED code.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from stack import exi
from stack.messages import xmldsig as ds
from tests.interop.test_josev_differential import (  # noqa: F401 (_summary: the session summary line)
    COMPARED,
    MODES,
    PNC_SAMPLES,
    SETTINGS,
    _summary,
    josev_encode,
    walk,
)
from tests.strategies import codec_module, message_strategy
from tools.peers.josev import JosevExi, xml_infoset

CM = "{urn:iso:std:iso:15118:-20:CommonMessages}"
SIGNED_INFO = "{http://www.w3.org/2000/09/xmldsig#}SignedInfo"
ISO20 = ("iso20-common", "iso20-dc", "iso20-ac", "iso20-acdp", "iso20-wpt")
# the -20 elements with an Id that a PnC signature references, and the sample message that holds one
SIGNED_ELEMENTS = {
    "PnC_AReqAuthorizationMode": "AuthorizationReq",
    "OEMProvisioningCertificateChain": "CertificateInstallationReq",
    "SignedInstallationData": "CertificateInstallationRes",
    "SignedMeteringData": "MeteringConfirmationReq",
    "AbsolutePriceSchedule": "ScheduleExchangeRes",
    "PriceLevelSchedule": "ScheduleExchangeRes",
}
# (schema, element qname, sample holding it)
TARGETS = [
    ("xmldsig", SIGNED_INFO, "ScheduleExchangeRes"),
    *[(schema, SIGNED_INFO, "ScheduleExchangeRes") for schema in ISO20],
    *[("iso20-common", CM + local, name) for local, name in SIGNED_ELEMENTS.items()],
]

# SignedInfo(CanonicalizationMethod Algorithm="", SignatureMethod Algorithm="", Reference(DigestMethod
# Algorithm="", DigestValue 00)) as a fragment: EXIficient's bytes, recorded. The fragment grammar lists every
# element declared in the schema set, also in types no global element uses (iso20-common: 281 elements).
MINIMAL_SIGNED_INFO = {
    "xmldsig": "8081012012401200800dc0",
    "iso20-common": "807320240248024010018d00",
    "iso20-dc": "808140480490048020032c",
    "iso20-ac": "8087404804900480200336",
    "iso20-acdp": "806e404804900480200304",
    "iso20-wpt": "8092404804900480200384",
}


def target_id(target: tuple[str, str, str]) -> str:
    schema, qname, _ = target
    return f"{schema}:{qname.rsplit('}', 1)[1]}"


def target_params() -> list:
    return [pytest.param(*t, id=target_id(t)) for t in TARGETS]


def fragment_class(schema: str, qname: str) -> type:
    return next(c for (c, q) in codec_module(schema).FRAGMENT_ENCODERS if q == qname)


def our_elements(schema: str) -> list[str]:
    """Our fragment grammar's SE qnames in event-code order, spelled as EXIficient does (`{}name`)."""
    return [q if q.startswith("{") else "{}" + q for q, _ in codec_module(schema).FRAGMENT_DECODERS]


def sample_fragment(schema: str, qname: str, name: str) -> object:
    """The element `qname` inside the PnC sample `name` (the first one, for SignedInfo)."""
    cls = fragment_class(schema, qname)
    return next(x for x in walk(exi.from_xml(PNC_SAMPLES[name])) if type(x) is cls)


@pytest.fixture(scope="module")
def exificient_elements(josev_exi: JosevExi) -> dict[str, list[str]]:
    return {schema: josev_exi.fragment_elements(schema) for schema in ("xmldsig", "appProtocol", *ISO20)}


# -- which elements, which grammar ----------------------------------------------------------------------------
def test_signed_elements_are_the_commonmessages_elements_with_an_id() -> None:
    fragments = codec_module("iso20-common").FRAGMENT_ENCODERS
    with_id = {
        q[len(CM) :]
        for (cls, q) in fragments
        if q.startswith(CM) and any(f.kind == "attr" and f.members[0][0].endswith("}Id") for f in cls.XSD_FIELDS)
    }
    assert with_id == set(SIGNED_ELEMENTS)
    documents = {q for (_, q) in codec_module("iso20-common").DOCUMENT_ENCODERS}
    assert CM + "PnC_AReqAuthorizationMode" not in documents  # a local element: only a fragment can hold it


@pytest.mark.parametrize(
    "schema",
    ["xmldsig", "appProtocol", *ISO20],
)
def test_fragment_grammar_lists_exificients_elements(exificient_elements: dict[str, list[str]], schema: str) -> None:
    theirs, ours = exificient_elements[schema], our_elements(schema)
    assert sorted(set(theirs) - set(ours)) == [], f"{len(theirs)} elements in EXIficient's list, {len(ours)} in ours"
    assert sorted(set(ours) - set(theirs)) == [], f"{len(theirs)} elements in EXIficient's list, {len(ours)} in ours"
    assert ours == theirs, "the same elements in another order"


# -- the signed elements ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("schema", "theirs"), MINIMAL_SIGNED_INFO.items(), ids=MINIMAL_SIGNED_INFO.keys())
def test_minimal_signed_info_fragment(josev_exi: JosevExi, schema: str, theirs: str) -> None:
    """EXIficient's bytes are the recorded ones, and ours are the same."""
    msg = ds.SignedInfo(
        canonicalization_method=ds.CanonicalizationMethod(algorithm=""),
        signature_method=ds.SignatureMethod(algorithm=""),
        reference=[ds.Reference(digest_method=ds.DigestMethod(algorithm=""), digest_value=b"\x00")],
    )
    xml = exi.to_xml(msg, element=SIGNED_INFO, pretty=False)
    exificient = josev_exi.encode_xml(xml, fragment=True, schema=schema).hex()
    if exificient != theirs:
        pytest.fail(f"EXIficient's bytes changed: {exificient}, recorded {theirs}")  # not an xfail reason
    assert exi.encode_fragment(msg, schema=schema, element=SIGNED_INFO).hex() == exificient
    assert exi.decode_fragment(bytes.fromhex(exificient), schema) == msg


@pytest.mark.parametrize("string_table", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize(("schema", "qname", "name"), target_params())
def test_fragment_equals_exificients(
    josev_exi: JosevExi, schema: str, qname: str, name: str, string_table: bool
) -> None:
    """The fragment of each signed element of the PnC samples: EXIficient's bytes, and we decode them."""
    msg = sample_fragment(schema, qname, name)
    theirs = josev_encode(josev_exi, exi.to_xml(msg, element=qname), string_table=string_table, fragment_of=schema)
    ours = exi.encode_fragment(msg, string_table=string_table, schema=schema, element=qname)
    COMPARED["fragment " + ("string-table" if string_table else "v2g-profile")] += 1
    assert ours.hex() == theirs.hex()
    assert exi.decode_fragment(theirs, schema) == msg


@pytest.mark.parametrize("string_table", MODES.values(), ids=MODES.keys())
@pytest.mark.parametrize(("schema", "qname"), [pytest.param(s, q, id=target_id((s, q, ""))) for s, q, _ in TARGETS])
def test_generated_fragment_equals_exificients(
    josev_exi: JosevExi, schema: str, qname: str, string_table: bool
) -> None:
    """Hypothesis-generated elements: our fragment is EXIficient's bytes, we decode theirs, they decode ours."""

    @SETTINGS
    @given(message_strategy(fragment_class(schema, qname)))
    def check(msg: object) -> None:
        xml = exi.to_xml(msg, element=qname, pretty=False)
        theirs = josev_encode(josev_exi, xml, string_table=string_table, fragment_of=schema)
        ours = exi.encode_fragment(msg, string_table=string_table, schema=schema, element=qname)
        COMPARED["generated fragment " + ("string-table" if string_table else "v2g-profile")] += 1
        assert ours.hex() == theirs.hex(), xml
        assert exi.decode_fragment(theirs, schema) == msg
        back = josev_exi.decode_to_xml(ours, schema, string_table=string_table, fragment=True)
        assert xml_infoset(back) == xml_infoset(xml)

    check()

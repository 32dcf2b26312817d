"""Smoke tests of the Josev EXI oracle (tools/peers/josev.py): known bytes, round trips, errors.

The expected hex strings are Josev's wire bytes (EXIficient 1.55 as Josev configures it); `pytest -s` prints
them for use as fixtures elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.interop.conftest import start_josev_exi
from tools.peers.josev import BridgeError, JosevExi, OracleError, xml_infoset

CM = 'xmlns:ns="urn:iso:std:iso:15118:-20:CommonMessages" xmlns:ct="urn:iso:std:iso:15118:-20:CommonTypes"'
DC = 'xmlns:ns="urn:iso:std:iso:15118:-20:DC" xmlns:ct="urn:iso:std:iso:15118:-20:CommonTypes"'


def _rational(name: str, exponent: int, value: int, prefix: str = "ns") -> str:
    body = f"<ct:Exponent>{exponent}</ct:Exponent><ct:Value>{value}</ct:Value>"
    return f"<{prefix}:{name}>{body}</{prefix}:{name}>"


def _app_protocol(namespace: str, major: int, minor: int, schema_id: int, priority: int) -> str:
    return (
        f"<AppProtocol><ProtocolNamespace>{namespace}</ProtocolNamespace>"
        f"<VersionNumberMajor>{major}</VersionNumberMajor><VersionNumberMinor>{minor}</VersionNumberMinor>"
        f"<SchemaID>{schema_id}</SchemaID><Priority>{priority}</Priority></AppProtocol>"
    )


SESSION_SETUP_REQ = (
    f"<ns:SessionSetupReq {CM}><ct:Header><ct:SessionID>0000000000000000</ct:SessionID>"
    "<ct:TimeStamp>1700000000</ct:TimeStamp></ct:Header>"
    "<ns:EVCCID>WMIV1234567890ABCDEX</ns:EVCCID></ns:SessionSetupReq>"
)
SUPPORTED_APP_PROTOCOL_REQ = (
    '<ns:supportedAppProtocolReq xmlns:ns="urn:iso:15118:2:2010:AppProtocol">'
    + _app_protocol("urn:iso:std:iso:15118:-20:DC", 1, 0, 1, 1)
    + _app_protocol("urn:iso:15118:2:2013:MsgDef", 2, 0, 2, 2)
    + "</ns:supportedAppProtocolReq>"
)
DC_CHARGE_LOOP_REQ = (
    f"<ns:DC_ChargeLoopReq {DC}><ct:Header><ct:SessionID>0102030405060708</ct:SessionID>"
    "<ct:TimeStamp>1700000123</ct:TimeStamp></ct:Header>"
    "<ct:DisplayParameters><ct:PresentSOC>55</ct:PresentSOC><ct:TargetSOC>80</ct:TargetSOC>"
    "</ct:DisplayParameters><ct:MeterInfoRequested>false</ct:MeterInfoRequested>"
    + _rational("EVPresentVoltage", 0, 400)
    + "<ns:BPT_Dynamic_DC_CLReqControlMode><ct:DepartureTime>7200</ct:DepartureTime>"
    + _rational("EVTargetEnergyRequest", 3, 40, "ct")
    + _rational("EVMaximumEnergyRequest", 3, 60, "ct")
    + _rational("EVMinimumEnergyRequest", 3, -10, "ct")
    + _rational("EVMaximumChargePower", 3, 150)
    + _rational("EVMinimumChargePower", 0, 0)
    + _rational("EVMaximumChargeCurrent", 0, 350)
    + _rational("EVMaximumVoltage", 0, 850)
    + _rational("EVMinimumVoltage", 0, 200)
    + _rational("EVMaximumDischargePower", 3, 100)
    + _rational("EVMinimumDischargePower", 0, 0)
    + _rational("EVMaximumDischargeCurrent", 0, 250)
    + "</ns:BPT_Dynamic_DC_CLReqControlMode></ns:DC_ChargeLoopReq>"
)

# name -> (schema, XML, Josev's bytes). No value repeats in these, so both modes give the same bytes.
SAMPLES = {
    "SessionSetupReq": (
        "iso20-common",
        SESSION_SETUP_REQ,
        "808c040000000000000000080e2cfaa0620b2ba6a4ab1899199a1a9b1b9c1c9820a121a222ac00",
    ),
    "supportedAppProtocolReq": (
        "appProtocol",
        SUPPORTED_APP_PROTOCOL_REQ,
        "8000f3ab9371d34b9b79d39ba321d34b9b79d189a98989c1d1699181d22218010000040001d75726e3a69736f3a3135313138"
        "3a323a323031333a4d73674465660040000100880",
    ),
    "DC_ChargeLoopReq": (
        "iso20-dc",
        DC_CHARGE_LOOP_REQ,
        "80340400810182028303840fbe2cfaa06201b8540e02002400c0280e020c0a010607808310904184b0082000001001bc0408"
        "00d20604006400820c1901000000800fa01200",
    ),
}
MODES = pytest.mark.parametrize("string_table", [False, True], ids=["v2g-profile", "string-table"])


@MODES
@pytest.mark.parametrize("name", SAMPLES)
def test_encode_xml_gives_josevs_bytes_and_decodes_back(josev_exi: JosevExi, name: str, string_table: bool) -> None:
    schema, xml, expected = SAMPLES[name]
    data = josev_exi.encode_xml(xml, string_table=string_table)
    print(f"{name} string_table={string_table}: {data.hex()}")
    assert data.hex() == expected
    decoded = josev_exi.decode_to_xml(data, schema, string_table=string_table)
    assert xml_infoset(decoded) == xml_infoset(xml)


@MODES
@pytest.mark.parametrize("name", SAMPLES)
def test_josevs_json_api_agrees_with_the_xml_path(josev_exi: JosevExi, name: str, string_table: bool) -> None:
    schema, xml, expected = SAMPLES[name]
    wire_json = josev_exi.decode_json(bytes.fromhex(expected), schema, string_table=string_table)
    print(f"{name} wire JSON: {wire_json}")
    assert list(json.loads(wire_json)) == [name]
    assert josev_exi.encode_json(wire_json, schema, string_table=string_table).hex() == expected


def test_codec_options_are_josevs(josev_exi: JosevExi) -> None:
    info = josev_exi.info
    assert (info["iso15118"], info["exificient"]) == ("0.31.2", 1.55)
    assert info["strict"] is False and info["fidelity"] == "[]"  # non-strict, no preserve options
    assert info["coding_mode"] == "BIT_PACKED" and info["header_options"] == "{}"  # no cookie, no options
    assert set(info["josev_options"].values()) == {0}
    assert set(info["string_table_options"].values()) == {-1}


def test_string_table_mode_emits_hits_that_josev_cannot_decode(josev_exi: JosevExi) -> None:
    dc = "urn:iso:std:iso:15118:-20:DC"
    xml = (
        '<ns:supportedAppProtocolReq xmlns:ns="urn:iso:15118:2:2010:AppProtocol">'
        + _app_protocol(dc, 1, 0, 1, 1)
        + _app_protocol(dc, 1, 1, 2, 2)
        + "</ns:supportedAppProtocolReq>"
    )
    profile = josev_exi.encode_xml(xml)
    hits = josev_exi.encode_xml(xml, string_table=True)
    assert len(hits) < len(profile)
    assert xml_infoset(josev_exi.decode_to_xml(hits, "appProtocol", string_table=True)) == xml_infoset(xml)
    with pytest.raises(OracleError):
        josev_exi.decode_json(hits, "appProtocol")


def test_errors_come_back_as_oracle_errors(josev_exi: JosevExi) -> None:
    too_big = DC_CHARGE_LOOP_REQ.replace("<ct:Value>400</ct:Value>", "<ct:Value>40000</ct:Value>")
    with pytest.raises(OracleError, match="cvc-maxInclusive-valid"):
        josev_exi.encode_xml(too_big)
    assert josev_exi.encode_xml(too_big, validate=False)  # non-strict EXIficient encodes it anyway
    with pytest.raises(OracleError, match="no V2G namespace"):
        josev_exi.encode_xml("<Foo/>")
    with pytest.raises(OracleError):
        josev_exi.decode_to_xml(bytes.fromhex("808cff"), "iso20-common")
    with pytest.raises(OracleError, match="no message model"):
        josev_exi.encode_json("{}", "iso20-wpt")
    with pytest.raises(ValueError):
        josev_exi.decode_to_xml(b"\x80", "iso20-mcs")
    assert josev_exi.encode_xml(SESSION_SETUP_REQ).hex() == SAMPLES["SessionSetupReq"][2]


def test_bench_times_each_call(josev_exi: JosevExi) -> None:
    data = bytes.fromhex(SAMPLES["DC_ChargeLoopReq"][2])
    for op in ("encode", "decode", "encode_xml", "decode_xml"):
        times = josev_exi.bench(op, data, "iso20-dc", 3)
        assert len(times) == 3 and all(0 < t < 10 for t in times)


@pytest.fixture(scope="module")
def josev_exi_xsd() -> Iterator[JosevExi]:
    """The same codec with grammars built by EXIficient from the official XSDs instead of the jar's."""
    oracle = start_josev_exi(grammars="xsd")
    try:
        yield oracle
    finally:
        oracle.close()


@MODES
@pytest.mark.parametrize("name", SAMPLES)
def test_grammars_from_the_xsds_agree(josev_exi_xsd: JosevExi, name: str, string_table: bool) -> None:
    schema, xml, expected = SAMPLES[name]
    assert josev_exi_xsd.encode_xml(xml, string_table=string_table).hex() == expected


def test_real_vectors_re_encode_identically(josev_exi: JosevExi, josev_exi_xsd: JosevExi, vectors: list[dict]) -> None:
    """Every -20 and AppProtocol record decodes, validates and re-encodes to its own bytes, both grammars."""
    for hex_text, schema in sorted({record["hex"]: record["schema_id"] for record in vectors}.items()):
        data = bytes.fromhex(hex_text)
        xml = josev_exi.decode_to_xml(data, schema)
        assert josev_exi.encode_xml(xml) == data, hex_text
        assert josev_exi_xsd.encode_xml(xml, validate=False) == data, hex_text


def test_a_dead_bridge_raises_instead_of_hanging() -> None:
    oracle = start_josev_exi(timeout=20.0)
    try:
        assert oracle._process is not None
        oracle._process.kill()
        with pytest.raises(BridgeError):
            oracle.encode_xml(SESSION_SETUP_REQ)
        with pytest.raises(BridgeError, match="not running"):
            oracle.encode_xml(SESSION_SETUP_REQ)
    finally:
        oracle.close()

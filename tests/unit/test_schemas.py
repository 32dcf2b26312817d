"""The schema registry (stack/schemas.py) agrees with the generated modules, and its lookups say what is wrong."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from stack import exi, schemas, v2gtp
from stack.exi import codec
from stack.messages import app_protocol as ap
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from tools.peers import josev

XSD_DIR = Path(schemas.__file__).parent / "exi" / "xsd"
SETS = list(schemas.SCHEMA_SETS.values())
OWNED = [(s, n) for s in SETS for n in s.namespaces]


def _uri(qname: str) -> str:
    return qname[1:].split("}", 1)[0]


# -- the registry against the generated code and the XSDs ---------------------------------------------------
@pytest.mark.parametrize("schema_set", SETS, ids=lambda s: s.id)
def test_schema_set_files_exist_and_import(schema_set: schemas.SchemaSet) -> None:
    assert (XSD_DIR / schema_set.xsd).is_file()
    module = importlib.import_module(f"stack.exi.gen.{schema_set.codec_module}")
    assert module.DOCUMENT_ENCODERS and module.DOCUMENT_DECODERS
    assert codec.codec_module(schema_set.id) is module


@pytest.mark.parametrize("schema_set", SETS, ids=lambda s: s.id)
def test_target_namespace_is_owned_and_has_global_elements(schema_set: schemas.SchemaSet) -> None:
    assert schema_set.namespace == schema_set.namespaces[0].uri
    roots = codec.codec_module(schema_set.id).DOCUMENT_ENCODERS
    assert any(_uri(q) == schema_set.namespace for _, q in roots)


@pytest.mark.parametrize(("schema_set", "namespace"), OWNED, ids=lambda x: getattr(x, "id", None) or x.uri)
def test_every_element_of_a_namespace_encodes_with_its_owner(
    schema_set: schemas.SchemaSet, namespace: schemas.Namespace
) -> None:
    module = importlib.import_module(f"stack.messages.{namespace.module}")
    roots = codec.codec_module(schema_set.id).DOCUMENT_ENCODERS
    for qname, cls in module.ELEMENTS.items():
        assert _uri(qname) == namespace.uri
        assert schemas.default_schema_id(cls) == schema_set.id
        assert (cls, qname) in roots, f"{qname} is not a document of {schema_set.id}"


def test_ids_namespaces_modules_prefixes_and_aliases_are_unique() -> None:
    for values in (
        [s.id for s in SETS],
        [s.codec_module for s in SETS],
        [n.uri for _, n in OWNED],
        [n.module for _, n in OWNED],
        [n.prefix for _, n in OWNED],
        [n.alias for _, n in OWNED],
    ):
        assert len(set(values)) == len(values), values
    assert len(schemas.NAMESPACES) == len(OWNED)


def test_every_payload_type_maps_to_a_known_schema() -> None:
    tables = [schemas.SAP_PAYLOAD_SCHEMAS, schemas.PAYLOAD_SCHEMAS, *(p.payload_schemas for p in schemas.PROTOCOLS)]
    for table in tables:
        assert table
        for payload_type, schema_id in table.items():
            assert schema_id in schemas.SCHEMA_SETS, (hex(payload_type), schema_id)
            assert payload_type in schemas.PAYLOAD_TYPES
    for schema_set in SETS:
        if schema_set.payload_type is not None:
            assert schemas.PAYLOAD_SCHEMAS[schema_set.payload_type] == schema_set.id
    assert not schemas.SDP_PAYLOAD_TYPES & set(schemas.PAYLOAD_SCHEMAS)


@pytest.mark.parametrize("protocol", schemas.PROTOCOLS, ids=lambda p: p.name)
def test_protocols_carry_common_messages_and_their_own_set_but_not_sap(protocol: schemas.ProtocolSpec) -> None:
    own = schemas.schema_set_of_namespace(protocol.namespace)
    assert protocol.payload_schemas[own.payload_type] == own.id
    assert protocol.payload_schemas[0x8002] == "iso20-common"
    assert schemas.SAP_PAYLOAD_TYPE not in protocol.payload_schemas
    assert protocol.major == 1
    assert schemas.find_protocol(protocol.namespace) is protocol


def test_dc_protocol_has_the_side_streams() -> None:
    assert dict(schemas.DC_PROTOCOL.payload_schemas) == {
        0x8002: "iso20-common",
        0x8004: "iso20-dc",
        0x8101: "iso20-common",
        0x8102: "iso20-common",
    }
    assert schemas.DC_PROTOCOL.namespace == "urn:iso:std:iso:15118:-20:DC"


def test_before_sap_only_sap_is_carried() -> None:
    assert dict(schemas.payload_schemas(None)) == {0x8001: "appProtocol"}
    assert schemas.payload_schemas(schemas.DC_PROTOCOL) is schemas.DC_PROTOCOL.payload_schemas


def test_protocol_spec_is_hashable_and_read_only() -> None:
    assert len({schemas.DC_PROTOCOL, schemas.DC_PROTOCOL, schemas.AC_PROTOCOL}) == 2
    with pytest.raises(TypeError):
        schemas.DC_PROTOCOL.payload_schemas[0x8001] = "appProtocol"  # type: ignore[index]


# -- lookups ---------------------------------------------------------------------------------------------------
def test_unknown_schema_id_lists_the_known_ones() -> None:
    with pytest.raises(schemas.UnknownSchemaError, match="'iso2'.*appProtocol, iso20-common, iso20-dc"):
        schemas.schema_set("iso2")
    with pytest.raises(exi.ExiError, match="unknown schema id 'iso2'; known: appProtocol"):
        exi.decode(b"\x80", "iso2")


def test_namespace_lookup() -> None:
    assert schemas.schema_set_of_namespace("urn:iso:std:iso:15118:-20:CommonTypes").id == "iso20-common"
    assert schemas.schema_set_of_namespace("urn:iso:15118:2:2010:AppProtocol").id == "appProtocol"
    with pytest.raises(schemas.UnknownSchemaError, match="urn:iso:15118:2:2013:MsgDef"):
        schemas.schema_set_of_namespace("urn:iso:15118:2:2013:MsgDef")


def test_default_schema_of_classes() -> None:
    assert schemas.default_schema_id(ap.SupportedAppProtocolReq) == "appProtocol"
    assert schemas.default_schema_id(ct.MessageHeader) == "iso20-common"
    assert schemas.default_schema_id(dc.DcChargeLoopReq) == "iso20-dc"
    with pytest.raises(schemas.UnknownSchemaError, match="Path is not a generated message class"):
        schemas.default_schema_id(Path)
    with pytest.raises(exi.ExiEncodeError, match="is not a generated message class"):
        exi.encode(Path("x"))


def test_find_protocol_knows_only_what_we_speak() -> None:
    assert schemas.find_protocol("urn:iso:std:iso:15118:-20:DC") is schemas.DC_PROTOCOL
    assert schemas.find_protocol("urn:iso:std:iso:15118:-20:WPT") is schemas.WPT_PROTOCOL
    assert schemas.find_protocol("urn:iso:15118:2:2013:MsgDef") is None
    assert schemas.find_protocol("urn:din:70121:2012:MsgDef") is None


# -- the views kept for older importers ------------------------------------------------------------------------
def test_compatibility_views_keep_their_values() -> None:
    assert dict(v2gtp.PAYLOAD_SCHEMAS) == {
        0x8001: "appProtocol",
        0x8002: "iso20-common",
        0x8003: "iso20-ac",
        0x8004: "iso20-dc",
        0x8005: "iso20-acdp",
        0x8006: "iso20-wpt",
        0x8101: "iso20-common",
        0x8102: "iso20-common",
    }
    assert v2gtp.SCHEMA_PAYLOAD_TYPES == {
        "appProtocol": 0x8001,
        "iso20-common": 0x8002,
        "iso20-ac": 0x8003,
        "iso20-dc": 0x8004,
        "iso20-acdp": 0x8005,
        "iso20-wpt": 0x8006,
    }
    assert set(v2gtp.SDP_PAYLOAD_TYPES) == {0x9000, 0x9001, 0x9002, 0x9003}
    assert exi.SCHEMA_IDS == (
        "appProtocol",
        "iso20-common",
        "iso20-dc",
        "iso20-ac",
        "iso20-acdp",
        "iso20-wpt",
        "xmldsig",
    )
    assert codec.SCHEMA_MODULES["appProtocol"] == "appprotocol"
    assert set(josev.SCHEMAS) == set(exi.SCHEMA_IDS) - {"xmldsig"}
    assert josev.FRAGMENT_SCHEMAS["xmldsig"] == "http://www.w3.org/2000/09/xmldsig#"
    assert josev.SCHEMAS["iso20-common"] == "urn:iso:std:iso:15118:-20:CommonMessages"


def test_xml_prefixes_come_from_the_registry() -> None:
    entry = ap.AppProtocol(
        protocol_namespace="urn:iso:std:iso:15118:-20:DC",
        version_number_major=1,
        version_number_minor=0,
        schema_id=1,
        priority=1,
    )
    text = exi.to_xml(ap.SupportedAppProtocolReq(app_protocol=[entry]))
    assert text.startswith('<app:supportedAppProtocolReq xmlns:app="urn:iso:15118:2:2010:AppProtocol">')
    text = exi.to_xml(dc.DcCableCheckReq(header=ct.MessageHeader(session_id=bytes(8), time_stamp=1)))
    assert text.startswith("<dc:DC_CableCheckReq") and 'xmlns:ct="urn:iso:std:iso:15118:-20:CommonTypes"' in text

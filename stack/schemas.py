"""The schema registry: every EXI schema set, the XML namespaces it owns, and the protocols SAP negotiates.

Declared once here and read by the generator (tools/exigen), the codec and its XML view (stack/exi), V2GTP
framing (stack/v2gtp), the V2G channel (stack/channel) and the Josev oracle. Pure data and lookups: it
imports no other stack module, so every other module can import it.

The payload type alone does not name a schema: 0x8001 carries SAP before the handshake and, after an
ISO 15118-2 or DIN negotiation, that protocol's messages (PROTOCOL.md section 2). So a connection maps payload
types to schemas through the protocol SAP chose (`payload_schemas(protocol)`), and only one-off decoding
without any SAP state uses `PAYLOAD_SCHEMAS`, where SAP wins 0x8001.

Adding ISO 15118-2 or DIN SPEC 70121 to negotiation is ONE `ProtocolSpec` entry in `PROTOCOLS`, e.g.
`ProtocolSpec("ISO 15118-2", "urn:iso:15118:2:2013:MsgDef", 2, {0x8001: "iso2"})`, next to the `SchemaSet`
that declares its XSD and generated modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

SAP_PAYLOAD_TYPE = 0x8001
# SDP request/response and their -20 wireless variants (UDP only, no EXI: stack/sdp.py)
SDP_PAYLOAD_TYPES = frozenset({0x9000, 0x9001, 0x9002, 0x9003})


class UnknownSchemaError(LookupError):
    """A schema id, namespace or message class that no schema set of the registry declares."""


@dataclass(frozen=True, slots=True)
class Namespace:
    """An XML namespace a schema set declares types in: its `stack.messages` module and its prefixes."""

    uri: str
    module: str  # stack.messages.<module>
    prefix: str  # XML prefix in stack.exi.to_xml output
    alias: str = ""  # import alias of `module` in generated code; the XML prefix when empty

    def __post_init__(self) -> None:
        if not self.alias:
            object.__setattr__(self, "alias", self.prefix)


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """One EXI grammar: the XSD whose global elements are the documents, and what is generated from it."""

    id: str
    namespace: str  # target namespace of its global elements
    xsd: str  # relative to stack/exi/xsd/
    codec_module: str  # stack.exi.gen.<codec_module>
    payload_type: int | None  # the main-stream payload type of its documents; None: never sent as a document
    namespaces: tuple[Namespace, ...]  # the namespaces whose message modules belong to this set


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """A protocol SAP can negotiate, and the payload types valid on the connection once it is chosen."""

    name: str
    namespace: str  # SAP ProtocolNamespace
    major: int  # SAP VersionNumberMajor
    payload_schemas: Mapping[int, str] = field(hash=False)  # payload type -> schema id

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload_schemas", MappingProxyType(dict(self.payload_schemas)))


_AP = "urn:iso:15118:2:2010:AppProtocol"
_CM = "urn:iso:std:iso:15118:-20:CommonMessages"
_CT = "urn:iso:std:iso:15118:-20:CommonTypes"
_DC = "urn:iso:std:iso:15118:-20:DC"
_AC = "urn:iso:std:iso:15118:-20:AC"
_ACDP = "urn:iso:std:iso:15118:-20:ACDP"
_WPT = "urn:iso:std:iso:15118:-20:WPT"
_DS = "http://www.w3.org/2000/09/xmldsig#"

# the order is the generator's (it decides which set first emits a shared type) and the CLI's --schema choices
_SCHEMA_SETS = (
    SchemaSet(
        id="appProtocol",
        namespace=_AP,
        xsd="V2G_CI_AppProtocol.xsd",
        codec_module="appprotocol",
        payload_type=SAP_PAYLOAD_TYPE,
        namespaces=(Namespace(_AP, "app_protocol", "app", alias="ap"),),
    ),
    SchemaSet(
        id="iso20-common",
        namespace=_CM,
        xsd="iso15118_20/V2G_CI_CommonMessages.xsd",
        codec_module="iso20_common",
        payload_type=0x8002,
        namespaces=(Namespace(_CM, "iso20_common", "cm"), Namespace(_CT, "iso20_types", "ct")),
    ),
    SchemaSet(
        id="iso20-dc",
        namespace=_DC,
        xsd="iso15118_20/V2G_CI_DC.xsd",
        codec_module="iso20_dc",
        payload_type=0x8004,
        namespaces=(Namespace(_DC, "iso20_dc", "dc"),),
    ),
    SchemaSet(
        id="iso20-ac",
        namespace=_AC,
        xsd="iso15118_20/V2G_CI_AC.xsd",
        codec_module="iso20_ac",
        payload_type=0x8003,
        namespaces=(Namespace(_AC, "iso20_ac", "ac"),),
    ),
    SchemaSet(
        id="iso20-acdp",
        namespace=_ACDP,
        xsd="iso15118_20/V2G_CI_ACDP.xsd",
        codec_module="iso20_acdp",
        payload_type=0x8005,
        namespaces=(Namespace(_ACDP, "iso20_acdp", "acdp"),),
    ),
    SchemaSet(
        id="iso20-wpt",
        namespace=_WPT,
        xsd="iso15118_20/V2G_CI_WPT.xsd",
        codec_module="iso20_wpt",
        payload_type=0x8006,
        namespaces=(Namespace(_WPT, "iso20_wpt", "wpt"),),
    ),
    # signatures only: its elements travel inside -20 headers, or alone as EXI fragments (SignedInfo)
    SchemaSet(
        id="xmldsig",
        namespace=_DS,
        xsd="xmldsig-core-schema.xsd",
        codec_module="xmldsig",
        payload_type=None,
        namespaces=(Namespace(_DS, "xmldsig", "ds"),),
    ),
)

# -20: every protocol runs CommonMessages on 0x8002 beside its own set (PROTOCOL.md section 2); DC also has the
# schedule renegotiation (0x8101) and metering confirmation (0x8102) side streams, both CommonMessages.
DC_PROTOCOL = ProtocolSpec(
    "ISO 15118-20 DC",
    _DC,
    1,
    {0x8002: "iso20-common", 0x8004: "iso20-dc", 0x8101: "iso20-common", 0x8102: "iso20-common"},
)
AC_PROTOCOL = ProtocolSpec("ISO 15118-20 AC", _AC, 1, {0x8002: "iso20-common", 0x8003: "iso20-ac"})
ACDP_PROTOCOL = ProtocolSpec("ISO 15118-20 ACDP", _ACDP, 1, {0x8002: "iso20-common", 0x8005: "iso20-acdp"})
WPT_PROTOCOL = ProtocolSpec("ISO 15118-20 WPT", _WPT, 1, {0x8002: "iso20-common", 0x8006: "iso20-wpt"})
PROTOCOLS: tuple[ProtocolSpec, ...] = (DC_PROTOCOL, AC_PROTOCOL, ACDP_PROTOCOL, WPT_PROTOCOL)

# before SAP completes, only the handshake itself
SAP_PAYLOAD_SCHEMAS: Mapping[int, str] = MappingProxyType({SAP_PAYLOAD_TYPE: "appProtocol"})

# -- derived tables ---------------------------------------------------------------------------------------
SCHEMA_SETS: Mapping[str, SchemaSet] = MappingProxyType({s.id: s for s in _SCHEMA_SETS})
SCHEMA_IDS: tuple[str, ...] = tuple(SCHEMA_SETS)
NAMESPACES: Mapping[str, Namespace] = MappingProxyType({n.uri: n for s in _SCHEMA_SETS for n in s.namespaces})
_OWNER = {n.uri: s for s in _SCHEMA_SETS for n in s.namespaces}
_BY_MODULE = {f"stack.messages.{n.module}": s.id for s in _SCHEMA_SETS for n in s.namespaces}


def _first_declared(*tables: Mapping[int, str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for table in tables:
        for payload_type, schema_id in table.items():
            out.setdefault(payload_type, schema_id)
    return dict(sorted(out.items()))


# payload type -> schema over SAP and every protocol, first declared wins (SAP keeps 0x8001): for one-off
# decoding (a CLI, a capture without its handshake), never for a connection
PAYLOAD_SCHEMAS: Mapping[int, str] = MappingProxyType(
    _first_declared(SAP_PAYLOAD_SCHEMAS, *(p.payload_schemas for p in PROTOCOLS))
)
PAYLOAD_TYPES: frozenset[int] = frozenset(PAYLOAD_SCHEMAS) | SDP_PAYLOAD_TYPES


def schema_set(schema_id: str) -> SchemaSet:
    """The schema set of a stable id (`iso20-dc`)."""
    try:
        return SCHEMA_SETS[schema_id]
    except (KeyError, TypeError):
        raise UnknownSchemaError(f"unknown schema id {schema_id!r}; known: {', '.join(SCHEMA_IDS)}") from None


def schema_set_of_namespace(uri: str) -> SchemaSet:
    """The schema set that owns a namespace (CommonTypes belongs to `iso20-common`)."""
    try:
        return _OWNER[uri]
    except (KeyError, TypeError):
        raise UnknownSchemaError(f"unknown namespace {uri!r}") from None


def default_schema_id(cls: type) -> str:
    """The schema set a generated message class is encoded with unless told otherwise: its module's owner."""
    try:
        return _BY_MODULE[cls.__module__]
    except (KeyError, AttributeError):
        name = getattr(cls, "__name__", repr(cls))
        raise UnknownSchemaError(f"{name} is not a generated message class") from None


def find_protocol(namespace: str) -> ProtocolSpec | None:
    """The protocol of a SAP ProtocolNamespace, None when we do not speak it (-2, DIN, anything else)."""
    return next((p for p in PROTOCOLS if p.namespace == namespace), None)


def payload_schemas(protocol: ProtocolSpec | None) -> Mapping[int, str]:
    """Payload type -> schema id valid on a connection: SAP's before it completes (None), then the protocol's."""
    return SAP_PAYLOAD_SCHEMAS if protocol is None else protocol.payload_schemas

"""Josev's EXI codec (EXIficient 1.55 in EXICodec.jar, through py4j) served as JSON lines on stdin/stdout.

Run by the Josev venv's python (`python -I josev_bridge.py [josev|xsd]`), never by the project's: it imports
iso15118 and py4j and nothing of ours. One request per line, one answer per line:
`{"op": ..., ...}` -> `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`; bytes travel as hex.
The first line written is the ready answer carrying the codec's options. See tools/peers/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib import metadata
from io import StringIO
from pathlib import Path
from typing import Any

NAMESPACES = {
    "appProtocol": "urn:iso:15118:2:2010:AppProtocol",
    "iso20-common": "urn:iso:std:iso:15118:-20:CommonMessages",
    "iso20-dc": "urn:iso:std:iso:15118:-20:DC",
    "iso20-ac": "urn:iso:std:iso:15118:-20:AC",
    "iso20-acdp": "urn:iso:std:iso:15118:-20:ACDP",
    "iso20-wpt": "urn:iso:std:iso:15118:-20:WPT",
}
SCHEMA_OF_NAMESPACE = {ns: schema for schema, ns in NAMESPACES.items()}
# Grammar sets for EXI fragments only: xmldsig on its own (Josev's `XSDCore`, with which it encodes the -2
# SignedInfo as a fragment). Every schema of NAMESPACES works for fragments as well.
FRAGMENT_ONLY = {"xmldsig": "http://www.w3.org/2000/09/xmldsig#"}
# The grammars the jar compiled in (EXIficient's grammars-to-Java output), one set per namespace, as
# AbstractEXICodec.getGrammar picks them.
GRAMMAR_CLASSES = {
    "appProtocol": "CommonAppProtocol",
    "iso20-common": "ISO15118_20_V2G_CI_CommonMessages",
    "iso20-dc": "ISO15118_20_V2G_CI_DC",
    "iso20-ac": "ISO15118_20_V2G_CI_AC",
    "iso20-acdp": "ISO15118_20_V2G_CI_ACDP",
    "iso20-wpt": "ISO15118_20_V2G_CI_WPT",
    "xmldsig": "XMLDSIG_Core_Schema_Grammar",
}
XSD_FILES = {
    "appProtocol": "V2G_CI_AppProtocol.xsd",
    "iso20-common": "iso15118_20/V2G_CI_CommonMessages.xsd",
    "iso20-dc": "iso15118_20/V2G_CI_DC.xsd",
    "iso20-ac": "iso15118_20/V2G_CI_AC.xsd",
    "iso20-acdp": "iso15118_20/V2G_CI_ACDP.xsd",
    "iso20-wpt": "iso15118_20/V2G_CI_WPT.xsd",
    "xmldsig": "iso15118_20/xmldsig-core-schema.xsd",
}
# AbstractEXICodec.setJAXBContext knows models for these only; for WPT and ACDP it silently keeps the
# previous call's JAXB context and encodes that message against the wrong grammar.
JSON_SCHEMAS = ("appProtocol", "iso20-common", "iso20-dc", "iso20-ac")
# The four options AbstractEXICodec's constructor sets to 0 (the V2G profile: no string-table hits).
PROFILE_OPTIONS = (
    "ValueMaxLength",
    "ValuePartitionCapacity",
    "MaximumNumberOfBuiltInElementGrammars",
    "MaximumNumberOfBuiltInProductions",
)
ENCODE_FAILED = "Error encoding stream"  # AbstractEXICodec.encode prints this and returns the partial bytes


class OracleFailure(Exception):
    """The codec refused the input (the answer is an error, the bridge keeps serving)."""


class Oracle:
    """Josev's codec object plus EXIficient's SAX API on the same JVM."""

    def __init__(self, grammars: str) -> None:
        from iso15118.shared.exi_codec import EXI

        self.josev = EXI().get_exi_codec()  # Josev's own ExificientEXICodec: launches the one JVM
        jvm = self.josev.gateway.jvm
        self.jvm = jvm
        self.exi = jvm.com.siemens.ct.exi
        # Josev's Java encoder reports some failures only on System.out (py4j sends it to /dev/null).
        self.java_out = jvm.java.io.ByteArrayOutputStream()
        jvm.java.lang.System.setOut(jvm.java.io.PrintStream(self.java_out, True))
        defaults = self.exi.core.helpers.DefaultEXIFactory.newInstance()
        self.defaults = {name: getattr(defaults, "get" + name)() for name in PROFILE_OPTIONS}
        self.josev_factory = self._exi_factory_of(self.josev.exi_codec)
        # A second EXICodec whose factory gets EXIficient's defaults back: string-table hits allowed.
        self.josev_st = jvm.com.siemens.ct.exi.main.cmd.EXICodec()
        self._set_options(self._exi_factory_of(self.josev_st), self.defaults)
        self.grammar_source = grammars
        self.xsd_dir = _copy_schemas()
        self._grammars: dict[str, Any] = {}
        self._factories: dict[tuple[str, bool, bool, bool], Any] = {}
        self._validators: dict[str, Any] = {}
        parser_factory = jvm.javax.xml.parsers.SAXParserFactory.newInstance()
        parser_factory.setNamespaceAware(True)  # as AbstractEXICodec.setUpXMLReader
        self.reader = parser_factory.newSAXParser().getXMLReader()
        self.transformers = jvm.javax.xml.transform.TransformerFactory.newInstance()

    def info(self) -> dict[str, Any]:
        fidelity = self.josev_factory.getFidelityOptions()
        return {
            "iso15118": metadata.version("iso15118"),
            "exificient": round(float(self.josev.get_version()), 2),
            "grammars": self.grammar_source,
            "strict": bool(fidelity.isStrict()),
            "fidelity": fidelity.toString(),
            "coding_mode": self.josev_factory.getCodingMode().toString(),
            "header_options": self.josev_factory.getEncodingOptions().toString(),
            "josev_options": {n: getattr(self.josev_factory, "get" + n)() for n in PROFILE_OPTIONS},
            "string_table_options": self.defaults,
        }

    def close(self) -> None:
        shutil.rmtree(self.xsd_dir, ignore_errors=True)
        self.josev.gateway.shutdown()

    def _exi_factory_of(self, codec: Any) -> Any:
        """The private `exiFactory` of an EXICodec (a field of AbstractEXICodec), by reflection."""
        owner = self.jvm.java.lang.Class.forName("com.siemens.ct.exi.main.cmd.AbstractEXICodec")
        field = owner.getDeclaredField("exiFactory")
        field.setAccessible(True)
        return field.get(codec)

    @staticmethod
    def _set_options(factory: Any, values: dict[str, int]) -> None:
        for name, value in values.items():
            getattr(factory, "set" + name)(value)

    # ---- EXIficient's SAX API on XML text ----

    def encode_xml(
        self, xml: str, string_table: bool, validate: bool, fragment: bool = False, schema: str | None = None
    ) -> bytes:
        """A document (the root element's namespace picks the grammar) or, with `fragment`, an EXI fragment
        holding the one element of `xml` in the grammar set `schema` (`setFragment(true)`, same options)."""
        if fragment:
            if schema is None:
                raise OracleFailure("a fragment needs the schema id of its grammar set")
            schema = _known(schema, fragments=True)
            _well_formed(xml)
        else:
            schema = _root_schema(xml)
        if validate:
            self._validate(schema, xml, fragment)
        return self._sax_encode(self._factory(schema, string_table, fragment), xml)

    def decode_to_xml(self, data: bytes, schema: str, string_table: bool, fragment: bool = False) -> str:
        source = self.exi.main.api.sax.EXISource(self._factory(schema, string_table, fragment))
        sax_source = self.jvm.javax.xml.transform.sax.SAXSource(self._input(bytes_=data))
        sax_source.setXMLReader(source.getXMLReader())
        writer = self.jvm.java.io.StringWriter()
        result = self.jvm.javax.xml.transform.stream.StreamResult(writer)
        self.transformers.newTransformer().transform(sax_source, result)
        xml = re.sub(r"^<\?xml[^>]*\?>", "", writer.toString())
        try:
            ET.fromstring(xml)
        except ET.ParseError:
            # Seen with truncated streams: the decoder stops mid-document without an exception.
            raise OracleFailure(f"EXIficient's decoder gave an unfinished document: {xml[-80:]!r}") from None
        return xml

    def fragment_elements(self, schema: str) -> list[str]:
        """The qnames (`{uri}local`) of the SE events of the grammar set's fragment grammar, in event-code
        order (EXI 1.0 8.5.2: FragmentContent); SE(*) and ED follow them."""
        fragment = self._grammar(_known(schema, fragments=True)).getFragmentGrammar()
        content = fragment.getProduction(0).getNextGrammar()  # Fragment: SD FragmentContent
        names = []
        for i in range(content.getNumberOfEvents()):
            event = content.getProduction(i).getEvent()
            if str(event.getEventType().toString()) == "START_ELEMENT":
                qname = event.getQName()
                names.append(f"{{{qname.getNamespaceURI()}}}{qname.getLocalPart()}")
        return names

    def _sax_encode(self, factory: Any, xml: str) -> bytes:
        out = self.jvm.java.io.ByteArrayOutputStream()
        result = self.exi.main.api.sax.EXIResult(factory)
        result.setOutputStream(out)
        self.reader.setContentHandler(result.getHandler())
        self.reader.parse(self._input(text=xml))
        return bytes(out.toByteArray())

    def _input(self, *, text: str | None = None, bytes_: bytes | None = None) -> Any:
        io = self.jvm.java.io
        stream = io.StringReader(text) if text is not None else io.ByteArrayInputStream(bytes_)
        return self.jvm.org.xml.sax.InputSource(stream)

    def _factory(self, schema: str, string_table: bool, fragment: bool = False, strict: bool = False) -> Any:
        key = (_known(schema, fragments=fragment), string_table, fragment, strict)
        if key not in self._factories:
            factory = self.exi.core.helpers.DefaultEXIFactory.newInstance()
            factory.setGrammars(self._grammar(schema))
            if not string_table:
                self._set_options(factory, {name: 0 for name in PROFILE_OPTIONS})
            if fragment:
                factory.setFragment(True)  # what AbstractEXICodec does for its signature elements
            if strict:  # only to check that an element encodes without schema deviations
                factory.setFidelityOptions(self.exi.core.FidelityOptions.createStrict())
            self._factories[key] = factory
        return self._factories[key]

    def _grammar(self, schema: str) -> Any:
        if schema not in self._grammars:
            if self.grammar_source == "xsd":
                location = (self.xsd_dir / XSD_FILES[schema]).as_uri()
                grammar = self.exi.grammars.GrammarFactory.newInstance().createGrammars(location)
            else:
                grammar = getattr(self.exi.main.generatedgrammar, GRAMMAR_CLASSES[schema])()
            self._grammars[schema] = grammar
        return self._grammars[schema]

    def _validate(self, schema: str, xml: str, fragment: bool = False) -> None:
        """Xerces validation against the schema's XSD.

        The root of a fragment may be a local element (PnC_AReqAuthorizationMode), which Xerces cannot
        validate on its own (cvc-elt.1.a); such a fragment is instead encoded once with strict grammars, which
        fail on unknown or misplaced elements and attributes and on values outside their EXI datatype (where a
        non-strict encoder writes a deviation), though not on length or pattern facets.
        """
        if schema not in self._validators:
            factory = self.jvm.javax.xml.validation.SchemaFactory.newInstance("http://www.w3.org/2001/XMLSchema")
            xsd = factory.newSchema(self.jvm.java.io.File(str(self.xsd_dir / XSD_FILES[schema])))
            self._validators[schema] = xsd.newValidator()
        source = self.jvm.javax.xml.transform.stream.StreamSource(self.jvm.java.io.StringReader(xml))
        try:
            self._validators[schema].validate(source)
        except Exception as exc:  # Py4JJavaError: a SAXParseException from Xerces
            message = _java_message(exc)
            if not (fragment and "cvc-elt.1.a" in message):
                raise OracleFailure(f"schema-invalid ({XSD_FILES[schema]}): {message}") from None
            try:
                self._sax_encode(self._factory(schema, True, True, strict=True), xml)
            except Exception as strict_exc:
                detail = _java_message(strict_exc)
                raise OracleFailure(f"not encodable with strict {schema} fragment grammars: {detail}") from None

    # ---- Josev's JSON API (EXICodec.encode/decode), exactly as Josev calls it ----

    def encode_json(self, text: str, schema: str, string_table: bool) -> bytes:
        call = self._json_encoder(schema, string_table, text)
        return self._checked_encode(call)

    def decode_json(self, data: bytes, schema: str, string_table: bool) -> str:
        call = self._json_decoder(schema, string_table, data)
        try:
            return call()
        except OracleFailure:
            raise
        except Exception as exc:
            raise OracleFailure(f"Josev's decoder: {exc}") from None

    def _json_encoder(self, schema: str, string_table: bool, text: str) -> Callable[[], Any]:
        namespace = NAMESPACES[_json_schema(schema)]
        if not string_table:
            return lambda: self.josev.encode(text, namespace)  # raises Exception(last error) on None
        codec = self.josev_st
        return lambda: codec.encode(text, namespace) or _raise(codec.get_last_encoding_error())

    def _json_decoder(self, schema: str, string_table: bool, data: bytes) -> Callable[[], str]:
        namespace = NAMESPACES[_json_schema(schema)]
        if not string_table:
            return lambda: self.josev.decode(data, namespace)
        codec = self.josev_st
        return lambda: codec.decode(data, namespace) or _raise(codec.get_last_decoding_error())

    def _checked_encode(self, call: Callable[[], Any]) -> bytes:
        self.java_out.reset()
        try:
            data = bytes(call())
        except OracleFailure:
            raise
        except Exception as exc:
            raise OracleFailure(f"Josev's encoder: {exc}") from None
        printed = self.java_out.toString()
        if ENCODE_FAILED in printed:
            # Josev itself would put these truncated bytes on the wire without noticing.
            raise OracleFailure(f"Josev's encoder: {printed.strip()} (it returns {len(data)} truncated bytes)")
        return data

    # ---- timing inside this process ----

    def bench(self, op: str, payload: bytes | str, schema: str, n: int, string_table: bool, warmup: int) -> list[float]:
        call = self._bench_call(op, payload, schema, string_table)
        for _ in range(max(1, warmup)):  # the first call also checks that the op works
            call()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return times

    def _bench_call(self, op: str, payload: bytes | str, schema: str, string_table: bool) -> Callable[[], Any]:
        if op == "decode":
            return self._json_decoder(schema, string_table, _as_bytes(payload))
        if op == "encode":
            text = payload if isinstance(payload, str) else self.decode_json(payload, schema, string_table)
            encode = self._json_encoder(schema, string_table, text)
            return lambda: self._checked_encode(encode)
        if op == "decode_xml":
            data = _as_bytes(payload)
            return lambda: self.decode_to_xml(data, schema, string_table)
        if op == "encode_xml":
            xml = payload if isinstance(payload, str) else self.decode_to_xml(payload, schema, string_table)
            factory = self._factory(_root_schema(xml), string_table)
            return lambda: self._sax_encode(factory, xml)
        raise OracleFailure(f"unknown bench op {op!r}")

    # ---- request dispatch ----

    def handle(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        st = bool(request.get("string_table", False))
        fragment = bool(request.get("fragment", False))
        if op == "encode_xml":
            validate = bool(request.get("validate", True))
            return self.encode_xml(request["xml"], st, validate, fragment, request.get("schema")).hex()
        if op == "decode_to_xml":
            return self.decode_to_xml(bytes.fromhex(request["hex"]), request["schema"], st, fragment)
        if op == "fragment_elements":
            return self.fragment_elements(request["schema"])
        if op == "encode_json":
            return self.encode_json(request["json"], request["schema"], st).hex()
        if op == "decode_json":
            return self.decode_json(bytes.fromhex(request["hex"]), request["schema"], st)
        if op == "bench":
            payload = request["text"] if "text" in request else bytes.fromhex(request["hex"])
            n, warmup = int(request["n"]), int(request.get("warmup", 1))
            return self.bench(request["bench_op"], payload, request["schema"], n, st, warmup)
        if op == "info":
            return self.info()
        raise OracleFailure(f"unknown op {op!r}")


def _copy_schemas() -> Path:
    """The package's official XSDs, laid out so that the imports resolve without a network.

    xmldsig-core-schema.xsd names the W3C DTD on the web in its DOCTYPE, which Xerces tries to fetch; the
    copy keeps the internal subset (the `dsig` entity it uses) and drops only that external identifier.
    """
    import iso15118.shared.schemas as schemas

    source = Path(schemas.__file__).parent
    target = Path(tempfile.mkdtemp(prefix="josev-xsd-"))
    (target / "iso15118_20").mkdir()
    shutil.copy(source / "V2G_CI_AppProtocol.xsd", target)
    for xsd in (source / "iso15118_20").glob("*.xsd"):
        shutil.copy(xsd, target / "iso15118_20")
    dsig = (source / "xmldsig-core-schema.xsd").read_text(encoding="utf-8")
    dsig = re.sub(r'<!DOCTYPE schema\s+PUBLIC\s+"[^"]*"\s+"[^"]*"', "<!DOCTYPE schema", dsig, count=1)
    (target / "iso15118_20" / "xmldsig-core-schema.xsd").write_text(dsig, encoding="utf-8")
    return target


def _well_formed(xml: str) -> None:
    try:
        ET.fromstring(xml)
    except ET.ParseError as exc:
        raise OracleFailure(f"not well-formed XML: {exc}") from None


def _root_schema(xml: str) -> str:
    try:
        _, root = next(ET.iterparse(StringIO(xml), events=("start",)))
    except (ET.ParseError, StopIteration) as exc:
        raise OracleFailure(f"not well-formed XML: {exc}") from None
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if namespace not in SCHEMA_OF_NAMESPACE:
        raise OracleFailure(f"root element {root.tag} is in no V2G namespace")
    return SCHEMA_OF_NAMESPACE[namespace]


def _known(schema: str, fragments: bool = False) -> str:
    known = {**NAMESPACES, **FRAGMENT_ONLY} if fragments else NAMESPACES
    if schema not in known:
        raise OracleFailure(f"unknown schema {schema!r} (one of {', '.join(known)})")
    return schema


def _json_schema(schema: str) -> str:
    if _known(schema) not in JSON_SCHEMAS:
        raise OracleFailure(f"Josev's JSON API has no message model for {NAMESPACES[schema]}")
    return schema


def _as_bytes(payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        raise OracleFailure("this bench op takes EXI bytes")
    return payload


def _raise(message: str) -> Any:
    raise OracleFailure(message)


def _java_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    return str(java.toString()) if java is not None else str(exc).splitlines()[0]


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)  # anything else printed (Josev, py4j) goes to stderr, never into the protocol
    sys.stdout = sys.stderr

    def answer(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    from py4j.protocol import Py4JJavaError, Py4JNetworkError

    try:
        oracle = Oracle(sys.argv[1] if len(sys.argv) > 1 else "josev")
    except Exception as exc:
        answer({"ok": False, "error": f"bridge start failed: {exc!r}"})
        return 1
    answer({"ok": True, "result": oracle.info()})
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                answer({"ok": True, "result": oracle.handle(json.loads(line))})
            except OracleFailure as exc:
                answer({"ok": False, "error": str(exc)})
            except Py4JJavaError as exc:
                answer({"ok": False, "error": _java_message(exc)})
            except Py4JNetworkError:
                raise  # the JVM is gone: exit, the client reports a crashed bridge
            except Exception as exc:
                answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        oracle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PnC signatures between us and Josev (stack/security/xmldsig.py), in the -2 suite Josev 0.31.2 uses for -20.

- The digest input: our EXI fragment of each signed -20 element is EXIficient's (the jar's grammars, Josev's
  options), so both sides hash the same bytes; so is the SignedInfo we sign, in the xmldsig grammar.
- Josev signs: a helper run by Josev's venv python decodes our AuthorizationReq / CertificateInstallationReq
  with Josev's own codec, signs the element with `iso15118.shared.security.create_signature` (P-256 key,
  ECDSA-SHA256, SHA-256 digests, SignedInfo in the xmldsig grammar) exactly as its EVCC does, and encodes the
  whole message again; our `verify` accepts that signature with default settings.
- Josev verifies: our signature in the header, Josev's `verify_signature` (its SECC's call) says True.

Needs Java and Josev's venv (`.peers/josev`), else the `josev` prerequisite skips or fails the tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stack import exi
from stack.security import xmldsig
from stack.security.xmldsig import DigestMismatchError, SignedPart
from tests.interop.test_josev_differential import PNC_SAMPLES, walk
from tests.unit.test_xmldsig import SIGNED  # XSD element name -> (PnC sample holding it, its class)
from tools.peers.josev import JosevExi

# the messages Josev's EVCC signs: sample, Josev's field of the signed element, ours, its XSD element name
JOSEV_SIGNED = {
    "AuthorizationReq": ("pnc_params", "pnc_a_req_authorization_mode", "PnC_AReqAuthorizationMode"),
    "CertificateInstallationReq": (
        "oem_prov_cert_chain",
        "oem_provisioning_certificate_chain",
        "OEMProvisioningCertificateChain",
    ),
}

# Run by Josev's venv python: decode the message with Josev's codec, then sign its element with Josev's
# create_signature or verify the header signature with its verify_signature, as Josev's EVCC and SECC do.
JOSEV_HELPER = """
import json, sys
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from iso15118.shared.exi_codec import EXI
from iso15118.shared.messages.enums import Namespace
from iso15118.shared.security import create_signature, verify_signature
from iso15118.shared.settings import load_shared_settings

load_shared_settings()
EXI().get_exi_codec()
request = json.loads(sys.stdin.read())
ns = Namespace.ISO_V20_COMMON_MSG
msg = EXI().from_exi(bytes.fromhex(request["message"]), ns)
element = getattr(msg, request["field"])
fragment = EXI().to_exi(element, ns)
if request["op"] == "sign":
    key = load_pem_private_key(request["key"].encode(), None)
    msg.header.signature = create_signature([(element.id, fragment)], key)
    result = {"fragment": fragment.hex(), "message": EXI().to_exi(msg, ns).hex()}
else:
    cert = bytes.fromhex(request["cert"])
    verified = verify_signature(msg.header.signature, [(element.id, fragment)], cert)
    result = {"fragment": fragment.hex(), "verified": verified}
print("RESULT " + json.dumps(result))
"""


def run_josev(venv: Path, request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", JOSEV_HELPER],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=venv,  # Josev reads a .env from its working directory
        timeout=300,
        check=False,
    )
    results = [line[len("RESULT ") :] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, f"Josev helper failed:\n{done.stderr[-4000:]}"
    answer: dict[str, Any] = json.loads(results[-1])
    return answer


def unsigned(sample: str) -> Any:
    msg = exi.from_xml(PNC_SAMPLES[sample])
    msg.header.signature = None  # type: ignore[attr-defined]
    return msg


def self_signed(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A certificate for `key`, DER: Josev's verify_signature takes the signer's public key from one."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DE8AA1A2B3C4D5X")])
    now = dt.datetime.now(dt.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def sample_elements(name: str) -> list[object]:
    sample, cls = SIGNED[name]
    return [x for x in walk(exi.from_xml(PNC_SAMPLES[sample])) if type(x) is cls]


@pytest.fixture(scope="module")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("name", SIGNED)
def test_fragment_and_digests_equal_exificients(josev_exi: JosevExi, name: str) -> None:
    (element,) = sample_elements(name)
    part = SignedPart(element, name)
    theirs = josev_exi.encode_xml(exi.to_xml(element, element=part.qname), fragment=True, schema="iso20-common")
    assert part.fragment().hex() == theirs.hex()
    for suite_key in (ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP521R1())):
        (ref,) = xmldsig.sign([part], suite_key).signed_info.reference
        expected = hashlib.sha256(theirs) if isinstance(suite_key.curve, ec.SECP256R1) else hashlib.sha512(theirs)
        assert ref.digest_value == expected.digest()


def test_signed_info_equals_exificients(josev_exi: JosevExi, p256: ec.EllipticCurvePrivateKey) -> None:
    """The bytes we sign are EXIficient's SignedInfo fragment in the standalone xmldsig grammar."""
    parts = [SignedPart(x, n) for n in ("AbsolutePriceSchedule", "PriceLevelSchedule") for x in sample_elements(n)]
    info = xmldsig.sign(parts, p256).signed_info
    ours = exi.encode_fragment(info, schema="xmldsig", element=xmldsig.SIGNED_INFO)
    xml = exi.to_xml(info, element=xmldsig.SIGNED_INFO)
    assert ours.hex() == josev_exi.encode_xml(xml, fragment=True, schema="xmldsig").hex()


@pytest.mark.parametrize("sample", JOSEV_SIGNED)
def test_josevs_signature_verifies_with_ours(josev: Path, p256: ec.EllipticCurvePrivateKey, sample: str) -> None:
    their_field, our_field, element = JOSEV_SIGNED[sample]
    pem = p256.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    request = {"op": "sign", "message": exi.encode(unsigned(sample)).hex(), "field": their_field, "key": pem}
    answer = run_josev(josev, request)
    signed = exi.decode(bytes.fromhex(answer["message"]), "iso20-common")
    part = SignedPart(getattr(signed, our_field), element)
    assert part.fragment().hex() == answer["fragment"]
    signature = signed.header.signature  # type: ignore[attr-defined]
    assert signature.signed_info.signature_method.algorithm == xmldsig.ECDSA_SHA256
    xmldsig.verify(signature, [part], p256.public_key())


@pytest.mark.parametrize("sample", JOSEV_SIGNED)
def test_our_signature_verifies_with_josevs(josev: Path, p256: ec.EllipticCurvePrivateKey, sample: str) -> None:
    their_field, our_field, element = JOSEV_SIGNED[sample]
    msg = unsigned(sample)
    msg.header.signature = xmldsig.sign([SignedPart(getattr(msg, our_field), element)], p256)
    request = {"op": "verify", "message": exi.encode(msg).hex(), "field": their_field, "cert": self_signed(p256).hex()}
    assert run_josev(josev, request)["verified"] is True
    # and Josev is not a yes-sayer: the same signature over a changed element is refused
    changed = getattr(msg, our_field)
    field = "gen_challenge" if sample == "AuthorizationReq" else "certificate"
    value = getattr(changed, field)
    setattr(changed, field, bytes([value[0] ^ 1]) + value[1:])
    with pytest.raises(DigestMismatchError):
        xmldsig.verify(msg.header.signature, [SignedPart(changed, element)], p256.public_key())
    request["message"] = exi.encode(msg).hex()
    assert run_josev(josev, request)["verified"] is False

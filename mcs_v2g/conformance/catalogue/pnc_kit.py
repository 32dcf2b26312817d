"""The tester's Plug & Charge material and the signed messages it forges: the contract it signs with (a charger
under test trusts its chain), the MO sub-CA that issued it (to issue expired ones), the OEM provisioning chain and the
CPS roots of its EV, and the MO roots and CPS of its charger (a truck under test). Each comes from the device
profile's [pnc] table, else from the tester's test PKI (`--pki`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448

from ev_emulator.pnc import ContractSetupError, load_truck_contract, provisioning
from evse_emulator.pnc import PncSetupError, load_roots
from stack.messages import iso20_common as cm
from stack.messages import xmldsig as ds
from stack.security import pki, xmldsig
from stack.session.exchanges.authorization import PNC_ELEMENT
from stack.session.pnc import Contract, Provisioning

from ..bench import Bench
from ..case import Needs
from ..verdict import Verdict, inconclusive

EXPIRED_DAYS_AGO = 10  # an expired contract of the tester ended this many days ago (valid for 30 days before)
NOT_YET_IN_DAYS = 10  # a not-yet-valid one starts this many days from now
FOREIGN_EMAID = "DEMCSC99999999"
AUTH = "AuthorizationReq"
INSTALL = "CertificateInstallationReq"
PNC = cm.Authorization.PnC
PNC_NEEDS = Needs(features=("pnc",))
INSTALL_NEEDS = Needs(features=("pnc", "certificate_installation"))
# Breaker.settings keys of our broken peer (ours imports the catalogue: no import back)
PNC_SETUP = "pnc_setup"  # ours.PNC: its PnC from the test PKI, {"install": bool, "challenge": Callable[[], bytes]}
WRAP = "wrap"  # ours.WRAP: Callable[[SessionMachine, PkiPaths], SessionMachine]


@dataclass(frozen=True)
class TesterPnc:
    """What the tester holds for PnC (None where the profile names nothing and there is no test PKI)."""

    contract: Contract | None = None
    mo_ca: pki.PkiPaths | None = None  # a folder with mo_sub_ca2.pem/.key (and mo_sub_ca1.pem): issues contracts
    provisioning: Provisioning | None = None
    mo_roots: tuple[x509.Certificate, ...] = ()
    installer: pki.PkiPaths | None = None  # the test PKI whose CPS and MO install contracts in a truck


class NoPncMaterial(Exception):
    """The tester lacks what a case needs (the case is inconclusive; the message says what)."""


def tester_pnc(bench: Bench) -> TesterPnc:
    """The tester's material from the profile's [pnc] table and the bench's test PKI; NoPncMaterial when a file
    does not load."""
    files, paths = bench.profile.pnc, bench.pki
    try:
        folder = files.contract or (paths.directory if paths else None)
        contract = load_truck_contract(folder) if folder is not None else None
        mo_ca = _mo_ca(files.mo_ca, paths, named_contract=files.contract is not None)
        prov = _provisioning(files.oem_provisioning, files.cps_roots, paths)
        mo_file = files.mo_roots or (paths.mo_root_cert if paths else None)
        mo_roots = load_roots(mo_file) if mo_file is not None else ()
    except (ContractSetupError, PncSetupError, pki.PkiError) as exc:
        raise NoPncMaterial(f"the tester's PnC files: {exc}") from None
    return TesterPnc(contract, mo_ca, prov, mo_roots, paths)


def pnc_play(play: Callable[[Bench, TesterPnc], Awaitable[Verdict]]) -> Callable[[Bench], Awaitable[Verdict]]:
    """A case's play with the tester's PnC material; inconclusive when the tester lacks what it needs."""

    async def run(bench: Bench) -> Verdict:
        try:
            kit = tester_pnc(bench)
            return await play(bench, kit)
        except NoPncMaterial as exc:
            return inconclusive(str(exc))

    return run


def _mo_ca(folder: Path | None, paths: pki.PkiPaths | None, *, named_contract: bool) -> pki.PkiPaths | None:
    """The MO sub-CA: the profile's folder, else the test PKI's (only when the contract is the PKI's too)."""
    if folder is not None:
        ca = pki.PkiPaths(folder, paths.profile if paths else pki.DEFAULT_PROFILE)
        return ca if ca.cert("mo_sub_ca2").is_file() and ca.key("mo_sub_ca2").is_file() else None
    return None if named_contract else paths


def _provisioning(folder: Path | None, cps_roots: Path | None, paths: pki.PkiPaths | None) -> Provisioning | None:
    source = pki.PkiPaths(folder, paths.profile if paths else pki.DEFAULT_PROFILE) if folder else paths
    if source is None:
        return None
    prov = provisioning(source)
    if cps_roots is not None:
        prov = dataclasses.replace(prov, trusted_roots=load_roots(cps_roots))
    return prov


def need_contract(kit: TesterPnc) -> Contract:
    if kit.contract is None:
        raise NoPncMaterial("the tester has no contract (pnc.contract in the profile, or a test PKI)")
    return kit.contract


def need_provisioning(kit: TesterPnc) -> Provisioning:
    if kit.provisioning is None:
        raise NoPncMaterial("the tester has no OEM provisioning chain (pnc.oem_provisioning, or a test PKI)")
    return kit.provisioning


def need_installer(kit: TesterPnc) -> pki.PkiPaths:
    if kit.installer is None:
        raise NoPncMaterial("the tester has no test PKI (CPS and MO) to install a contract with")
    return kit.installer


# -- contracts the tester makes ------------------------------------------------------------------------------------


def new_key_like(key: Any) -> Any:
    """A fresh private key of the kind (curve) of `key`, a private or public key."""
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return ed448.Ed448PrivateKey.generate()
    curve = key.curve if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) else ec.SECP521R1()
    return ec.generate_private_key(curve)


def issued(kit: TesterPnc, now: float, *, expired: bool) -> Contract:
    """A contract of the tester's MO sub-CA that expired `EXPIRED_DAYS_AGO` days ago, or that is valid only from
    `NOT_YET_IN_DAYS` days on (NoPncMaterial without the MO sub-CA's key)."""
    contract = need_contract(kit)
    if kit.mo_ca is None:
        raise NoPncMaterial("no MO sub-CA key the charger trusts (pnc.mo_ca in the profile) to issue a contract")
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    start = when - dt.timedelta(days=30 + EXPIRED_DAYS_AGO) if expired else when + dt.timedelta(days=NOT_YET_IN_DAYS)
    key = new_key_like(contract.private_key)
    leaf = pki.issue_contract_certificate(
        kit.mo_ca, key.public_key(), contract.emaid, validity_days=30, valid_from=start
    )
    return Contract(leaf, _mo_subs(kit.mo_ca) or contract.sub_certificates, key)


def _mo_subs(ca: pki.PkiPaths) -> tuple[x509.Certificate, ...]:
    """MO sub-CA 2 then 1 from the folder (empty when sub-CA 1 is not there)."""
    if not ca.cert("mo_sub_ca1").is_file():
        return ()
    return (pki.load_certificates(ca.cert("mo_sub_ca2"))[0], pki.load_certificates(ca.cert("mo_sub_ca1"))[0])


@functools.lru_cache(maxsize=4)
def foreign_contract(day: int, profile: pki.Profile = pki.DEFAULT_PROFILE) -> Contract:
    """A valid contract of another operator (an MO root nobody trusts), valid on `day` (days since the epoch)."""
    valid_from = dt.datetime.fromtimestamp(day * 86_400, dt.UTC) - dt.timedelta(days=30)
    with tempfile.TemporaryDirectory(prefix="mcs-v2g-foreign-mo-") as folder:
        paths = pki.generate_pki(folder, profile=profile, emaid=FOREIGN_EMAID, valid_from=valid_from)
        loaded = pki.load_contract(paths.directory)
    assert isinstance(loaded.private_key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey)
    return Contract(loaded.certificate, loaded.sub_certificates, loaded.private_key)


# -- signed requests the tester forges --------------------------------------------------------------------------


def pnc_signature(mode: cm.PncAReqAuthorizationMode, key: Any) -> ds.Signature:
    return xmldsig.sign([xmldsig.SignedPart(mode, PNC_ELEMENT)], key, xmldsig.SignatureSettings())


def with_mode(req: cm.AuthorizationReq, key: Any | None, **changes: Any) -> cm.AuthorizationReq:
    """`req` with its PnC element changed and signed again by `key` (None: no signature)."""
    mode = req.pnc_a_req_authorization_mode
    assert mode is not None
    mode = dataclasses.replace(mode, **changes)
    signature = None if key is None else pnc_signature(mode, key)
    head = dataclasses.replace(req.header, signature=signature)
    return dataclasses.replace(req, header=head, pnc_a_req_authorization_mode=mode)


def other_challenge(challenge: bytes) -> bytes:
    """A 16-byte challenge that differs from `challenge` in every byte."""
    return bytes(b ^ 0xFF for b in challenge)


def signed_other(req: cm.AuthorizationReq, key: Any) -> cm.AuthorizationReq:
    """`req` unchanged but its signature made over a changed element (the element was changed after signing)."""
    mode = req.pnc_a_req_authorization_mode
    assert mode is not None
    changed = dataclasses.replace(mode, gen_challenge=other_challenge(mode.gen_challenge))
    return dataclasses.replace(req, header=dataclasses.replace(req.header, signature=pnc_signature(changed, key)))


def flipped(signature: ds.Signature | None) -> ds.Signature | None:
    """The signature with its SignatureValue's last byte flipped (it no longer verifies)."""
    if signature is None:
        return None
    value = signature.signature_value
    raw = bytearray(value.value)
    raw[-1] ^= 0x01
    return dataclasses.replace(signature, signature_value=dataclasses.replace(value, value=bytes(raw)))

"""The truck's Plug & Charge setup: its contract (a folder with `contract_chain.pem` and `contract_leaf.key`), and
its OEM provisioning chain and key from the test PKI, to ask for a contract by CertificateInstallation."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed448

from stack.security import pki
from stack.session.pnc import Contract, EvPnc, Provisioning


class ContractSetupError(ValueError):
    """The truck's contract folder cannot be used (the message says why)."""


def load_truck_contract(directory: Path) -> Contract | None:
    """The contract in `directory`; None when the folder holds none yet (it gets one by installation)."""
    if directory.exists() and not directory.is_dir():
        raise ContractSetupError(f"--contract {directory}: a folder is needed (contract_chain.pem, contract_leaf.key)")
    if not (directory / pki.CONTRACT_CHAIN_FILE).exists() and not (directory / pki.CONTRACT_KEY_FILE).exists():
        return None
    try:
        loaded = pki.load_contract(directory)
    except pki.PkiError as exc:
        raise ContractSetupError(f"--contract {directory}: {exc}") from None
    if not isinstance(loaded.private_key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey):
        raise ContractSetupError(f"--contract {directory}: an X448 key cannot sign PnC authorizations")
    return Contract(loaded.certificate, loaded.sub_certificates, loaded.private_key)


def provisioning(paths: pki.PkiPaths) -> Provisioning:
    """The OEM provisioning chain and key of the PKI; the EV trusts its V2G root for the CPS chain."""
    leaf, *subs = pki.load_certificates(paths.oem_prov_chain)
    key = pki.load_private_key(paths.oem_prov_key, paths.key_password)
    return Provisioning(leaf, tuple(subs), key, tuple(pki.load_certificates(paths.v2g_root_cert)))


def truck_pnc(
    paths: pki.PkiPaths,
    *,
    contract: Contract | None,
    install: bool = False,
    eim_fallback: bool = False,
    keep_in: Path | None = None,
) -> EvPnc:
    """PnC with `contract` (None: install one first); `install` asks for a new one even when it holds one; an
    installed contract is stored in `keep_in` at once."""
    keep = None if keep_in is None else (lambda installed: keep_contract(keep_in, installed))
    return EvPnc(
        contract=contract, provisioning=provisioning(paths), install=install, eim_fallback=eim_fallback, keep=keep
    )


def keep_contract(directory: Path, contract: Contract) -> None:
    """Store an installed contract where `load_truck_contract` finds it next time."""
    pki.save_contract(directory, contract.certificate, contract.sub_certificates, contract.private_key)

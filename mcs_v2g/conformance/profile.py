"""The device profile: what the device under test claims to support, filled in by the user (a PICS-like TOML).

    role = "secc"                       # the device under test: "secc" (a charger) or "evcc" (a truck)
    services = ["DC", "DC_BPT", "MCS", "MCS_BPT"]
    control_modes = ["scheduled", "dynamic"]
    authorization = ["eim"]
    tls = true                          # the device speaks TLS 1.3 (the cases run over TLS)
    ed448 = false                       # the -20 Ed448 TLS profile (Ed448 certificates, X448); needs an Ed448 test PKI
    tcp = true                          # the device also accepts plain TCP (framing cases run there when TLS is off)
    pause = true                        # SessionStop Pause and a later rejoin
    standby = false                     # PowerDelivery Standby
    service_renegotiation = true
    schedule_renegotiation = false

    [pnc]                               # with "pnc" in authorization (paths relative to this file)
    certificate_installation = true     # the charger offers / the truck uses CertificateInstallation
    contract = "contract/"              # charger: a contract it accepts (contract_chain.pem, contract_leaf.key)
    mo_ca = "pki/"                      # charger, optional: mo_sub_ca2.pem/.key that issued it (expired contracts)
    oem_provisioning = "pki/"           # charger, optional: oem_prov_chain.pem, oem_prov_leaf.key (installation)
    cps_roots = "v2g_root_ca.pem"       # charger, optional: the roots the tester's EV trusts for the CPS chain
    mo_roots = "mo_root_ca.pem"         # truck: the MO root(s) the tester's charger trusts (a file or a folder)

Files the [pnc] table does not name come from the tester's test PKI (`--pki`), as do the CPS and the MO sub-CA
that install a contract in a truck under test.

A case whose preconditions the profile does not meet is inconclusive, never a fail.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from stack.session.services import ControlMode, ServiceId

SERVICE_NAMES = {"DC": ServiceId.DC, "DC_BPT": ServiceId.DC_BPT, "MCS": ServiceId.MCS, "MCS_BPT": ServiceId.MCS_BPT}
MODE_NAMES = {"scheduled": ControlMode.SCHEDULED, "dynamic": ControlMode.DYNAMIC}


class ProfileError(ValueError):
    """The profile file is missing, not TOML, or holds an unknown key or a bad value (one line)."""


@dataclass(frozen=True)
class PncFiles:
    """The [pnc] table: whether the device installs contracts, and the tester's PnC files (None: the test PKI's)."""

    certificate_installation: bool = False
    contract: Path | None = None
    mo_ca: Path | None = None
    oem_provisioning: Path | None = None
    cps_roots: Path | None = None
    mo_roots: Path | None = None


PNC_PATHS = tuple(f.name for f in fields(PncFiles) if f.name != "certificate_installation")


@dataclass(frozen=True)
class DeviceProfile:
    role: str = "secc"
    services: tuple[ServiceId, ...] = (ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT)
    control_modes: tuple[ControlMode, ...] = (ControlMode.SCHEDULED, ControlMode.DYNAMIC)
    authorization: tuple[str, ...] = ("eim",)
    tls: bool = True
    ed448: bool = False  # the -20 Ed448 TLS profile: Ed448 certificates and the X448 key exchange
    tcp: bool = True
    pause: bool = True
    standby: bool = False
    service_renegotiation: bool = True
    schedule_renegotiation: bool = False
    pnc: PncFiles = field(default_factory=PncFiles)

    def supports(self, feature: str) -> bool:
        if feature == "pnc":
            return "pnc" in self.authorization
        if feature == "certificate_installation":
            return "pnc" in self.authorization and self.pnc.certificate_installation
        return bool(getattr(self, feature))


def with_pnc(profile: DeviceProfile) -> DeviceProfile:
    """The profile of a device that does Plug & Charge with CertificateInstallation (`--pnc`)."""
    authorization = profile.authorization if "pnc" in profile.authorization else (*profile.authorization, "pnc")
    pnc = replace(profile.pnc, certificate_installation=True)
    return replace(profile, authorization=authorization, pnc=pnc)


def load_profile(path: Path | None, role: str) -> DeviceProfile:
    """The profile in `path` (None: every -20 DC feature our own devices have), checked against `role`."""
    if path is None:
        return DeviceProfile(role=role)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ProfileError(f"{path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not TOML: {exc}") from None
    profile = _parse(raw, path)
    if profile.role != role:
        raise ProfileError(f"{path}: the profile is for a {profile.role}, the command tests a {role}")
    return profile


def _parse(raw: dict[str, Any], path: Path) -> DeviceProfile:
    known = {f.name for f in fields(DeviceProfile)}
    for key in raw:
        if key not in known:
            raise ProfileError(f"{path}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "role":
            if value not in ("secc", "evcc"):
                raise ProfileError(f"{path}: role must be 'secc' or 'evcc', not {value!r}")
            values[key] = value
        elif key == "services":
            values[key] = tuple(_pick(value, SERVICE_NAMES, key, path))
        elif key == "control_modes":
            values[key] = tuple(_pick(value, MODE_NAMES, key, path))
        elif key == "authorization":
            values[key] = tuple(_pick(value, {"eim": "eim", "pnc": "pnc"}, key, path))
        elif key == "pnc":
            values[key] = _pnc(value, path)
        elif not isinstance(value, bool):
            raise ProfileError(f"{path}: {key} must be true or false, not {value!r}")
        else:
            values[key] = value
    return DeviceProfile(**values)


def _pnc(raw: object, path: Path) -> PncFiles:
    """The [pnc] table, its paths relative to the profile's folder."""
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: pnc must be a table ([pnc])")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "certificate_installation":
            if not isinstance(value, bool):
                raise ProfileError(f"{path}: pnc.{key} must be true or false, not {value!r}")
            values[key] = value
        elif key in PNC_PATHS:
            if not isinstance(value, str) or not value:
                raise ProfileError(f"{path}: pnc.{key} must be a path, not {value!r}")
            where = path.parent / value
            if not where.exists():
                raise ProfileError(f"{path}: pnc.{key}: {where} does not exist")
            values[key] = where
        else:
            known = ", ".join(("certificate_installation", *PNC_PATHS))
            raise ProfileError(f"{path}: unknown key pnc.{key} (known: {known})")
    return PncFiles(**values)


def _pick(value: object, names: dict[str, Any], key: str, path: Path) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{path}: {key} must be a non-empty list of {', '.join(names)}")
    unknown = [v for v in value if v not in names]
    if unknown:
        raise ProfileError(f"{path}: {key}: unknown {unknown[0]!r} (known: {', '.join(names)})")
    return [names[v] for v in value]

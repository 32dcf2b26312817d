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

A case whose preconditions the profile does not meet is inconclusive, never a fail.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from stack.session.services import ControlMode, ServiceId

SERVICE_NAMES = {"DC": ServiceId.DC, "DC_BPT": ServiceId.DC_BPT, "MCS": ServiceId.MCS, "MCS_BPT": ServiceId.MCS_BPT}
MODE_NAMES = {"scheduled": ControlMode.SCHEDULED, "dynamic": ControlMode.DYNAMIC}


class ProfileError(ValueError):
    """The profile file is missing, not TOML, or holds an unknown key or a bad value (one line)."""


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

    def supports(self, feature: str) -> bool:
        return bool(getattr(self, feature))


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
        elif not isinstance(value, bool):
            raise ProfileError(f"{path}: {key} must be true or false, not {value!r}")
        else:
            values[key] = value
    return DeviceProfile(**values)


def _pick(value: object, names: dict[str, Any], key: str, path: Path) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ProfileError(f"{path}: {key} must be a non-empty list of {', '.join(names)}")
    unknown = [v for v in value if v not in names]
    if unknown:
        raise ProfileError(f"{path}: {key}: unknown {unknown[0]!r} (known: {', '.join(names)})")
    return [names[v] for v in value]

"""What the timeline shows of a decoded message: its element name and its key values (SessionID, processing
states, targets and present values) under their XML names, in JSON-friendly form."""

from __future__ import annotations

from enum import Enum
from typing import Any

from stack.messages import app_protocol as ap
from stack.messages import iso20_types as ct
from stack.messages.rational import to_float

# fields shown on the timeline (python names of the generated classes; shown under their XML names)
KEY_FIELDS = frozenset(
    {
        "session_id",
        "evccid",
        "evseid",
        "schema_id",
        "evse_processing",
        "ev_processing",
        "charge_progress",
        "charging_session",
        "selected_authorization_service",
        "service_id",
        "selected_energy_transfer_service",
        "ev_present_voltage",
        "ev_target_voltage",
        "ev_target_current",
        "ev_target_energy_request",
        "ev_maximum_charge_power",
        "ev_maximum_discharge_power",
        "ev_maximum_charge_current",
        "ev_maximum_voltage",
        "evse_present_voltage",
        "evse_present_current",
        "evse_maximum_charge_power",
        "evse_maximum_charge_current",
        "evse_maximum_voltage",
        "evse_target_active_power",
    }
)


def message_name(message: object) -> str:
    """The XSD element name of a decoded message (`DC_ChargeLoopReq`, `supportedAppProtocolReq`)."""
    local = getattr(type(message), "XSD_TYPE", type(message).__name__).rsplit("}", 1)[-1]
    return local.removesuffix("Type")


def key_values(message: object) -> dict[str, Any]:
    """The fields of KEY_FIELDS anywhere in the message (lists aside), under their XML names."""
    found: dict[str, Any] = {}
    if isinstance(message, ap.SupportedAppProtocolReq):
        found["AppProtocol"] = [
            f"{p.protocol_namespace} {p.version_number_major}.{p.version_number_minor} "
            f"SchemaID={p.schema_id} Priority={p.priority}"
            for p in message.app_protocol
        ]
    _collect(message, found)
    return found


def _collect(message: object, found: dict[str, Any]) -> None:
    for spec in getattr(type(message), "XSD_FIELDS", ()):
        value = getattr(message, spec.name)
        if value is None or isinstance(value, list):
            continue
        if spec.name in KEY_FIELDS:
            found[spec.members[0][0].rsplit("}", 1)[-1]] = plain(value)
        elif hasattr(type(value), "XSD_FIELDS") and not isinstance(value, ct.RationalNumber):
            _collect(value, found)


def plain(value: Any) -> Any:
    """A JSON-friendly form: RationalNumber as a number, bytes as hex, enums by name."""
    if isinstance(value, ct.RationalNumber):
        return to_float(value)
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, Enum):
        return value.name if isinstance(value.value, int) else str(value.value)
    if isinstance(value, int | float | str | bool):
        return value
    if hasattr(type(value), "XSD_FIELDS"):
        fields = ((spec.members[0][0].rsplit("}", 1)[-1], getattr(value, spec.name)) for spec in value.XSD_FIELDS)
        return {name: plain(v) for name, v in fields if v is not None and not isinstance(v, list)}
    return str(value)

"""Energy-transfer services and their parameter sets (PROTOCOL.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from stack.messages import iso20_common as cm


class ServiceId(IntEnum):
    AC = 1
    DC = 2
    WPT = 3
    DC_ACDP = 4
    AC_BPT = 5
    DC_BPT = 6
    DC_ACDP_BPT = 7
    MCS = 8
    MCS_BPT = 9


DC_SERVICES = frozenset({ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT})
BPT_SERVICES = frozenset({ServiceId.DC_BPT, ServiceId.MCS_BPT, ServiceId.AC_BPT, ServiceId.DC_ACDP_BPT})
SERVICE_NAMES = {"dc": ServiceId.DC, "dc-bpt": ServiceId.DC_BPT, "mcs": ServiceId.MCS, "mcs-bpt": ServiceId.MCS_BPT}


class ControlMode(IntEnum):
    SCHEDULED = 1
    DYNAMIC = 2


class MobilityNeedsMode(IntEnum):
    EVCC = 1  # the EV provides departure time and energy needs
    SECC = 2  # the SECC may provide them too; only with Dynamic control [V2G20-2663]


class Pricing(IntEnum):
    NONE = 0
    ABSOLUTE = 1
    LEVELS = 2


class BptChannel(IntEnum):
    UNIFIED = 1
    SEPARATED = 2


class GeneratorMode(IntEnum):
    GRID_FOLLOWING = 1
    GRID_FORMING = 2


class Connector(IntEnum):
    """Connector values: DC (1 Core, 2 Extended, 3 Dual2, 4 Dual4) and MCS (1 MCS ... 7 Marine) share numbers."""

    CORE_OR_MCS = 1
    EXTENDED_OR_CHAOJI = 2
    DUAL2_OR_ULTRACHAOJI = 3
    DUAL4_OR_RMCS = 4


@dataclass(frozen=True, slots=True)
class ParameterSet:
    """One ParameterSet of a ServiceDetailRes, as typed values."""

    id: int
    control_mode: ControlMode
    connector: int = Connector.CORE_OR_MCS
    mobility_needs_mode: MobilityNeedsMode = MobilityNeedsMode.EVCC
    pricing: Pricing = Pricing.NONE
    bpt_channel: BptChannel | None = None
    generator_mode: GeneratorMode | None = None

    def to_xsd(self) -> cm.ParameterSet:
        values = [
            ("Connector", int(self.connector)),
            ("ControlMode", int(self.control_mode)),
            ("MobilityNeedsMode", int(self.mobility_needs_mode)),
            ("Pricing", int(self.pricing)),
        ]
        if self.bpt_channel is not None:
            values.append(("BPTChannel", int(self.bpt_channel)))
        if self.generator_mode is not None:
            values.append(("GeneratorMode", int(self.generator_mode)))
        return cm.ParameterSet(
            parameter_set_id=self.id, parameter=[cm.Parameter(name=n, int_value=v) for n, v in values]
        )

    @classmethod
    def from_xsd(cls, ps: cm.ParameterSet) -> ParameterSet:
        """Read a ParameterSet; unknown parameters are ignored, missing ones take the defaults."""
        values: dict[str, int] = {}
        for p in ps.parameter:
            number = next((v for v in (p.int_value, p.short_value, p.byte_value) if v is not None), None)
            if number is not None:
                values[p.name] = number
        try:
            return cls(
                id=ps.parameter_set_id,
                control_mode=ControlMode(values.get("ControlMode", ControlMode.SCHEDULED)),
                connector=values.get("Connector", Connector.CORE_OR_MCS),
                mobility_needs_mode=MobilityNeedsMode(values.get("MobilityNeedsMode", MobilityNeedsMode.EVCC)),
                pricing=Pricing(values.get("Pricing", Pricing.NONE)),
                bpt_channel=BptChannel(values["BPTChannel"]) if "BPTChannel" in values else None,
                generator_mode=GeneratorMode(values["GeneratorMode"]) if "GeneratorMode" in values else None,
            )
        except ValueError as exc:
            raise ValueError(f"parameter set {ps.parameter_set_id}: {exc}") from None


@dataclass(frozen=True, slots=True)
class ServiceOffer:
    """An energy-transfer service the SECC offers, with its parameter sets."""

    service_id: ServiceId
    parameter_sets: tuple[ParameterSet, ...]
    free: bool = True

    def parameter_set(self, parameter_set_id: int) -> ParameterSet | None:
        return next((p for p in self.parameter_sets if p.id == parameter_set_id), None)

    def detail(self) -> cm.ServiceParameterList:
        return cm.ServiceParameterList(parameter_set=[p.to_xsd() for p in self.parameter_sets])


def dc_offer(
    service_id: ServiceId, control_modes: tuple[ControlMode, ...] = (ControlMode.SCHEDULED, ControlMode.DYNAMIC)
) -> ServiceOffer:
    """A DC-family service with one parameter set per control mode (ids 1, 2, ...)."""
    bpt = service_id in BPT_SERVICES
    sets = tuple(
        ParameterSet(
            id=i,
            control_mode=mode,
            mobility_needs_mode=MobilityNeedsMode.EVCC,
            bpt_channel=BptChannel.UNIFIED if bpt else None,
            generator_mode=GeneratorMode.GRID_FOLLOWING if bpt else None,
        )
        for i, mode in enumerate(control_modes, 1)
    )
    return ServiceOffer(service_id, sets)


def default_offers() -> tuple[ServiceOffer, ...]:
    """DC, DC_BPT, MCS, MCS_BPT, each with a Scheduled and a Dynamic set (a CCS-only EV finds its service)."""
    return tuple(dc_offer(s) for s in (ServiceId.DC, ServiceId.DC_BPT, ServiceId.MCS, ServiceId.MCS_BPT))

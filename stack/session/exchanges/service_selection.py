"""ServiceDiscovery, ServiceDetail and ServiceSelection: which energy service and parameter set the session uses
(PROTOCOL.md 4.3 and 5)."""

from __future__ import annotations

from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.messages import iso20_types as ct
from stack.messages.minimal import minimal

from ..exchange import Answer, EvccContext, Handlers, SeccContext, SendNext, Step, StopSession
from ..rules import decision, request_rule, response_rule
from ..services import ParameterSet, ServiceId, ServiceOffer
from ..state import Outcome, SessionState
from .common import code_outcome, header

RC = ct.ResponseCode


def _outcome(req: object, res: cm.ServiceDiscoveryRes | cm.ServiceDetailRes | cm.ServiceSelectionRes) -> Outcome:
    return code_outcome(res.response_code) or Outcome.OK


def _known_services(ids: list[int]) -> list[ServiceId]:
    known = []
    for service_id in ids:
        try:
            known.append(ServiceId(service_id))
        except ValueError:
            continue
    return known


# -- ServiceDiscovery --------------------------------------------------------------------------------------------

NO_COMMON_SERVICE = decision(
    "MV-NO-COMMON-SERVICE",
    RC.FAILED_NoEnergyTransferServiceSelected,
    "None of the SECC's energy services is among the EV's SupportedServiceIDs.",
    "PROTOCOL.md 4.3 (LIB15118 service_discovery.cpp filters by SupportedServiceIDs)",
)


@response_rule("MV-SERVICE-FILTER", "PROTOCOL.md 4.3 (the SECC must not offer services outside this list)")
def offer_within_supported_ids(state: SessionState, req: cm.ServiceDiscoveryReq, res: cm.ServiceDiscoveryRes) -> bool:
    """The SECC offers no energy service outside the EV's SupportedServiceIDs."""
    if req.supported_service_ids is None:
        return True
    wanted = set(req.supported_service_ids.service_id)
    return all(s.service_id in wanted for s in res.energy_transfer_service_list.service)


def offers_for(secc: SeccContext, req: cm.ServiceDiscoveryReq) -> tuple[ServiceOffer, ...]:
    offers = secc.config.offers
    if req.supported_service_ids is not None:  # offer nothing outside the EV's list
        wanted = set(req.supported_service_ids.service_id)
        offers = tuple(o for o in offers if o.service_id in wanted)
    return offers


def answer_discovery(secc: SeccContext, req: cm.ServiceDiscoveryReq, now: float) -> Answer:
    head = header(secc.state.session_id, now)
    offers = offers_for(secc, req)
    if not offers:
        response = minimal(cm.ServiceDiscoveryRes, header=head, response_code=NO_COMMON_SERVICE.code)
        return Answer(response, NO_COMMON_SERVICE)
    return Answer(
        cm.ServiceDiscoveryRes(
            header=head,
            response_code=RC.OK,
            service_renegotiation_supported=secc.config.service_renegotiation,
            energy_transfer_service_list=cm.ServiceList(
                service=[cm.Service(service_id=int(o.service_id), free_service=o.free) for o in offers]
            ),
        )
    )


def apply_discovery(
    state: SessionState, req: cm.ServiceDiscoveryReq, res: cm.ServiceDiscoveryRes, result: Outcome
) -> SessionState:
    if result is not Outcome.OK:
        return state
    supported = None if req.supported_service_ids is None else tuple(req.supported_service_ids.service_id)
    return state.to(
        state.phase,
        supported_service_ids=supported,
        offered_services=tuple(s.service_id for s in res.energy_transfer_service_list.service),
        renegotiation_supported=res.service_renegotiation_supported,
        parameter_sets={},
    )


def build_discovery(ev: EvccContext, now: float) -> cm.ServiceDiscoveryReq:
    return cm.ServiceDiscoveryReq(header=header(ev.state.session_id, now))


def react_discovery(
    ev: EvccContext, req: cm.ServiceDiscoveryReq, res: cm.ServiceDiscoveryRes, result: Outcome, now: float
) -> Step:
    offered = _known_services(list(ev.state.offered_services))
    chosen = ev.controller.choose_service(offered, now)
    if chosen is None:
        return StopSession(f"no acceptable service among {[int(s) for s in offered]}")
    return SendNext(cm.ServiceDetailReq, options={"service_id": int(chosen)})


SERVICE_DISCOVERY = Handlers(
    answer=answer_discovery, outcome=_outcome, build=build_discovery, react=react_discovery, apply=apply_discovery
)

# -- ServiceDetail -----------------------------------------------------------------------------------------------


@request_rule("V2G20-464", RC.FAILED_ServiceIDInvalid, "PROTOCOL.md 4.3 (JOSEV ServiceDetail, LIB15118 service_detail)")
def detail_of_an_offered_service(state: SessionState, req: cm.ServiceDetailReq) -> bool:
    """The EV asks for the details of a service the SECC offered in ServiceDiscoveryRes."""
    return req.service_id in state.offered_services


@response_rule("MV-SERVICE-DETAIL", "PROTOCOL.md 4.3 and 5 (ServiceDetailRes echoes the ServiceID)")
def detail_of_the_requested_service(state: SessionState, req: cm.ServiceDetailReq, res: cm.ServiceDetailRes) -> bool:
    """ServiceDetailRes describes the requested service with parameter sets whose values are known."""
    if res.service_id != req.service_id:
        return False
    try:
        for parameter_set in res.service_parameter_list.parameter_set:
            ParameterSet.from_xsd(parameter_set)
    except ValueError:
        return False
    return True


def answer_detail(secc: SeccContext, req: cm.ServiceDetailReq, now: float) -> Answer:
    offer = next(o for o in secc.config.offers if o.service_id == req.service_id)
    return Answer(
        cm.ServiceDetailRes(
            header=header(secc.state.session_id, now),
            response_code=RC.OK,
            service_id=req.service_id,
            service_parameter_list=offer.detail(),
        )
    )


def apply_detail(
    state: SessionState, req: cm.ServiceDetailReq, res: cm.ServiceDetailRes, result: Outcome
) -> SessionState:
    if result is not Outcome.OK:
        return state
    sets = tuple(ParameterSet.from_xsd(p) for p in res.service_parameter_list.parameter_set)
    return state.to(state.phase, parameter_sets={**state.parameter_sets, res.service_id: sets})


def build_detail(ev: EvccContext, now: float, service_id: int) -> cm.ServiceDetailReq:
    return cm.ServiceDetailReq(header=header(ev.state.session_id, now), service_id=service_id)


def react_detail(
    ev: EvccContext, req: cm.ServiceDetailReq, res: cm.ServiceDetailRes, result: Outcome, now: float
) -> Step:
    service = ServiceId(req.service_id)
    sets = list(ev.state.parameter_sets.get(req.service_id, ()))
    chosen = ev.controller.choose_parameter_set(service, sets, now)
    if chosen is None:
        return StopSession("no acceptable parameter set")
    return SendNext(cm.ServiceSelectionReq, options={"service_id": int(service), "parameter_set_id": chosen.id})


SERVICE_DETAIL = Handlers(
    answer=answer_detail, outcome=_outcome, build=build_detail, react=react_detail, apply=apply_detail
)

# -- ServiceSelection --------------------------------------------------------------------------------------------


@request_rule(
    "MV-SELECTION-OFFERED",
    RC.FAILED_NoEnergyTransferServiceSelected,
    "PROTOCOL.md 4.3 and 7 (JOSEV, LIB15118 service_selection.cpp)",
)
def selected_service_offered(state: SessionState, req: cm.ServiceSelectionReq) -> bool:
    """The selected energy service is one the SECC offered."""
    return req.selected_energy_transfer_service.service_id in state.offered_services


@request_rule(
    "MV-PARAMETER-SET-OFFERED",
    RC.FAILED_ServiceSelectionInvalid,
    "PROTOCOL.md 4.3 and 7 (JOSEV, LIB15118 service_selection.cpp)",
)
def selected_parameter_set_offered(state: SessionState, req: cm.ServiceSelectionReq) -> bool:
    """The selected parameter set is one ServiceDetailRes listed for the selected service."""
    selected = req.selected_energy_transfer_service
    sets = state.parameter_sets.get(selected.service_id, ())
    return any(p.id == selected.parameter_set_id for p in sets)


@request_rule("MV-NO-VAS", RC.FAILED_ServiceSelectionInvalid, "PROTOCOL.md 4.3 and 7 (a VAS the SECC did not offer)")
def no_value_added_service(state: SessionState, req: cm.ServiceSelectionReq) -> bool:
    """The EV selects no value-added service (this SECC offers none)."""
    return not (req.selected_vas_list and req.selected_vas_list.selected_service)


def answer_selection(secc: SeccContext, req: cm.ServiceSelectionReq, now: float) -> Answer:
    return Answer(cm.ServiceSelectionRes(header=header(secc.state.session_id, now), response_code=RC.OK))


def apply_selection(
    state: SessionState, req: cm.ServiceSelectionReq, res: cm.ServiceSelectionRes, result: Outcome
) -> SessionState:
    if result is not Outcome.OK:
        return state
    selected = req.selected_energy_transfer_service
    parameter_set = next(p for p in state.parameter_sets[selected.service_id] if p.id == selected.parameter_set_id)
    return state.to(state.phase, service=ServiceId(selected.service_id), parameter_set=parameter_set)


def build_selection(ev: EvccContext, now: float, service_id: int, parameter_set_id: int) -> cm.ServiceSelectionReq:
    selected = cm.SelectedService(service_id=service_id, parameter_set_id=parameter_set_id)
    return cm.ServiceSelectionReq(header=header(ev.state.session_id, now), selected_energy_transfer_service=selected)


def react_selection(
    ev: EvccContext, req: cm.ServiceSelectionReq, res: cm.ServiceSelectionRes, result: Outcome, now: float
) -> Step:
    return SendNext(dc.DcChargeParameterDiscoveryReq)


SERVICE_SELECTION = Handlers(
    answer=answer_selection, outcome=_outcome, build=build_selection, react=react_selection, apply=apply_selection
)

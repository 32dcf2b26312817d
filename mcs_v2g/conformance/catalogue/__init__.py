"""The catalogue: every test case, by family. A case id is stable; `CATALOGUE` keeps them in a fixed order."""

from __future__ import annotations

from ..case import Case
from . import (
    evcc_charging,
    evcc_faults,
    evcc_session,
    pnc_cases,
    pnc_truck,
    sdp_cases,
    secc_flow,
    secc_rules,
    secc_sap,
    secc_session,
    tls_cases,
    transport,
)

CATALOGUE: tuple[Case, ...] = (
    *secc_session.cases(),
    *secc_rules.cases(),
    *secc_sap.cases(),
    *secc_flow.cases(),
    *evcc_session.cases(),
    *evcc_faults.cases(),
    *evcc_charging.cases(),
    *transport.cases(),
    *tls_cases.cases(),
    *sdp_cases.cases(),
    *pnc_cases.cases(),
    *pnc_truck.cases(),
)
PNC: tuple[Case, ...] = tuple(case for case in CATALOGUE if "pnc" in case.tags)
BY_ID = {case.id: case for case in CATALOGUE}

if len(BY_ID) != len(CATALOGUE):  # an id twice is a bug of the catalogue, found at import
    raise RuntimeError("two cases share an id")

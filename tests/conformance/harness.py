"""Run one case of the catalogue against our own device (good) or our peer broken by the case's breaker, in this
process on a virtual clock over an in-memory link (TLS when asked or when the case is tagged `tls`), with the
device's SDP side over real UDP on the loopback interface (::1)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from mcs_v2g.conformance.bench import LinkBench, SdpDevice
from mcs_v2g.conformance.case import Case
from mcs_v2g.conformance.ours import SDP_SIDE, Closers, broken, broken_sdp, our_evcc, our_sdp, our_secc
from mcs_v2g.conformance.profile import DeviceProfile, PncFiles
from mcs_v2g.conformance.runner import run_case
from mcs_v2g.conformance.verdict import CaseResult
from stack.clock import VirtualClock
from stack.security.pki import PkiPaths, ensure_pki, generate_pki

PKI_VALID_FROM = dt.datetime.fromtimestamp(VirtualClock().start, dt.UTC) - dt.timedelta(days=90)
PNC_PROFILE = PncFiles(certificate_installation=True)


def make_pki(directory: Path) -> PkiPaths:
    """The test PKI, valid on the virtual clock (PnC contracts are checked in its time) and now (TLS)."""
    return generate_pki(directory, validity_days=3650, valid_from=PKI_VALID_FROM)


def pki_for(case: Case, pki: PkiPaths) -> PkiPaths:
    """The PKI both sides of `case` use: `pki`, or for a case tagged `ed448` an Ed448 PKI made beside it once."""
    if "ed448" not in case.tags:
        return pki
    return ensure_pki(pki.directory.with_name(f"{pki.directory.name}-ed448"), "ed448")


def play_against(case: Case, pki: PkiPaths, *, good: bool, tls: bool | None = None) -> CaseResult:
    """The case's result against our good device, or against our peer broken by its breaker; over TLS when
    `tls` (default: when the case is tagged `tls`). Our device claims the Ed448 profile when its PKI is Ed448."""
    tls = "tls" in case.tags if tls is None else tls
    pki = pki_for(case, pki)
    clock = VirtualClock()
    pnc = "pnc" in case.tags
    authorization = ("eim", "pnc") if pnc else ("eim",)
    profile = DeviceProfile(
        role=case.role, tls=tls, ed448=pki.profile == "ed448", authorization=authorization, pnc=PNC_PROFILE
    )

    async def run() -> CaseResult:
        closers: Closers = []
        sdp: SdpDevice | None
        if good:
            device = (our_secc if case.role == "secc" else our_evcc)(clock, pki, tls, plug_and_charge=pnc, install=pnc)
            sdp = our_sdp(case.role, tls, closers)
        else:
            device = broken(case.role, case.breaker, clock, pki, tls)
            sdp = broken_sdp(case.role, case.breaker.settings.get(SDP_SIDE), closers)
        return await run_case(case, LinkBench(profile, clock, pki, device, sdp, closers))

    return clock.run(run())

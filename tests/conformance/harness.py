"""Run one case of the catalogue against our own device (good) or our peer broken by the case's breaker, in this
process on a virtual clock over an in-memory link (TLS when asked or when the case is tagged `tls`), with the
device's SDP side over real UDP on the loopback interface (::1)."""

from __future__ import annotations

from pathlib import Path

from mcs_v2g.conformance.bench import LinkBench
from mcs_v2g.conformance.case import Case
from mcs_v2g.conformance.ours import SDP_SIDE, Closers, broken, broken_sdp, our_evcc, our_sdp, our_secc
from mcs_v2g.conformance.profile import DeviceProfile
from mcs_v2g.conformance.runner import run_case
from mcs_v2g.conformance.verdict import CaseResult
from stack.clock import VirtualClock
from stack.security.pki import PkiPaths, ensure_pki


def make_pki(directory: Path) -> PkiPaths:
    return ensure_pki(directory, "secp521r1")


def play_against(case: Case, pki: PkiPaths, *, good: bool, tls: bool | None = None) -> CaseResult:
    """The case's result against our good device, or against our peer broken by its breaker; over TLS when
    `tls` (default: when the case is tagged `tls`)."""
    tls = "tls" in case.tags if tls is None else tls
    clock = VirtualClock()
    profile = DeviceProfile(role=case.role, tls=tls)

    async def run() -> CaseResult:
        closers: Closers = []
        if good:
            device = (our_secc if case.role == "secc" else our_evcc)(clock, pki, tls)
            sdp = our_sdp(case.role, tls, closers)
        else:
            device = broken(case.role, case.breaker, clock, pki, tls)
            sdp = broken_sdp(case.role, case.breaker.settings.get(SDP_SIDE), closers)
        return await run_case(case, LinkBench(profile, clock, pki, device, sdp, closers))

    return clock.run(run())

"""What a run records goes whole into its pcapng: every case's TCP connections (one stream each, even where the
in-memory link gives them the same made-up addresses) and its SDP datagrams, read back by `read_capture`."""

from __future__ import annotations

from pathlib import Path

from mcs_v2g.capture.pcapng import write_pcapng
from mcs_v2g.capture.reader import read_capture
from mcs_v2g.conformance.catalogue import BY_ID
from mcs_v2g.conformance.recordings import merge

from .harness import make_pki, play_against


def test_cases_merge_into_one_capture_with_their_sdp(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ids = ("SECC-SDP-TCP", "SECC-SESSION-DC-DYNAMIC", "SECC-SEQ-DC-PRECHARGE")
    results = [play_against(BY_ID[i], pki, good=True) for i in ids]
    assert all(r.verdict.outcome.value == "pass" for r in results)
    merged = merge(r.recording for r in results)
    assert len(merged.connections) == 2 and len({(c.ev, c.evse) for c in merged.connections}) == 2
    assert len(merged.datagrams) >= 2  # the SDP request and its answer
    write_pcapng(merged, tmp_path / "run.pcapng")
    back = read_capture(tmp_path / "run.pcapng")
    assert [d.data for d in back.datagrams] == [d.data for d in merged.datagrams]
    for c in merged.connections:
        for to_evse in (True, False):
            assert back.stream(c.id, to_evse) == merged.stream(c.id, to_evse)

"""The offline checker on timelines of a clean in-memory session of our stack and on crafted deviations."""

from __future__ import annotations

import dataclasses

import pytest

from examples.minimal_controllers import MinimalEv, MinimalEvse
from mcs_v2g.capture.check import check
from mcs_v2g.capture.decode import decode
from mcs_v2g.capture.pcapng import write_pcapng
from mcs_v2g.capture.wire import Connection, Endpoint, Recording, Segment
from mcs_v2g.cli import main
from stack import exi, schemas, v2gtp
from stack.messages import app_protocol as ap
from stack.messages import iso20_common as cm
from stack.messages import iso20_dc as dc
from stack.session.evcc import EvccConfig, EvccSession
from stack.session.secc import SeccSession
from stack.session.timers import EvccTimers
from stack.transport.link import VirtualLink

FAST = EvccConfig(timers=EvccTimers(loop_interval=0.0, charge_loop_interval=0.0))
EV, EVSE = Endpoint("fe80::1", 50123), Endpoint("fe80::2", 50000)
Message = tuple[float, str, object]


@pytest.fixture(scope="module")
def clean() -> list[Message]:
    return VirtualLink(EvccSession(MinimalEv(), FAST), SeccSession(MinimalEvse())).run().messages


def frame(message: object) -> bytes:
    schema = schemas.default_schema_id(type(message))
    payload_type = schemas.schema_set(schema).payload_type
    assert payload_type is not None
    return v2gtp.build(payload_type, exi.encode(message, schema=schema))


def recording(messages: list[Message]) -> Recording:
    segments = tuple(Segment(t, 0, d == "ev->evse", frame(m)) for t, d, m in messages)
    return Recording((Connection(0, EV, EVSE, False),), segments)


def findings(messages: list[Message]):
    return check(decode(recording(messages))).findings


def test_a_clean_session_has_no_findings(clean) -> None:
    result = check(decode(recording(clean)))
    assert result.findings == [] and result.unchecked == []
    assert len(clean) > 30


def test_a_request_out_of_sequence(clean) -> None:
    # drop the ServiceDiscovery exchange: ServiceDetailReq comes while the session is only authorized
    i = next(i for i, (_, _, m) in enumerate(clean) if isinstance(m, cm.ServiceDiscoveryReq))
    found = findings(clean[:i] + clean[i + 2 :])
    first = found[0]
    assert first.rule_id == "MV-SEQUENCE" and first.message == "ServiceDetailReq"
    assert "ServiceDiscoveryReq" in first.expected and "authorized" in first.expected
    # our SECC in this transcript answered OK, not FAILED_SequenceError: that is reported too
    assert found[1].rule_id == "MV-SEQUENCE" and "FAILED_SequenceError" in found[1].expected


def test_a_wrong_session_id(clean) -> None:
    i = next(i for i, (_, _, m) in enumerate(clean) if isinstance(m, dc.DcChargeLoopReq))
    t, d, request = clean[i]
    forged = dataclasses.replace(request, header=dataclasses.replace(request.header, session_id=b"\xde\xad" * 4))
    found = findings([*clean[:i], (t, d, forged), *clean[i + 1 :]])
    assert found[0].rule_id == "MV-SESSION-ID" and found[0].message == "DC_ChargeLoopReq"
    assert found[0].seen == "SessionID DEADDEADDEADDEAD" and found[0].t == t


def test_a_late_response_and_a_wrong_response_type(clean) -> None:
    i = next(i for i, (_, _, m) in enumerate(clean) if isinstance(m, dc.DcChargeLoopRes))
    late = [(t + 3.0 if n >= i else t, d, m) for n, (t, d, m) in enumerate(clean)]
    found = findings(late)
    assert [f.rule_id for f in found] == ["V2G_EVCC_Msg_Timeout"]
    assert found[0].expected == "within 0.5 s" and found[0].seen.startswith("after 3.0")
    j = next(i for i, (_, _, m) in enumerate(clean) if isinstance(m, cm.AuthorizationSetupRes))
    wrong = [*clean[:j], (clean[j][0], "evse->ev", clean[j - 2][2]), *clean[j + 1 :]]
    assert findings(wrong)[0].rule_id == "MV-RESPONSE-TYPE"


def test_a_sequence_timeout(clean) -> None:
    i = next(i for i, (_, _, m) in enumerate(clean) if isinstance(m, cm.AuthorizationReq))
    slow = [(t + 61.0 if n >= i else t, d, m) for n, (t, d, m) in enumerate(clean)]
    assert [f.rule_id for f in findings(slow)] == ["V2G_SECC_Sequence_Timeout"]


def test_unknown_protocols_are_not_checked(clean) -> None:
    segments = [Segment(1.0, 0, True, v2gtp.build(0x8001, b"\x80\x9a\x00"))]
    result = check(decode(Recording((Connection(0, EV, EVSE, False),), segments)))
    assert result.findings == [] and "not checked" in result.unchecked[0]


def test_the_cli_exits_1_on_findings(clean, tmp_path, capsys) -> None:
    i = next(i for i, (_, _, m) in enumerate(clean) if isinstance(m, cm.ServiceDiscoveryReq))
    path = tmp_path / "bad.pcapng"
    write_pcapng(recording(clean[:i] + clean[i + 2 :]), path)
    assert main(["capture", "decode", str(path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "[MV-SEQUENCE]" in out and "ServiceDetailReq" in out
    write_pcapng(recording(clean), path)
    assert main(["capture", "decode", str(path), "--check"]) == 0
    assert "findings: 0" in capsys.readouterr().out


def test_a_sap_request_after_a_failed_negotiation(clean) -> None:
    (t, _, request), refused = clean[0], ap.SupportedAppProtocolRes(response_code=ap.ResponseCode.Failed_NoNegotiation)
    again = [(t, "ev->evse", request), (t + 1, "evse->ev", refused)]
    # the session ended with the refusal: a second request breaks the sequence, and is refused as it must be
    later = [(t + 2, d, m) for t, d, m in again]
    assert [f.rule_id for f in findings(again + later)] == ["MV-SEQUENCE"]
    accepted = [*again, later[0], (t + 3, "evse->ev", clean[1][2])]
    found = findings(accepted)
    assert [f.rule_id for f in found] == ["MV-SEQUENCE", "MV-SEQUENCE"] and "Failed_NoNegotiation" in found[1].expected


def test_messages_outside_the_rulebook_stop_the_check(clean) -> None:
    from stack.messages import iso20_ac as ac
    from stack.messages.minimal import minimal

    offer = ap.AppProtocol(
        protocol_namespace=schemas.AC_PROTOCOL.namespace,
        version_number_major=1,
        version_number_minor=0,
        schema_id=1,
        priority=1,
    )
    sap_ok = ap.ResponseCode.OK_SuccessfulNegotiation
    t = clean[0][0]
    sap = [
        (t, "ev->evse", ap.SupportedAppProtocolReq(app_protocol=[offer])),
        (t, "evse->ev", ap.SupportedAppProtocolRes(response_code=sap_ok, schema_id=1)),
    ]
    setup = clean[2:4]
    ac_request = minimal(ac.AcChargeParameterDiscoveryReq, header=setup[1][2].header)
    result = check(decode(recording([*sap, *setup, (t + 1, "ev->evse", ac_request)])))
    assert result.findings == []
    assert "the rulebook has no rules for iso20-ac messages (AC_ChargeParameterDiscoveryReq)" in result.unchecked[0]

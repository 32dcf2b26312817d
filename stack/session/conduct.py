"""Rules of conduct around the exchanges: how a session ends, how a device treats valid and broken input, and the
transport rules (SDP, V2GTP, TLS). Our machines keep them by construction; the conformance runner judges a device
by them, so each has an id and a source like every rule of the rulebook (`rulebook.all_rules` lists them).
"""

from __future__ import annotations

from .rules import Rule, RuleKind


def _rule(rule_id: str, text: str, source: str) -> Rule:
    return Rule(rule_id, text, source, RuleKind.CONDUCT)


ACCEPTS_VALID = _rule(
    "MV-ACCEPT-VALID",
    "The SECC accepts a request that keeps every rule: it answers OK (or Ongoing) unless one of its own decisions "
    "refuses, and then with that decision's code.",
    "PROTOCOL.md 4.2 and 7 (the codes are for broken requests and the SECC's decisions)",
)
ENDS_AFTER_FAILED = _rule(
    "MV-END-AFTER-FAILED",
    "After a FAILED_* response the session is over: the SECC answers no further request and the TCP connection is "
    "closed within 5 s (the SECC waits up to 5 s for the EV to close first).",
    "PROTOCOL.md 7 (LIB15118: a code >= FAILED ends the session) and 6.2 ([V2G20-1643] 5 s before the TCP close)",
)
EV_STOPS_AFTER_FAILED = _rule(
    "MV-EV-STOP-AFTER-FAILED",
    "An EV that gets a FAILED_* response sends no further request on that session and closes the connection.",
    "PROTOCOL.md 7 and 6.2 (JOSEV: the EV stops the session on a failed response)",
)
EV_CLOSES_ON_TIMEOUT = _rule(
    "MV-EV-CLOSE-ON-TIMEOUT",
    "An EV whose request is not answered within V2G_EVCC_Msg_Timeout stops the session: it sends no further "
    "request and closes the connection within 5 s after the timeout, and it does not give up before the timeout.",
    "PROTOCOL.md 6.1 and 6.2 (what happens on timeout: the waiting side stops the session; the TCP close follows "
    "within 5 s, [V2G20-1633] in Josev, [V2G20-1643] in LIB15118)",
)
SECC_CLOSES_ON_SEQUENCE_TIMEOUT = _rule(
    "MV-SECC-SEQUENCE-CLOSE",
    "An SECC that gets no request within V2G_SECC_Sequence_Timeout (60 s) ends the session and closes the TCP "
    "connection, not before the timeout.",
    "PROTOCOL.md 6.2 (LIB15118: sequence timeout -> session stopped, TCP closed)",
)
EV_HONOURS_TERMINATE = _rule(
    "MV-EV-TERMINATE",
    "An EV told EVSENotification Terminate in the charge loop ends charging: its next requests lead to "
    "PowerDelivery Stop and SessionStop, within the notification's MaxDelay.",
    "PROTOCOL.md 4.3 (EVSENotification, EVSENotificationMaxDelay) and 4.5",
)
EV_WITHIN_LIMITS = _rule(
    "MV-EV-WITHIN-LIMITS",
    "An EV's targets stay within the EVSE's maximum limits it was given (current, voltage, power).",
    "PROTOCOL.md 4.3 (DC_ChargeParameterDiscoveryRes limits, DC_ChargeLoopRes present limits)",
)
V2GTP_HEADER = _rule(
    "MV-V2GTP-HEADER",
    "A frame whose V2GTP header is malformed (version/inverse, payload type the protocol does not carry, length) "
    "or whose EXI does not decode is not answered: the receiver closes the TCP connection.",
    "PROTOCOL.md 2 (EvseV2G and LIB15118 close the connection; Josev stops the session)",
)
SERVES_AFTER_ABUSE = _rule(
    "MV-SERVES-AFTER-ABUSE",
    "A charger that closed a broken connection serves the next, well-behaved session.",
    "PROTOCOL.md 2 (a bad connection is closed, the SECC keeps listening)",
)
SDP_ANSWER = _rule(
    "MV-SDP-ANSWER",
    "The SECC answers a valid SDP request (0x9000, 2 bytes: security, transport TCP) with a 20-byte SDP response "
    "(0x9001) naming its IPv6 address, a TCP port and a security it offers, matching the request where it can.",
    "PROTOCOL.md 1 (JOSEV sdp.py, LIB15118 sdp_server.cpp)",
)
SDP_IGNORES_BAD = _rule(
    "MV-SDP-IGNORE-BAD",
    "The SECC does not answer a malformed SDP datagram (bad header, wrong length, UDP transport) and keeps "
    "answering valid ones.",
    "PROTOCOL.md 1 and 2 (LIB15118 sdp_server.cpp ignores bad datagrams)",
)
SAP_PRIORITY = _rule(
    "MV-SAP-PRIORITY",
    "The SECC answers SAP with the SchemaID of the highest-priority protocol it supports (priority 1 first); "
    "Failed_NoNegotiation when it supports none, and then closes.",
    "PROTOCOL.md 3 ([V2G20-167]; JOSEV sap_states.py; EVerest supported_app_protocol.cpp)",
)
TLS13_ONLY = _rule(
    "[V2G20-2356]",
    "Neither side offers or chooses -20 over TLS 1.2 or below: a TLS 1.2 handshake is refused.",
    "PROTOCOL.md 8 (TLS use: [V2G20-1237], [V2G20-2356], from a paraphrase of -20 section 7.3.4)",
)
TLS_SUITES = _rule(
    "[V2G20-1856]",
    "The TLS 1.3 cipher suite is TLS_AES_256_GCM_SHA384 or TLS_CHACHA20_POLY1305_SHA256.",
    "PROTOCOL.md 8 ([V2G20-1856]; the EVCC supports all of them, [V2G20-2459])",
)
TLS_MUTUAL = _rule(
    "MV-TLS-MUTUAL",
    "-20 TLS is mutually authenticated: the SECC requires the vehicle's certificate and refuses a handshake "
    "without one; each side refuses a chain that does not verify against its trusted root.",
    "PROTOCOL.md 8 (mutual authentication in -20; LIB15118 and Josev verify the peer chain)",
)
TLS_GROUP = _rule(
    "MV-TLS-GROUP",
    "The key exchange uses a group of the -20 profiles (secp521r1 for the P-521 profile, X448 for Ed448); a peer "
    "offering no such group is refused.",
    "PROTOCOL.md 8 (the -20 profiles; EVerest pins the ECDHE group to the leaf curve)",
)

EV_ENDS_WITH_SESSION_STOP = _rule(
    "MV-EV-SESSION-STOP",
    "An EV ends a session that did not fail with SessionStopReq (after PowerDelivery Stop and welding detection "
    "when energy flowed): it does not drop the connection in the middle of the sequence.",
    "PROTOCOL.md 4.2 (the sequence ends with SessionStopReq) and 4.3 (SessionStopReq/Res, then the TCP close)",
)
EV_SAP_OFFER = _rule(
    "MV-EV-SAP-OFFER",
    "The EV's supportedAppProtocolReq offers ISO 15118-20 DC (urn:iso:std:iso:15118:-20:DC) with major version 1; "
    "its entries have distinct Priorities (1..20) and distinct SchemaIDs (the SECC names its choice by SchemaID).",
    "PROTOCOL.md 3 (namespaces and major versions EVs offer; Priority 1..20; EVerest keys the entries by priority)",
)

EV_USES_OFFER = _rule(
    "MV-EV-USES-OFFER",
    "A truck offered an energy service and control mode that it supports (its device profile says so) selects "
    "them and charges: it reaches the charge loop instead of leaving after the service discovery.",
    "PROTOCOL.md 4.2 (ServiceDiscovery, ServiceSelection, then the charge loop) and 5 (services and parameter sets)",
)


V2GTP_STREAM = _rule(
    "MV-V2GTP-STREAM",
    "V2GTP runs over a TCP byte stream: a receiver takes each frame by its header's length whatever the "
    "segmentation (a frame over several segments, several frames in one) and answers each in turn.",
    "PROTOCOL.md 2 (the header's payload length delimits a frame; EvseV2G and LIB15118 read the header, then the "
    "payload; LIB15118 holds a partial frame until it is whole)",
)
SDP_EV_REQUESTS = _rule(
    "MV-SDP-EV-REQUEST",
    "The EVCC's SDP request is a V2GTP frame 0x9000 with 2 payload bytes (a known security, transport TCP); "
    "unanswered, it is resent 250 ms later, at most 50 times in a discovery cycle, and no more once answered.",
    "PROTOCOL.md 1 (JOSEV timeouts.py SDP_REQ 0.25 s, comm_session_handler.py SDP_MAX_REQUEST_COUNTER 50; "
    "EVEREST d20/ev/timeouts.hpp SDP_RESEND_INTERVAL_MS 250, SDP_MAX_REQUESTS 50)",
)

SAP_MINOR_DEVIATION = _rule(
    "MV-SAP-MINOR",
    "The SECC answers an entry it chose whose minor version differs from its own (0) with "
    "OK_SuccessfulNegotiationWithMinorDeviation, and one with the same minor version with OK_SuccessfulNegotiation.",
    "PROTOCOL.md 3 (JOSEV sap_states.py: minor version 0 -> OK_SuccessfulNegotiation, other minor -> "
    "OK_SuccessfulNegotiationWithMinorDeviation)",
)
SECC_RESUMES_PAUSED = _rule(
    "MV-SECC-RESUME",
    "An SECC that answered SessionStop(Pause) with OK rejoins that session when the same vehicle sends "
    "SessionSetupReq with its SessionID (OK_OldSessionJoined, the old SessionID) and goes on at "
    "ChargeParameterDiscovery with the selected service; another vehicle, or the same one after the SECC's resume "
    "window (a setting: the standard gives none), gets a new session.",
    "PROTOCOL.md 4.5 (LIB15118 session_stop.cpp keeps the pause context; resume = SessionSetupReq with the old "
    "SessionID -> OK_OldSessionJoined) and 4.3 (LIB15118 session_setup.cpp binds the resume to the vehicle and "
    "continues at ChargeParameterDiscovery; Josev falls back to a new session for an unknown ID); the window: "
    "stack/session/config.py DEFAULT_RESUME_WITHIN",
)
TLS_ED448 = _rule(
    "MV-TLS-ED448",
    "A device that supports the -20 Ed448 profile completes a TLS 1.3 handshake of that profile: Ed448 "
    "certificates (its own leaf Ed448, the peer's Ed448 chain verified) and the X448 key exchange.",
    "PROTOCOL.md 8 (Curves / signatures: -20 leaves are secp521r1 or Ed448; the strict -20 Ed448 profile exchanges "
    "keys with X448, WWCP WWCP_ISO15118_PKI/README.md)",
)

EV_ACCEPTS_VALID = _rule(
    "MV-EV-ACCEPT-VALID",
    "An EV accepts every schema-valid response that keeps the rules, optional elements included (e.g. MeterInfo with "
    "BPT_DischargedEnergyReadingWh it did not ask for): it goes on with the session instead of dropping it.",
    "the -20 XSDs (optional elements); PEERS.md (Josev's model misspells BPT_DischargedEnergyReadingWh and refuses a "
    "stream that holds it)",
)

CONDUCT_RULES: tuple[Rule, ...] = (
    ACCEPTS_VALID,
    ENDS_AFTER_FAILED,
    EV_STOPS_AFTER_FAILED,
    EV_CLOSES_ON_TIMEOUT,
    SECC_CLOSES_ON_SEQUENCE_TIMEOUT,
    EV_HONOURS_TERMINATE,
    EV_WITHIN_LIMITS,
    V2GTP_HEADER,
    SERVES_AFTER_ABUSE,
    SDP_ANSWER,
    SDP_IGNORES_BAD,
    SAP_PRIORITY,
    TLS13_ONLY,
    TLS_SUITES,
    TLS_MUTUAL,
    TLS_GROUP,
    EV_ENDS_WITH_SESSION_STOP,
    EV_SAP_OFFER,
    EV_USES_OFFER,
    EV_ACCEPTS_VALID,
    V2GTP_STREAM,
    SDP_EV_REQUESTS,
    SAP_MINOR_DEVIATION,
    SECC_RESUMES_PAUSED,
    TLS_ED448,
)

# -- Plug & Charge (judged by mcs_v2g/conformance/catalogue/pnc_cases.py; in CONDUCT_RULES once those cases join the
# catalogue the whole-catalogue tests run) ---------------------------------------------------------------------------
PNC_CHALLENGE_FRESH = _rule(
    "MV-PNC-CHALLENGE-FRESH",
    "An SECC that offers PnC sends a GenChallenge of 16 bytes in AuthorizationSetupRes, a new one for each session "
    "(an old challenge would let a recorded AuthorizationReq be replayed).",
    "PROTOCOL.md 4.3 (XSD genChallengeType: 16 bytes) and 4.4 (the SECC checks the echo, [V2G20-2565]); "
    "stack/session/pnc.py SeccPnc.new_challenge",
)
PNC_INSTALLATION_VALID = _rule(
    "MV-PNC-INSTALLATION-VALID",
    "An SECC that offers CertificateInstallation answers a valid CertificateInstallationReq with "
    "SignedInstallationData signed by a CPS leaf whose chain ends at a root the EV named, and an encrypted private "
    "key that the EV's provisioning key decrypts to the key of the delivered contract certificate.",
    "PROTOCOL.md 4.4 and section 8 (signer of SignedInstallationData: the CPS; the key delivery); "
    "stack/session/exchanges/certificate_installation.py",
)
EV_AUTHORIZES_BY_PNC = _rule(
    "MV-EV-PNC",
    "A truck that does Plug & Charge (its device profile says so), offered PnC, sends a PnC AuthorizationReq: the "
    "GenChallenge echoed, its contract chain, a signature over PnC_AReqAuthorizationMode by its contract key.",
    "PROTOCOL.md 4.3 and 4.4 (AuthorizationReq, [V2G20-2565], [V2G20-461])",
)
EV_STOPS_AFTER_PNC_REFUSED = _rule(
    "MV-EV-PNC-REFUSED",
    "An EV whose PnC AuthorizationReq is refused with a WARNING_* code does not go on with the session: it ends it "
    "with SessionStopReq or closes the connection, before the SECC's sequence timeout.",
    "PROTOCOL.md 4.4 and 7 (WARNING codes refuse the step; LIB15118 and Josev stop the session)",
)
EV_CHECKS_INSTALLATION = _rule(
    "MV-EV-INSTALLATION-CHECKED",
    "An EV does not use a contract whose CertificateInstallationRes fails its checks (the CPS chain to its roots, "
    "the CPS signature over SignedInstallationData, the decrypted key): it never authorizes by PnC with it (it "
    "falls back to EIM, uses another contract, or stops).",
    "PROTOCOL.md 4.4 and section 8 (SignedInstallationData, signer: the CPS)",
)

PNC_CONDUCT_RULES: tuple[Rule, ...] = (
    PNC_CHALLENGE_FRESH,
    PNC_INSTALLATION_VALID,
    EV_AUTHORIZES_BY_PNC,
    EV_STOPS_AFTER_PNC_REFUSED,
    EV_CHECKS_INSTALLATION,
)
CONDUCT_RULES = (*CONDUCT_RULES, *PNC_CONDUCT_RULES)

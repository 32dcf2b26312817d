"""What one V2G connection and one SECC server may cost: bounds on time, bytes and connections, with safe defaults.

Every bound has one job: a peer that misbehaves (never finishes its TLS handshake, sends nothing, drips a frame
byte by byte, stops reading our answers) is dropped after a known time, and the memory and file descriptors
of the process stay bounded however many such peers come at once. A well-behaved EV never meets them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from stack.v2gtp import DEFAULT_MAX_PAYLOAD


class LimitsError(ValueError):
    """A limit is out of its range (names the field)."""


MAX_SOCKET_BUFFER = 2**31 - 1  # SO_SNDBUF is a C int


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of a V2G connection (both roles) and of the SECC server that accepts them.

    Times are seconds on the session's clock, sizes are bytes.
    """

    # connections accepted at once; one more is closed at once, before any TLS work. 256 covers a depot's 200
    # sessions in one process; a TLS connection holds ~0.35 MB (asyncio's 256 KiB TLS buffer and OpenSSL's
    # state), so handshakes that never finish can hold ~90 MB at most, however many come (measured: 2,000)
    max_connections: int = 256
    # the TLS handshake must finish in this time: half of V2G_EVCC_CommunicationSetup_Timeout (20 s), in which
    # the EV must also do SAP and SessionSetup (asyncio's own default is 60 s)
    handshake_timeout: float = 10.0
    # after connecting (and the handshake) the first whole message must arrive in this time: an EV that has
    # not sent its SAP request by then has given up (V2G_EVCC_CommunicationSetup_Timeout, 20 s)
    first_message_timeout: float = 20.0
    # a V2GTP frame, once its first byte came, must be complete in this time: 64 KiB at 1 Mbit/s (the worst
    # PLC link) takes 0.5 s, so 5 s is ten times that; a slower drip is an attack, not a link
    frame_timeout: float = 5.0
    # our message must leave the write buffer in this time (or by the session's own deadline, if sooner):
    # the EV's longest message timeout for a response it waits for is a few seconds
    send_timeout: float = 5.0
    # largest V2GTP payload accepted; a header announcing more closes the connection before any byte is buffered
    max_payload: int = DEFAULT_MAX_PAYLOAD
    # bytes asyncio may hold for the peer to read before `send` waits (the write buffer's high-water mark)
    write_buffer: int = 64 * 1024
    # the kernel's send buffer of an accepted socket (SO_SNDBUF; Linux doubles it): without it a peer that
    # stops reading can hold up to 4 MiB of kernel memory (tcp_wmem autotuning) before `send` even waits
    socket_send_buffer: int = 64 * 1024
    # bytes read from the socket but not yet parsed before asyncio stops reading (StreamReader limit: it
    # pauses at twice this); the frame being assembled adds at most `max_payload`
    read_buffer: int = 64 * 1024
    # frames with a payload at least this big are decoded in a worker thread (real clock), so one large
    # decode never stalls the other sessions of the process; a charge-loop message is ~100 bytes
    decode_in_thread_from: int = 4096

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise LimitsError(f"{f.name}: a number is needed, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise LimitsError(f"{f.name}: must be finite and above 0, got {value!r}")
            if f.type in ("int",) and not isinstance(value, int):
                raise LimitsError(f"{f.name}: a whole number is needed, got {value!r}")
        if self.socket_send_buffer > MAX_SOCKET_BUFFER:
            raise LimitsError(f"socket_send_buffer: at most {MAX_SOCKET_BUFFER} (setsockopt takes a C int)")


DEFAULT_LIMITS = Limits()

"""Read a pcap or pcapng capture (ours or a real bench's) into a Recording.

Link layers: Ethernet and Linux cooked capture (v1 and v2), IPv4 and IPv6, as scapy dissects them. TCP flows
are reassembled per direction (`reassembly`). A flow is a V2G connection when an SDP response announced its
server port, or when its first bytes are a V2GTP header, or a TLS record on ports that are not well-known
(< 1024). The EV is the side that sent the SYN, else the side that sent first. UDP datagrams that hold a V2GTP
SDP frame are kept. TLS secrets come from a Decryption Secrets Block of a pcapng (read with a hook on scapy's
pcapng reader, which otherwise hands them to its own TLS layer) or from a key log file.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Padding
from scapy.utils import PcapNgReader, PcapReader

from stack import sdp, v2gtp
from stack.schemas import SDP_PAYLOAD_TYPES

from .pcapng import TLS_KEY_LOG
from .reassembly import TcpSegment, reassemble
from .wire import Connection, Datagram, Endpoint, Recording, Segment

_T = TypeVar("_T")
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
WELL_KNOWN = 1024


class CaptureError(Exception):
    """The file is not a capture this reader understands (or is damaged)."""


class _SecretsReader(PcapNgReader):
    """scapy's pcapng reader, keeping the TLS key logs of Decryption Secrets Blocks for us."""

    def __init__(self, filename: str, fdesc: Any = None, magic: Any = None) -> None:
        super().__init__(filename, fdesc, magic)
        self.keylogs: list[str] = []
        self.blocktypes[10] = self._keep_secrets

    def _keep_secrets(self, block: bytes, size: int) -> None:
        if len(block) < 8:
            raise EOFError
        kind, length = struct.unpack(self.endian + "II", block[:8])
        if kind == TLS_KEY_LOG:
            self.keylogs.append(block[8 : 8 + length].decode("utf-8", "replace"))


@dataclass(slots=True)
class _Flow:
    """One TCP connection while it is read: its ends and the segments of each direction."""

    a: Endpoint  # the first packet's source
    b: Endpoint
    client: Endpoint | None = None  # the SYN's source
    first_sender: Endpoint | None = None
    segments: dict[Endpoint, list[TcpSegment]] = field(default_factory=dict)
    first_bytes: bytes = b""
    finished: bool = False


def read_capture(path: Path | str, keylog: Path | None = None) -> Recording:
    """The V2G connections, SDP datagrams and TLS secrets of a capture file."""
    flows: list[_Flow] = []
    datagrams: list[Datagram] = []
    notes: list[str] = []
    keylogs = _read_packets(Path(path), flows, datagrams, notes)
    if keylog is not None:
        keylogs.append(keylog.read_text(errors="replace"))
    sdp_ports = _announced(datagrams)
    # a flow to the server of a V2G flow is V2G too, whatever it carries (a tester's raw bytes)
    servers = {c.evse for c in (_connection(0, flow, sdp_ports, set()) for flow in flows) if c is not None}
    connections: list[Connection] = []
    ordered: list[tuple[float, int, Segment]] = []
    for flow in flows:
        conn = _connection(len(connections), flow, sdp_ports, servers)
        if conn is None:
            continue
        connections.append(conn)
        for to_evse, sender in ((True, conn.ev), (False, conn.evse)):
            result = reassemble(flow.segments.get(sender, []))
            ordered += [(t, index, Segment(t, conn.id, to_evse, data)) for t, index, data in result.chunks]
            if result.held:
                side = "EV->EVSE" if to_evse else "EVSE->EV"
                notes.append(
                    f"connection {conn.id} {side}: {result.missing} bytes never captured, the {result.held}"
                    " bytes after them are left out"
                )
    segments = [s for _, _, s in sorted(ordered, key=lambda o: o[:2])]  # equal times keep the capture's order
    keys = "".join(k if k.endswith("\n") or not k else k + "\n" for k in keylogs)
    return Recording(tuple(connections), tuple(segments), tuple(datagrams), keys, tuple(notes))


def _read_packets(path: Path, flows: list[_Flow], datagrams: list[Datagram], notes: list[str]) -> list[str]:
    """Take every packet of the file into `flows` and `datagrams`, what scapy warned about into `notes`; the key
    logs of its secrets blocks."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except IsADirectoryError:
        raise CaptureError(f"{path}: is a directory, not a capture") from None
    open_flows: dict[frozenset[Endpoint], _Flow] = {}
    with _ScapyWarnings() as warnings:
        reader = _scapy(path, lambda: _SecretsReader(str(path)) if magic == PCAPNG_MAGIC else PcapReader(str(path)))
        with reader:
            packets = iter(reader)
            index = 0
            while (packet := _scapy(path, lambda: next(packets, None))) is not None:
                _take(index, float(packet.time), packet, flows, open_flows, datagrams)
                index += 1
    notes += [f"the capture file: {w}" for w in dict.fromkeys(warnings.messages)]
    return list(getattr(reader, "keylogs", []))


class _ScapyWarnings(logging.Handler):
    """While reading, scapy's warnings (a damaged block, a truncated file) become notes instead of stderr lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._logger = logging.getLogger("scapy")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().removeprefix("PcapNg: ").strip()
        if message:
            self.messages.append(message)

    def __enter__(self) -> _ScapyWarnings:
        self._saved = self._logger.handlers[:]
        self._logger.handlers = [self]
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.handlers = self._saved


def _scapy(path: Path, step: Callable[[], _T]) -> _T:
    """One step of scapy's reader; whatever it raises on a damaged or hostile file is a CaptureError."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - scapy raises many kinds (Scapy_Exception, EOFError, struct.error...)
        raise CaptureError(f"{path}: not a readable pcap or pcapng capture ({exc or type(exc).__name__})") from None


def _take(
    index: int,
    t: float,
    packet: Packet,
    flows: list[_Flow],
    open_flows: dict[frozenset[Endpoint], _Flow],
    datagrams: list[Datagram],
) -> None:
    ip = packet.getlayer(IPv6) or packet.getlayer(IP)
    if ip is None:
        return
    if (udp := ip.getlayer(UDP)) is not None:
        data = _payload(udp)
        if _is_sdp(data):
            datagrams.append(Datagram(t, Endpoint(ip.src, udp.sport), Endpoint(ip.dst, udp.dport), data))
        return
    tcp = ip.getlayer(TCP)
    if tcp is None:
        return
    src, dst = Endpoint(ip.src, tcp.sport), Endpoint(ip.dst, tcp.dport)
    key = frozenset((src, dst))
    flags = int(tcp.flags)
    syn, ack = bool(flags & 0x02), bool(flags & 0x10)
    flow = open_flows.get(key)
    if flow is None or (syn and not ack and (flow.finished or flow.first_bytes)):
        flow = _Flow(src, dst)  # a new connection (possibly reusing the ports of an old one)
        flows.append(flow)
        open_flows[key] = flow
    if syn and not ack:
        flow.client = src
    data = _payload(tcp)
    if data and flow.first_sender is None:
        flow.first_sender, flow.first_bytes = src, data[:8]
    if flags & 0x05:  # FIN or RST
        flow.finished = True
    flow.segments.setdefault(src, []).append(TcpSegment(t, index, int(tcp.seq), data, syn))


def _payload(layer: Packet) -> bytes:
    """The payload of a TCP or UDP layer without Ethernet padding (short frames are padded to 60 bytes)."""
    data = bytes(layer.payload)
    padding = layer.getlayer(Padding)
    return data[: len(data) - len(bytes(padding))] if padding is not None else data


def _is_sdp(data: bytes) -> bool:
    if not v2gtp.looks_like_frame(data):
        return False
    return int.from_bytes(data[2:4], "big") in SDP_PAYLOAD_TYPES


def _announced(datagrams: list[Datagram]) -> set[Endpoint]:
    """The (address, port) endpoints that SDP responses announced."""
    found = set()
    for d in datagrams:
        try:
            response = sdp.SdpResponse.from_frame(d.data)
        except (sdp.SdpError, ValueError):
            continue
        found.add(Endpoint(str(response.address), response.port))
    return found


def _connection(number: int, flow: _Flow, sdp_ends: set[Endpoint], servers: set[Endpoint]) -> Connection | None:
    """The flow as a V2G connection, or None when it is not one."""
    announced = {e.port for e in sdp_ends}
    server: Endpoint | None = None
    if flow.client is not None:
        server = flow.b if flow.client == flow.a else flow.a
    elif flow.a.port in announced or flow.b.port in announced:
        server = flow.a if flow.a.port in announced else flow.b
    elif flow.first_sender is not None:
        server = flow.b if flow.first_sender == flow.a else flow.a
    if server is None:
        return None
    client = flow.b if server == flow.a else flow.a
    first = flow.first_bytes
    tls = first[:1] == b"\x16" and first[1:2] == b"\x03"
    by_port = server.port in announced or server in servers
    by_content = v2gtp.looks_like_frame(first) or (tls and server.port >= WELL_KNOWN and client.port >= WELL_KNOWN)
    if not (by_port or by_content):
        return None
    return Connection(number, client, server, tls)

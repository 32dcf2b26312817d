"""A Recording as a pcapng file Wireshark opens as is: Ethernet/IPv6 (or IPv4)/TCP with a real handshake,
sequence and acknowledgement numbers, segments split at the MSS and FIN at the end; SDP as UDP; the TLS secrets
in a Decryption Secrets Block before the first packet, so Wireshark decrypts TLS with no key file.

Packets and the pcapng file are scapy's (`PcapNgWriter`); scapy reads Decryption Secrets Blocks but has no call
to write one, so the block (pcapng spec, section 4.7: type 0x0000000A, secrets type 0x544c534b "TLSK") is built
with the writer's own `build_block` and written between its header and the first packet.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapNgWriter

from .wire import Connection, Endpoint, Recording

MSS = 1440  # 1500-byte Ethernet MTU less IPv6 (40) and TCP (20) headers
DSB_BLOCK_TYPE = 0x0000000A
TLS_KEY_LOG = 0x544C534B  # "TLSK"
HANDSHAKE_LEAD = 0.001  # the handshake is drawn this long before the first segment
FIN_LAG = 0.001  # and FIN this long after the last one


def write_keylog(recording: Recording, path: Path | str) -> None:
    """The recording's TLS secrets as an NSS key log file (`SSLKEYLOGFILE` format)."""
    Path(path).write_text(recording.keylog)


def write_pcapng(recording: Recording, path: Path | str) -> None:
    """Write `recording` to `path` as pcapng, the key log (if any) in a Decryption Secrets Block."""
    packets = sorted(_packets(recording), key=lambda tp: tp[0])  # stable: a connection's order is kept
    writer = PcapNgWriter(str(path))
    try:
        writer.linktype = 1  # DLT_EN10MB
        writer.write_header(None)
        if recording.keylog:
            writer.f.write(decryption_secrets_block(writer, recording.keylog.encode()))
        for t, packet in packets:
            packet.time = t
            writer.write_packet(packet)
    finally:
        writer.close()


def decryption_secrets_block(writer: PcapNgWriter, secrets: bytes) -> bytes:
    """A pcapng Decryption Secrets Block holding an NSS key log."""
    body = struct.pack(writer.endian + "II", TLS_KEY_LOG, len(secrets)) + secrets
    return bytes(writer.build_block(struct.pack(writer.endian + "I", DSB_BLOCK_TYPE), body))


@dataclass(slots=True)
class _Side:
    """One end of a TCP connection: its addresses and the next sequence number it sends."""

    end: Endpoint
    mac: str
    seq: int


def _packets(recording: Recording) -> Iterator[tuple[float, Packet]]:
    for connection in recording.connections:
        yield from _tcp(connection, recording)
    for d in recording.datagrams:
        yield d.t, _ip(d.src, _mac(d.src), d.dst, _mac(d.dst)) / UDP(sport=d.src.port, dport=d.dst.port) / Raw(d.data)


def _tcp(connection: Connection, recording: Recording) -> Iterator[tuple[float, Packet]]:
    segments = [s for s in recording.segments if s.conn == connection.id]
    if not segments:
        return
    ev = _Side(connection.ev, _mac(connection.ev), _isn(connection, b"ev"))
    evse = _Side(connection.evse, _mac(connection.evse), _isn(connection, b"evse"))
    start, end = segments[0].t - HANDSHAKE_LEAD, max(s.t for s in segments) + FIN_LAG
    yield start, _segment(ev, evse, "S", ack=False)
    ev.seq += 1
    yield start, _segment(evse, ev, "SA")
    evse.seq += 1
    yield start, _segment(ev, evse, "A")
    for s in segments:
        src, dst = (ev, evse) if s.to_evse else (evse, ev)
        for i in range(0, len(s.data), MSS):
            chunk = s.data[i : i + MSS]
            yield s.t, _segment(src, dst, "PA", chunk)
            src.seq += len(chunk)
    yield end, _segment(ev, evse, "FA")
    ev.seq += 1
    yield end, _segment(evse, ev, "FA")
    evse.seq += 1
    yield end, _segment(ev, evse, "A")


def _segment(src: _Side, dst: _Side, flags: str, data: bytes = b"", ack: bool = True) -> Packet:
    seq, ack_no = src.seq & 0xFFFFFFFF, dst.seq & 0xFFFFFFFF if ack else 0
    tcp = TCP(sport=src.end.port, dport=dst.end.port, flags=flags, seq=seq, ack=ack_no)
    packet = _ip(src.end, src.mac, dst.end, dst.mac) / tcp
    return packet / Raw(data) if data else packet


def _ip(src: Endpoint, src_mac: str, dst: Endpoint, dst_mac: str) -> Packet:
    layer = IPv6 if ipaddress.ip_address(src.ip).version == 6 else IP
    return Ether(src=src_mac, dst=dst_mac) / layer(src=src.ip, dst=dst.ip)


def _mac(end: Endpoint) -> str:
    """A made-up, locally administered unicast MAC per address."""
    digest = hashlib.sha256(end.ip.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _isn(connection: Connection, side: bytes) -> int:
    """A made-up initial sequence number, the same for the same connection on every run."""
    seed = f"{connection.id}{connection.ev}{connection.evse}".encode() + side
    return int.from_bytes(hashlib.sha256(seed).digest()[:4], "big")

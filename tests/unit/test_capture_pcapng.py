"""Recording -> pcapng -> read_capture round trips, TCP reassembly cases built with scapy, the Decryption
Secrets Block, other link layers, and files that are not captures."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Ether
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from mcs_v2g.capture.pcapng import MSS, write_keylog, write_pcapng
from mcs_v2g.capture.reader import CaptureError, read_capture
from mcs_v2g.capture.wire import Connection, Datagram, Endpoint, Recording, Segment
from mcs_v2g.cli import main
from stack import v2gtp
from stack.sdp import SdpRequest

EV, EVSE = Endpoint("fe80::1", 50123), Endpoint("fe80::2", 50000)
SAP_REQ = v2gtp.build(0x8001, bytes.fromhex("8000dbab9371d3234b71d1b981899189d191818991d26b9b3a232b30020000040040"))
KEYLOG = "CLIENT_HANDSHAKE_TRAFFIC_SECRET 00 11\nSERVER_TRAFFIC_SECRET_0 00 22\n"


def sample() -> Recording:
    big = bytes(range(256)) * 20  # above the MSS: split into several TCP segments
    segments = (
        Segment(100.0, 0, True, SAP_REQ),
        Segment(100.1, 0, False, b"\x01\xfe\x80\x01\x00\x00\x00\x04\x80\x40\x00\x40"),
        Segment(100.2, 0, True, big),
        Segment(100.3, 1, True, b"second connection"),
    )
    connections = (Connection(0, EV, EVSE, False), Connection(1, Endpoint("fe80::1", 50124), EVSE, False))
    datagram = Datagram(99.9, Endpoint("fe80::1", 49152), Endpoint("ff02::1", 15118), SdpRequest().to_frame())
    return Recording(connections, segments, (datagram,), KEYLOG)


def streams(recording: Recording) -> dict[tuple[int, bool], bytes]:
    return {(c.id, d): recording.stream(c.id, d) for c in recording.connections for d in (True, False)}


def test_round_trip(tmp_path) -> None:
    original = sample()
    path = tmp_path / "r.pcapng"
    write_pcapng(original, path)
    back = read_capture(path)
    assert streams(back) == streams(original)
    assert [(c.ev, c.evse, c.tls) for c in back.connections] == [(c.ev, c.evse, c.tls) for c in original.connections]
    assert back.datagrams == original.datagrams and back.keylog == KEYLOG and back.notes == ()
    packets = rdpcap(str(path))
    tcp = [p[TCP] for p in packets if TCP in p]
    assert [str(t.flags) for t in tcp[:3]] == ["S", "SA", "A"] and str(tcp[-1].flags) == "A"
    assert max(len(t.payload) for t in tcp) == MSS
    assert tcp[1].ack == tcp[0].seq + 1 and tcp[3].seq == tcp[0].seq + 1


def test_the_decryption_secrets_block_comes_before_the_first_packet(tmp_path) -> None:
    path = tmp_path / "r.pcapng"
    write_pcapng(sample(), path)
    data = path.read_bytes()
    blocks, pos = [], 0
    while pos < len(data):
        kind, length = struct.unpack_from("<II", data, pos)
        blocks.append((kind, data[pos + 8 : pos + length - 4]))
        pos += length
    kinds = [k for k, _ in blocks]
    assert kinds[:3] == [0x0A0D0D0A, 1, 0x0A] and kinds[3] == 6
    secrets_type, length = struct.unpack_from("<II", blocks[2][1])
    assert secrets_type == 0x544C534B and blocks[2][1][8 : 8 + length].decode() == KEYLOG
    write_keylog(sample(), tmp_path / "k.log")
    assert (tmp_path / "k.log").read_text() == KEYLOG


def test_no_block_without_keys(tmp_path) -> None:
    r = sample()
    write_pcapng(Recording(r.connections, r.segments), tmp_path / "r.pcapng")
    assert struct.pack("<I", 0x544C534B) not in (tmp_path / "r.pcapng").read_bytes()
    assert read_capture(tmp_path / "r.pcapng").keylog == ""


def _tcp(src, dst, sport, dport, flags, seq, ack, data=b"", ip=IPv6):
    packet = (
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / ip(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    )
    return packet / Raw(data) if data else packet


@pytest.mark.parametrize("syn", [True, False])
def test_retransmission_and_out_of_order(tmp_path, syn: bool) -> None:
    a, b = "fe80::1", "fe80::2"
    data = SAP_REQ * 3
    parts = [data[i : i + 20] for i in range(0, len(data), 20)]
    offsets = [i * 20 for i in range(len(parts))]
    packets = [_tcp(a, b, 50123, 50000, "S", 999, 0), _tcp(b, a, 50000, 50123, "SA", 5000, 1000)] if syn else []
    order = [0, 2, 1, 1, 3, 0, 4, *range(5, len(parts))]  # 2 before 1, 1 and 0 twice
    for n, i in enumerate(order):
        packet = _tcp(a, b, 50123, 50000, "PA", 1000 + offsets[i], 5001, parts[i])
        packet.time = 10.0 + n
        packets.append(packet)
    packets.append(_tcp(b, a, 50000, 50123, "PA", 5001, 1000 + len(data), b"\x01\xfe\x80\x01\x00\x00\x00\x00"))
    wrpcap(str(tmp_path / "r.pcap"), packets)
    back = read_capture(tmp_path / "r.pcap")
    assert back.stream(0, True) == data and back.connections[0].ev == Endpoint(a, 50123)
    times = [s.t for s in back.segments if s.to_evse]
    assert times[:2] == [10.0, 12.0]  # the bytes of part 2 waited for part 1, which came at t=12


def test_a_lost_segment_is_a_note(tmp_path) -> None:
    packets = [
        _tcp("fe80::1", "fe80::2", 50123, 50000, "PA", 1000, 1, SAP_REQ),
        _tcp("fe80::1", "fe80::2", 50123, 50000, "PA", 1000 + len(SAP_REQ) + 10, 1, b"later"),
    ]
    wrpcap(str(tmp_path / "r.pcap"), packets)
    back = read_capture(tmp_path / "r.pcap")
    assert back.stream(0, True) == SAP_REQ and "10 bytes never captured" in back.notes[0]


def test_ipv4_and_linux_cooked_capture(tmp_path) -> None:
    frame = _tcp("10.0.0.1", "10.0.0.2", 50123, 50000, "PA", 1, 1, SAP_REQ, ip=IP)
    wrpcap(str(tmp_path / "eth.pcap"), [frame])
    cooked = (
        CookedLinux(proto=0x86DD) / IPv6(src="fe80::1", dst="fe80::2") / TCP(sport=1, dport=50000, flags="PA", seq=7)
    )
    wrpcap(str(tmp_path / "sll.pcap"), [cooked / Raw(SAP_REQ)])
    assert read_capture(tmp_path / "eth.pcap").stream(0, True) == SAP_REQ
    assert read_capture(tmp_path / "eth.pcap").connections[0].ev == Endpoint("10.0.0.1", 50123)
    assert read_capture(tmp_path / "sll.pcap").stream(0, True) == SAP_REQ


def test_flows_that_are_not_v2g_are_left_out(tmp_path) -> None:
    http = _tcp("fe80::1", "fe80::2", 50123, 80, "PA", 1, 1, b"GET / HTTP/1.1\r\n\r\n")
    tls_on_443 = _tcp("fe80::1", "fe80::2", 50124, 443, "PA", 1, 1, b"\x16\x03\x01\x00\x05hello")
    tls_v2g = _tcp("fe80::1", "fe80::2", 50125, 64109, "PA", 1, 1, b"\x16\x03\x01\x00\x05hello")
    wrpcap(str(tmp_path / "r.pcap"), [http, tls_on_443, tls_v2g])
    back = read_capture(tmp_path / "r.pcap")
    assert [(c.evse.port, c.tls) for c in back.connections] == [(64109, True)]


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, b"\x0a\x0d\x0d\x0a" + b"\xff" * 40, b"\xd4\xc3\xb2\xa1"])
def test_garbage_files(tmp_path, capsys, content: bytes) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError):
        read_capture(path)
    assert main(["capture", "decode", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcs-v2g: error:") and err.count("\n") == 1


def test_missing_file_and_directory(tmp_path, capsys) -> None:
    assert main(["capture", "decode", str(tmp_path / "none.pcapng")]) == 2
    assert main(["capture", "decode", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("mcs-v2g: error:") == 2


def test_the_port_an_sdp_response_announced_is_v2g_whatever_it_carries(tmp_path) -> None:
    from ipaddress import IPv6Address

    from mcs_v2g.capture.decode import decode
    from stack.sdp import SdpResponse, Security

    answer = SdpResponse(IPv6Address("fe80::2"), 64109, Security.NO_TLS).to_frame()
    datagram = Datagram(1.0, Endpoint("fe80::2", 15118), Endpoint("fe80::1", 49152), answer)
    garbage = Segment(2.0, 0, True, b"hello, not V2GTP")
    r = Recording((Connection(0, EV, Endpoint("fe80::2", 64109), False),), (garbage,), (datagram,))
    write_pcapng(r, tmp_path / "r.pcapng")
    back = read_capture(tmp_path / "r.pcapng")
    assert back.stream(0, True) == garbage.data
    events = decode(back).events
    assert events[0].message == "SDP response" and events[0].values["port"] == 64109
    assert not events[1].known and "no V2GTP header at byte 0" in events[1].reason


def test_a_truncated_capture_keeps_what_came_before_the_cut(tmp_path) -> None:
    path = tmp_path / "r.pcapng"
    write_pcapng(sample(), path)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"second connection") - 20])  # cut inside the last data packet
    back = read_capture(path)
    assert back.stream(0, True).startswith(SAP_REQ) and back.stream(1, True) == b""
    assert any(note.startswith("the capture file:") for note in back.notes)


def test_damaged_captures_never_crash(tmp_path) -> None:
    import random

    from mcs_v2g.capture.check import check
    from mcs_v2g.capture.decode import decode

    path = tmp_path / "r.pcapng"
    write_pcapng(sample(), path)
    data = path.read_bytes()
    rng = random.Random(7)
    outcomes = set()
    for i in range(60):
        damaged = bytearray(data[: rng.randrange(len(data))] if i % 2 else data)
        for _ in range(rng.randrange(1, 12)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            check(decode(read_capture(path)))
            outcomes.add("read")
        except CaptureError:
            outcomes.add("refused")
    assert outcomes == {"read", "refused"}

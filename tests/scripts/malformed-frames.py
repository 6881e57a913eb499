#!/usr/bin/python3
"""Sends malformed frames of every kind to the image and reports how its counters moved.

  malformed-frames.py GUEST [--interface unisock0] [--count 200] [--storm 20000]  (0: no storm)

Run inside the test's network namespace (root, Debian's python3 with python3-scapy). Frames
go out of the tap straight to the guest's MAC (or broadcast) through a packet socket; every
address in them is the guest's, the namespace's own (10.77.0.1) or 10.77.0.0/24. For each
case the script reads the guest's `/stats` before and after and reports the change of every
counter of the total line (minus what one `/stats` request moves by itself), then checks
that the guest still answers HTTP.

Prints one JSON object per line: {"case", "sent", "deltas", "served"}.
"""
import argparse
import json
import random
import socket
import struct
import time
import urllib.request

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

BROADCAST = "ff:ff:ff:ff:ff:ff"


def read_total(guest):
    for attempt in range(5):
        try:
            with urllib.request.urlopen(f"http://{guest}/stats", timeout=10) as response:
                text = response.read().decode()
            break
        except OSError:
            if attempt == 4:
                raise
            time.sleep(1)
    for line in text.splitlines():
        if line.startswith("core=total "):
            values = {}
            for word in line.split()[1:]:
                key, _, value = word.partition("=")
                if value.isdigit():
                    values[key] = int(value)
            return values
    raise RuntimeError("no total line in /stats")


def served(guest):
    try:
        with urllib.request.urlopen(f"http://{guest}/", timeout=10) as response:
            return response.status == 200 and response.read() == b"Hello from Unisock\n"
    except OSError:
        return False


def guest_mac(guest):
    with open("/proc/net/arp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if fields[0] == guest and fields[3] != "00:00:00:00:00:00":
                return fields[3]
    raise RuntimeError(f"{guest} is not in the ARP table")


def interface_mac(interface):
    with open(f"/sys/class/net/{interface}/address") as file:
        return file.read().strip()


def cases(guest, peer, guest_ether, our_ether, rng):
    """Yields (name, frame bytes) pairs; each call of a case's generator is a fresh frame."""
    # IPv4 frames built from raw bytes need the type given: scapy picks it only from a layer.
    to_guest = Ether(dst=guest_ether, src=our_ether, type=0x0800)

    def syn(**tcp):
        return IP(src=peer, dst=guest) / TCP(
            sport=rng.randrange(20000, 60000), dport=80, flags="S", seq=rng.randrange(1 << 32), **tcp
        )

    def segment_bytes(packet):
        return bytes(to_guest / packet)

    def with_ip_checksum_fixed(header):
        """`header` with a correct IPv4 header checksum (for IP fields scapy would rewrite)."""
        header = bytearray(header)
        # A header length past the packet sums what there is.
        length = min((header[0] & 0x0F) * 4, len(header) // 2 * 2)
        header[10:12] = b"\0\0"
        total = 0
        for index in range(0, length, 2):
            total += (header[index] << 8) | header[index + 1]
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        header[10:12] = struct.pack("!H", ~total & 0xFFFF)
        return bytes(header)

    def tcp_checksum(source, destination, segment):
        pseudo = socket.inet_aton(source) + socket.inet_aton(destination) + struct.pack(
            "!BBH", 0, 6, len(segment)
        )
        data = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return ~total & 0xFFFF

    def raw_tcp(data_offset, options=b"", payload=b"", flags=0x02):
        """A TCP segment from raw fields with a correct checksum and IPv4 header."""
        header = struct.pack(
            "!HHIIBBHHH",
            rng.randrange(20000, 60000),
            80,
            rng.randrange(1 << 32),
            0,
            data_offset << 4,
            flags,
            65535,
            0,
            0,
        )
        segment = bytearray(header + options + payload)
        segment[16:18] = struct.pack("!H", tcp_checksum(peer, guest, bytes(segment)))
        ip = bytes(IP(src=peer, dst=guest, proto=6) / Raw(bytes(segment)))
        return bytes(to_guest) + ip

    return [
        # (A frame shorter than the Ethernet header cannot be sent: packet sockets refuse it.)
        ("ethernet_header_only", lambda: bytes(to_guest)),
        ("ethernet_wrong_destination_mac", lambda: bytes(Ether(dst="02:00:00:00:00:99", src=our_ether) / syn())),
        ("ethernet_multicast_source_mac", lambda: bytes(Ether(dst=guest_ether, src="01:00:5e:00:00:01") / syn())),
        ("ethernet_unknown_type", lambda: bytes(Ether(dst=guest_ether, src=our_ether, type=0x88B5) / Raw(b"\0" * 46))),
        ("ipv4_truncated_header", lambda: bytes(to_guest / Raw(bytes(syn())[:12]))),
        ("ipv4_bad_version", lambda: bytes(to_guest / Raw(with_ip_checksum_fixed(b"\x65" + bytes(syn())[1:])))),
        ("ipv4_header_length_too_small", lambda: segment_bytes(IP(src=peer, dst=guest, ihl=3) / TCP(dport=80, flags="S"))),
        ("ipv4_header_length_past_packet", lambda: bytes(to_guest / Raw(with_ip_checksum_fixed(b"\x4f" + bytes(syn())[1:24])))),
        ("ipv4_total_length_past_frame", lambda: segment_bytes(IP(src=peer, dst=guest, len=1400) / TCP(dport=80, flags="S"))),
        ("ipv4_total_length_below_header", lambda: segment_bytes(IP(src=peer, dst=guest, len=12) / TCP(dport=80, flags="S"))),
        ("ipv4_bad_checksum", lambda: segment_bytes(IP(src=peer, dst=guest, chksum=0x1234) / TCP(dport=80, flags="S"))),
        ("ipv4_options_syn", lambda: segment_bytes(IP(src=peer, dst=guest, options=[b"\x01\x01\x01\x00"]) / TCP(sport=rng.randrange(20000, 60000), dport=81, flags="S"))),
        ("ipv4_fragment_first", lambda: segment_bytes(IP(src=peer, dst=guest, flags="MF", id=rng.randrange(65536)) / TCP(dport=80, flags="S") / Raw(b"x" * 64))),
        ("ipv4_fragment_later", lambda: segment_bytes(IP(src=peer, dst=guest, frag=8, proto=6, id=rng.randrange(65536)) / Raw(b"x" * 64))),
        ("ipv4_not_for_us", lambda: segment_bytes(IP(src=peer, dst="10.77.0.99") / TCP(dport=80, flags="S"))),
        ("ipv4_broadcast_source", lambda: segment_bytes(IP(src="255.255.255.255", dst=guest) / TCP(dport=80, flags="S"))),
        ("ipv4_own_source", lambda: segment_bytes(IP(src=guest, dst=guest) / TCP(dport=80, flags="S"))),
        ("ipv4_unknown_protocol_udp", lambda: segment_bytes(IP(src=peer, dst=guest) / UDP(dport=53) / Raw(b"q" * 20))),
        ("tcp_bad_checksum", lambda: segment_bytes(syn(chksum=0xBEEF))),
        ("tcp_truncated_header", lambda: segment_bytes(IP(src=peer, dst=guest, proto=6) / Raw(bytes(TCP(dport=80))[:10]))),
        ("tcp_data_offset_past_segment", lambda: raw_tcp(15)),
        ("tcp_data_offset_below_header", lambda: raw_tcp(2)),
        ("tcp_option_length_zero", lambda: raw_tcp(6, b"\x02\x00\x05\xb4")),
        ("tcp_option_length_one", lambda: raw_tcp(6, b"\x08\x01\x00\x00")),
        ("tcp_option_length_past_header", lambda: raw_tcp(6, b"\x02\x28\x05\xb4")),
        ("tcp_option_mss_wrong_length", lambda: raw_tcp(7, b"\x02\x06\x05\xb4\x00\x00\x01\x00")),
        ("tcp_option_window_scale_huge", lambda: raw_tcp(7, b"\x03\x03\xff\x01\x01\x01\x01\x00")),
        ("tcp_option_sack_odd_length", lambda: raw_tcp(8, b"\x05\x07" + b"\0" * 5 + b"\x01" * 5)),
        ("tcp_syn_fin_rst_urg_all_flags", lambda: raw_tcp(5, flags=0x3F)),
        ("tcp_null_flags", lambda: raw_tcp(5, flags=0x00)),
        ("icmp_truncated", lambda: segment_bytes(IP(src=peer, dst=guest, proto=1) / Raw(b"\x08\x00"))),
        ("icmp_bad_checksum", lambda: segment_bytes(IP(src=peer, dst=guest) / ICMP(chksum=0x1111))),
        ("icmp_error_truncated_inner", lambda: segment_bytes(IP(src=peer, dst=guest) / ICMP(type=3, code=4) / Raw(b"\x45\x00"))),
        ("icmp_error_not_ours", lambda: segment_bytes(IP(src=peer, dst=guest) / ICMP(type=3, code=4, nexthopmtu=500) / IP(src="10.77.0.77", dst=peer) / TCP(sport=80, dport=1234))),
        ("icmp_echo_to_broadcast", lambda: bytes(Ether(dst=BROADCAST, src=our_ether) / IP(src=peer, dst="10.77.0.255") / ICMP())),
        ("arp_truncated", lambda: bytes(Ether(dst=BROADCAST, src=our_ether, type=0x0806) / Raw(b"\x00\x01\x08\x00"))),
        ("arp_wrong_hardware_type", lambda: bytes(Ether(dst=BROADCAST, src=our_ether) / ARP(hwtype=6, psrc=peer, pdst=guest))),
        ("arp_unknown_operation", lambda: bytes(Ether(dst=BROADCAST, src=our_ether) / ARP(op=9, psrc=peer, pdst=guest))),
        ("arp_broadcast_sender", lambda: bytes(Ether(dst=BROADCAST, src=our_ether) / ARP(op=1, psrc="255.255.255.255", pdst=guest))),
        ("arp_request_not_for_us", lambda: bytes(Ether(dst=BROADCAST, src=our_ether) / ARP(op=1, psrc=peer, pdst="10.77.0.200"))),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("guest")
    parser.add_argument("--peer", default="10.77.0.1")
    parser.add_argument("--interface", default="unisock0")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--storm", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=791)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)

    if not served(arguments.guest):
        raise SystemExit("the guest does not answer before the test")
    guest_ether = guest_mac(arguments.guest)
    our_ether = interface_mac(arguments.interface)
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sender.bind((arguments.interface, 0))

    # What one /stats request moves by itself, to subtract from every case.
    first = read_total(arguments.guest)
    second = read_total(arguments.guest)
    noise = {key: second[key] - first[key] for key in second}

    def run(name, frames):
        before = read_total(arguments.guest)
        for frame in frames:
            sender.send(frame)
        time.sleep(0.5)
        after = read_total(arguments.guest)
        deltas = {
            key: after[key] - before[key] - noise.get(key, 0)
            for key in after
            if key not in ("loops", "halts") and after[key] - before[key] - noise.get(key, 0) != 0
        }
        ok = served(arguments.guest)
        print(json.dumps({"case": name, "sent": len(frames), "deltas": deltas, "served": ok}), flush=True)

    for name, build in cases(arguments.guest, arguments.peer, guest_ether, our_ether, rng):
        run(name, [build() for _ in range(arguments.count)])

    # A broadcast storm: ARP requests for someone else and broadcast frames of an unknown
    # type, as fast as the socket takes them.
    if arguments.storm == 0:
        return
    storm = [
        bytes(Ether(dst=BROADCAST, src=our_ether) / ARP(op=1, psrc=arguments.peer, pdst=f"10.77.0.{200 + index % 50}"))
        if index % 2 == 0
        else bytes(Ether(dst=BROADCAST, src=our_ether, type=0x88B5) / Raw(b"\0" * 46))
        for index in range(arguments.storm)
    ]
    started = time.time()
    run("broadcast_storm", storm)
    print(json.dumps({"storm_seconds": round(time.time() - started, 2)}), flush=True)


if __name__ == "__main__":
    main()

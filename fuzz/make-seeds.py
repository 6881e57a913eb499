#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/frames, fuzz/corpus/http).

  fuzz/make-seeds.py

A frames input is a series of records `flags delay length(be16) frame` (fuzz/src/lib.rs
`frames`); flags 1 fixes the checksums, 2 sets the ACK to what the stack sent last, 4 sets
the sequence number to what the stack expects. The http input is `selector cut bytes`.
"""
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
OUR_MAC = bytes([2, 0, 0, 0, 0, 1])
PEER_MAC = bytes([2, 0, 0, 0, 0, 2])
OUR_IP = bytes([10, 0, 0, 1])
PEER_IP = bytes([10, 0, 0, 2])
FIX, ACK, SEQ = 1, 2, 4


def ethernet(ethertype, payload, destination=OUR_MAC):
    return destination + PEER_MAC + struct.pack("!H", ethertype) + payload


def ipv4(protocol, payload, source=PEER_IP, destination=OUR_IP):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0x4000, 64, protocol, 0, source, destination)
    return header + payload


def tcp(flags, payload=b"", sequence=1000, acknowledgment=0, options=b"", port=40000, window=65535):
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", port, 80, sequence, acknowledgment, offset << 4, flags, window, 0, 0) + options + payload


def record(flags, delay, frame):
    return struct.pack("!BBH", flags, delay, len(frame)) + frame


SYN, ACK_FLAG, PSH, FIN, RST = 0x02, 0x10, 0x08, 0x01, 0x04
SYN_OPTIONS = bytes([2, 4, 5, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7])


def frames_seeds():
    syn = ethernet(0x0800, ipv4(6, tcp(SYN, options=SYN_OPTIONS)))
    ack = ethernet(0x0800, ipv4(6, tcp(ACK_FLAG, sequence=0)))
    request = ethernet(0x0800, ipv4(6, tcp(ACK_FLAG | PSH, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
    fin = ethernet(0x0800, ipv4(6, tcp(ACK_FLAG | FIN)))
    arp = ethernet(0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, PEER_MAC, PEER_IP, bytes(6), OUR_IP), b"\xff" * 6)
    echo = ethernet(0x0800, ipv4(1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping" * 8))
    inner = ipv4(6, tcp(ACK_FLAG)[:8], source=OUR_IP, destination=PEER_IP)
    frag_needed = ethernet(0x0800, ipv4(1, struct.pack("!BBHHH", 3, 4, 0, 0, 576) + inner))
    rst = ethernet(0x0800, ipv4(6, tcp(RST | ACK_FLAG)))
    return {
        "syn": record(FIX, 0, syn),
        "handshake-request-close": record(FIX, 0, syn) + record(FIX | ACK | SEQ, 1, ack)
        + record(FIX | ACK | SEQ, 1, request) + record(FIX | ACK | SEQ, 2, fin)
        + record(FIX | ACK | SEQ, 200, ack),
        "handshake-then-reset": record(FIX, 0, syn) + record(FIX | ACK | SEQ, 1, ack)
        + record(FIX | ACK | SEQ, 1, rst),
        "syn-flood": b"".join(record(FIX, 0, ethernet(0x0800, ipv4(6, tcp(SYN, port=40000 + index)))) for index in range(6))
        + record(FIX | ACK | SEQ, 1, ack),
        "arp-request": record(0, 0, arp),
        "echo-request": record(FIX, 0, echo),
        "frag-needed": record(FIX, 0, syn) + record(FIX, 1, frag_needed),
    }


def http_seeds():
    return {
        "request-get": b"\x00\x07GET /index.html HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n",
        "request-post-chunked": b"\x00\x07POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "request-smuggle": b"\x00\x07POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "response-200": b"\x01\x07HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok",
        "response-head": b"\x02\x07HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        "chunked": b"\x03\x03a;ext=1\r\n0123456789\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n",
        "head-scan": b"\x04\x01GET /stats HTTP/1.0\r\n\r\n",
    }


def write(target, seeds):
    directory = os.path.join(ROOT, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as file:
            file.write(data)


if __name__ == "__main__":
    write("frames", frames_seeds())
    write("http", http_seeds())

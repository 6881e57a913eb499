#!/usr/bin/python3
"""Blind attacks of RFC 5961 against live transfers to and from the image.

  blind-attack.py GUEST [--interface unisock0] [--sink 9001] [--source 9002] [--rounds 3]

Run inside the test's network namespace (root, Debian's python3 with python3-scapy). Two
transfers run at once: an upload of random bytes to the sink (which answers their count and
SHA-256) and a download from the source (the pattern `index mod 251`). Between bursts of data
the upload pauses, so the guest's receive state is known exactly; the attacker, spoofing the
client's address and port, then sends in-window RSTs (never the exact next sequence number),
out-of-window RSTs, SYNs, and data with an unacceptable ACK (RFC 5961 sections 3, 4 and 5).
The download is attacked the same way while it streams. Every guest segment on the attacked
connections is sniffed; those sent while the upload was quiet are challenge ACKs.

Prints one JSON object: what was sent, what came back, and whether both transfers arrived
byte-exact and without a reset. Exits 1 if a transfer failed.
"""
import argparse
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

from scapy.layers.inet import IP, TCP

ETH_P_ALL = 0x0003


class Sniffer(threading.Thread):
    """Reads every frame on the tap and keeps, per guest port, the last sequence and
    acknowledgment numbers the guest sent, and counts the guest's segments and RSTs."""

    def __init__(self, interface, guest):
        super().__init__(daemon=True)
        self.socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.socket.bind((interface, 0))
        self.socket.settimeout(0.2)
        self.guest = socket.inet_aton(guest)
        self.lock = threading.Lock()
        self.state = {}  # guest port -> dict
        self.running = True

    def run(self):
        while self.running:
            try:
                frame = self.socket.recv(65535)
            except socket.timeout:
                continue
            if len(frame) < 14 + 20 + 20 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            header_length = (ip[0] & 0x0F) * 4
            if ip[9] != 6:
                continue
            tcp = ip[header_length:]
            source, destination = ip[12:16], ip[16:20]
            source_port, destination_port, sequence, acknowledgment = struct.unpack(
                "!HHII", tcp[:12]
            )
            flags = tcp[13]
            total_length = struct.unpack("!H", ip[2:4])[0]
            payload = total_length - header_length - (tcp[12] >> 4) * 4
            if source == self.guest:
                port = source_port
                with self.lock:
                    entry = self.state.setdefault(port, new_entry())
                    entry["guest_seq"] = sequence
                    entry["guest_ack"] = acknowledgment
                    entry["guest_window"] = struct.unpack("!H", tcp[14:16])[0]
                    entry["guest_segments"] += 1
                    if payload == 0:
                        entry["guest_pure_acks"] += 1
                    if flags & 0x04:
                        entry["guest_resets"] += 1
                    entry["client_port"] = destination_port
            elif destination == self.guest:
                port = destination_port
                with self.lock:
                    entry = self.state.setdefault(port, new_entry())
                    entry["client_port"] = source_port
                    if flags & 0x04:
                        entry["client_resets"] += 1

    def snapshot(self, port):
        with self.lock:
            return dict(self.state.get(port, new_entry()))


def new_entry():
    return {
        "guest_seq": None,
        "guest_ack": None,
        "guest_window": 0,
        "guest_segments": 0,
        "guest_pure_acks": 0,
        "guest_resets": 0,
        "client_resets": 0,
        "client_port": None,
    }


class Injector:
    """Sends spoofed segments as if from the client, through a raw IP socket."""

    def __init__(self, client, guest):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.client = client
        self.guest = guest
        self.sent = {}

    def send(self, kind, client_port, guest_port, sequence, acknowledgment, flags, payload=b""):
        packet = IP(src=self.client, dst=self.guest) / TCP(
            sport=client_port,
            dport=guest_port,
            seq=sequence % (1 << 32),
            ack=acknowledgment % (1 << 32),
            flags=flags,
            window=65535,
        )
        if payload:
            packet = packet / payload
        self.socket.sendto(bytes(packet), (self.guest, 0))
        self.sent[kind] = self.sent.get(kind, 0) + 1


KINDS = [
    # In window but never the exact next byte: RFC 5961 3.2 wants a challenge ACK.
    ("rst_in_window", "R", lambda rcv, snd, off: (rcv + off, 0)),
    # Far outside the window: dropped without an answer (3.2).
    ("rst_out_of_window", "R", lambda rcv, snd, off: (rcv + (1 << 30) + off, 0)),
    # A SYN on a synchronized connection, in or out of window: challenge ACK (4.2).
    ("syn_in_window", "S", lambda rcv, snd, off: (rcv + off, 0)),
    ("syn_out_of_window", "S", lambda rcv, snd, off: (rcv - (1 << 29) - off, 0)),
    # Data in the window whose ACK acknowledges nothing we sent, or lies far in the past
    # (5.2): dropped, answered by a rate-limited ACK.
    ("data_bad_ack_ahead", "PA", lambda rcv, snd, off: (rcv + off, snd + (1 << 30))),
    ("data_bad_ack_behind", "PA", lambda rcv, snd, off: (rcv + off, snd - (1 << 30))),
    # Data far before the window: dropped, answered by a rate-limited duplicate ACK.
    ("data_out_of_window", "PA", lambda rcv, snd, off: (rcv - (1 << 20) - off, snd)),
]


def attack(injector, sniffer, guest_port, count, seconds_per_kind, rng, label):
    """Sends `count` blind segments of each kind against the connection on `guest_port`, one
    kind after another, each spread over `seconds_per_kind`; returns per kind the guest's
    segments (all pure ACKs on a quiet connection) sent meanwhile."""
    answers = {}
    for kind, flags, numbers in KINDS:
        state = sniffer.snapshot(guest_port)
        if state["guest_ack"] is None or state["client_port"] is None:
            raise RuntimeError(f"no traffic seen on port {guest_port}")
        before = state["guest_segments"]
        for _ in range(count):
            sequence, acknowledgment = numbers(
                state["guest_ack"], state["guest_seq"], rng.randrange(1, 32768)
            )
            payload = b"EVIL" * 64 if flags == "PA" else b""
            injector.send(
                label + ":" + kind, state["client_port"], guest_port,
                sequence, acknowledgment, flags, payload,
            )
            time.sleep(seconds_per_kind / count)
        time.sleep(0.2)
        answers[kind] = sniffer.snapshot(guest_port)["guest_segments"] - before
    return answers


def pattern_digest(length):
    period = bytes(range(251))
    block = period * 4096
    digest = hashlib.sha256()
    left = length
    while left:
        size = min(left, len(block))
        digest.update(block[:size])
        left -= size
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("guest")
    parser.add_argument("--client", default="10.77.0.1")
    parser.add_argument("--interface", default="unisock0")
    parser.add_argument("--sink", type=int, default=9001)
    parser.add_argument("--source", type=int, default=9002)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--burst-bytes", type=int, default=2_000_000)
    parser.add_argument("--per-kind", type=int, default=100)
    parser.add_argument("--seconds-per-kind", type=float, default=1.0)
    parser.add_argument("--download-bytes", type=int, default=300_000_000)
    parser.add_argument("--seed", type=int, default=5961)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)

    sniffer = Sniffer(arguments.interface, arguments.guest)
    sniffer.start()
    injector = Injector(arguments.client, arguments.guest)

    # The download: read everything the source sends, in a thread, hashing as it goes.
    download = socket.create_connection((arguments.guest, arguments.source), timeout=60)
    download.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    download.sendall(f"{arguments.download_bytes}\n".encode())
    download_result = {"bytes": 0, "error": None}
    attacks_over = threading.Event()

    def read_download():
        digest = hashlib.sha256()
        try:
            while True:
                data = download.recv(1 << 16)
                if not data:
                    break
                digest.update(data)
                download_result["bytes"] += len(data)
                # A slow reader (4 MiB/s) keeps the download streaming through every round;
                # once the attacks are over it reads the rest at full speed.
                if not attacks_over.is_set() and download_result["bytes"] % (1 << 20) < len(data):
                    time.sleep(0.25)
        except OSError as error:
            download_result["error"] = repr(error)
        download_result["sha256"] = digest.hexdigest()

    reader = threading.Thread(target=read_download, daemon=True)
    reader.start()

    upload = socket.create_connection((arguments.guest, arguments.sink), timeout=60)
    upload_digest = hashlib.sha256()
    uploaded = 0
    upload_error = None
    rounds = []
    try:
        for round_index in range(arguments.rounds):
            burst = os.urandom(arguments.burst_bytes)
            upload.sendall(burst)
            upload_digest.update(burst)
            uploaded += len(burst)
            # Wait until the guest has acknowledged every byte: then its next sequence number
            # is known and the connection is quiet.
            deadline = time.time() + 30
            while time.time() < deadline:
                state = sniffer.snapshot(arguments.sink)
                if state["guest_ack"] is not None and unacknowledged(upload) == 0:
                    break
                time.sleep(0.05)
            time.sleep(0.3)
            upload_answers = attack(
                injector, sniffer, arguments.sink, arguments.per_kind,
                arguments.seconds_per_kind, rng, "upload",
            )
            download_answers = attack(
                injector, sniffer, arguments.source, arguments.per_kind // 4,
                arguments.seconds_per_kind / 4, rng, "download",
            )
            rounds.append(
                {
                    "round": round_index,
                    "upload_answers_while_quiet": upload_answers,
                    "download_segments_while_streaming": download_answers,
                }
            )
        attacks_over.set()
        upload.shutdown(socket.SHUT_WR)
        reply = b""
        while not reply.endswith(b"\n"):
            data = upload.recv(4096)
            if not data:
                break
            reply += data
    except OSError as error:
        upload_error = repr(error)
        reply = b""
    attacks_over.set()
    upload.close()
    reader.join(timeout=600)
    sniffer.running = False

    expected_upload = f"{uploaded} {upload_digest.hexdigest()}"
    upload_state = sniffer.snapshot(arguments.sink)
    download_state = sniffer.snapshot(arguments.source)
    result = {
        "sent": injector.sent,
        "rounds": rounds,
        "seconds_per_kind": arguments.seconds_per_kind,
        "upload": {
            "bytes": uploaded,
            "reply": reply.decode(errors="replace").strip(),
            "expected": expected_upload,
            "exact": reply.decode(errors="replace").strip() == expected_upload,
            "error": upload_error,
            "guest_resets": upload_state["guest_resets"],
        },
        "download": {
            "bytes": download_result["bytes"],
            "expected_bytes": arguments.download_bytes,
            "exact": download_result["bytes"] == arguments.download_bytes
            and download_result.get("sha256") == pattern_digest(arguments.download_bytes),
            "error": download_result["error"],
            "guest_resets": download_state["guest_resets"],
        },
    }
    print(json.dumps(result))
    ok = result["upload"]["exact"] and result["download"]["exact"]
    sys.exit(0 if ok else 1)


def unacknowledged(connection):
    """Bytes of `connection` the peer has not acknowledged yet (Linux SIOCOUTQ)."""
    import fcntl

    value = fcntl.ioctl(connection.fileno(), 0x5411, b"\0\0\0\0")  # TIOCOUTQ == SIOCOUTQ
    return struct.unpack("i", value)[0]


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A small HTTP/1.1 backend for the proxy's end-to-end tests, for what nginx cannot do.

  http-backend.py ADDRESS PORT

POST/PUT: reads the body (Content-Length or chunked) and answers its length and SHA-256.
GET /silent: accepts and never answers (the proxy must give 504).
GET /health: 200. Any other GET: 200 "python".
Misbehaving mid-response, for the fault tests (each body is the pattern `index mod 251`, and
each announces BODY_LENGTH bytes, or chunks, but sends only CUT_AT of them):
GET /big: the whole body, Content-Length (the one that behaves).
GET /cut-length: Content-Length, then closes after CUT_AT bytes.
GET /cut-chunked: chunked, then closes after CUT_AT bytes without the last chunk.
GET /reset-mid-body: Content-Length, then resets the connection after CUT_AT bytes.
GET /stall-mid-body: Content-Length, then sends nothing more and never closes.
Every request is printed to stdout as one line: METHOD TARGET.
"""
import hashlib
import socket
import socketserver
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


BODY_LENGTH = 1_000_000
CUT_AT = 300_000
PATTERN = bytes(range(251)) * (BODY_LENGTH // 251 + 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def answer(self, body: bytes, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        print(f"{self.command} {self.path}", flush=True)
        if self.path == "/silent":
            time.sleep(3600)
            return
        if self.path in ("/big", "/cut-length", "/reset-mid-body", "/stall-mid-body"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(BODY_LENGTH))
            self.end_headers()
            if self.path == "/big":
                self.wfile.write(PATTERN[:BODY_LENGTH])
                return
            self.wfile.write(PATTERN[:CUT_AT])
            self.wfile.flush()
            self.misbehave()
            return
        if self.path == "/cut-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, CUT_AT, 10_000):
                chunk = PATTERN[start:start + 10_000]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            self.misbehave()
            return
        self.answer(b"python\n")

    def misbehave(self):
        """Ends the response early as the path asks: close, reset or stall."""
        if self.path == "/stall-mid-body":
            time.sleep(3600)
        elif self.path == "/reset-mid-body":
            # SO_LINGER with a zero timeout: close() sends a RST instead of a FIN.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.close_connection = True
        self.connection.close()

    def read_body(self, digest):
        length = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return length
                left = size
                while left:
                    data = self.rfile.read(min(left, 1 << 16))
                    if not data:
                        raise ConnectionError("body cut off")
                    digest.update(data)
                    left -= len(data)
                length += size
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            data = self.rfile.read(min(left, 1 << 16))
            if not data:
                raise ConnectionError("body cut off")
            digest.update(data)
            left -= len(data)
            length += len(data)
        return length

    def do_POST(self):
        print(f"{self.command} {self.path}", flush=True)
        digest = hashlib.sha256()
        length = self.read_body(digest)
        self.answer(f"{length} {digest.hexdigest()}\n".encode())

    do_PUT = do_POST


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()

#!/usr/bin/env python3
"""A small HTTP/1.1 backend for the proxy's end-to-end tests, for what nginx cannot do.

  http-backend.py ADDRESS PORT

POST/PUT: reads the body (Content-Length or chunked) and answers its length and SHA-256.
GET /silent: accepts and never answers (the proxy must give 504).
GET /health: 200. Any other GET: 200 "python".
Every request is printed to stdout as one line: METHOD TARGET.
"""
import hashlib
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


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
        self.answer(b"python\n")

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

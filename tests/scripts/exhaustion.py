#!/usr/bin/python3
"""Resource exhaustion against the image: many idle connections, or clients that never read.

  exhaustion.py GUEST idle N          N connections that send half a request head and wait
  exhaustion.py GUEST never-read N    N connections that ask for the response and never read
                                      it, with the smallest receive buffer (zero window)
  options: --port 80 --hold SECONDS (how long to keep them; default 15) --request TEXT

Run inside the test's network namespace (root). While the connections are held, a legitimate
client asks the responder for `/` a few times; the guest's `/stats` is read before, at the
peak and after. Prints one JSON object: how many connections opened, how many the guest
ended (reset or closed) while held, the legitimate requests' results and latencies, and the
`/stats` total lines' tcp_connections and heap use.
"""
import argparse
import asyncio
import json
import resource
import socket
import time
import urllib.request


def total_line(guest):
    with urllib.request.urlopen(f"http://{guest}/stats", timeout=30) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("core=total "):
            for word in line.split()[1:]:
                key, _, value = word.partition("=")
                if value.isdigit():
                    values[key] = int(value)
        elif line.startswith("memory "):
            for word in line.split()[1:]:
                key, _, value = word.partition("=")
                if value.isdigit():
                    values["memory_" + key] = int(value)
    return values


def summary(values):
    keys = ("tcp_connections", "tcp_time_wait", "tcp_persist_timeouts", "memory_heap_used_bytes")
    return {key: values[key] for key in keys if key in values}


def legitimate_requests(guest, count):
    results = []
    for _ in range(count):
        started = time.time()
        try:
            with urllib.request.urlopen(f"http://{guest}/", timeout=30) as response:
                ok = response.status == 200 and response.read().startswith(b"Hello from Unisock")
        except OSError:
            ok = False
        results.append({"ok": ok, "ms": round((time.time() - started) * 1000, 1)})
    return results


async def hold(guest, port, mode, request, hold_seconds, count, opened, ended):
    try:
        if mode == "never-read":
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # The smallest receive buffer Linux allows: the window closes after a few KiB.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            raw.setblocking(False)
            await asyncio.get_running_loop().sock_connect(raw, (guest, port))
            reader, writer = await asyncio.open_connection(sock=raw)
        else:
            reader, writer = await asyncio.open_connection(guest, port)
    except OSError:
        return
    opened.append(1)
    writer.write(request)
    try:
        await writer.drain()
        if mode == "never-read":
            await asyncio.sleep(hold_seconds)
        else:
            # An idle client reads only to learn that the guest ended the connection.
            data = await asyncio.wait_for(reader.read(65536), timeout=hold_seconds)
            if not data:
                ended.append("closed")
            else:
                ended.append("answered")
    except asyncio.TimeoutError:
        pass
    except OSError:
        ended.append("reset")
    writer.transport.abort()


async def run(arguments):
    opened, ended = [], []
    request = arguments.request.encode().decode("unicode_escape").encode()
    started = time.time()
    tasks = []
    for index in range(arguments.count):
        tasks.append(asyncio.create_task(hold(
            arguments.guest, arguments.port, arguments.mode, request,
            arguments.hold, arguments.count, opened, ended,
        )))
        # Pace the opening a little so the namespace's own SYN backlog toward the slow
        # TCG guest does not overflow.
        if index % 200 == 199:
            await asyncio.sleep(0.05)
    open_seconds = time.time() - started
    await asyncio.sleep(min(3.0, arguments.hold / 3))
    loop = asyncio.get_running_loop()
    peak = await loop.run_in_executor(None, total_line, arguments.guest)
    legitimate = await loop.run_in_executor(None, legitimate_requests, arguments.guest, 5)
    await asyncio.gather(*tasks)
    return opened, ended, open_seconds, peak, legitimate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("guest")
    parser.add_argument("mode", choices=["idle", "never-read"])
    parser.add_argument("count", type=int)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--hold", type=float, default=15.0)
    parser.add_argument("--request", default=None)
    arguments = parser.parse_args()
    if arguments.request is None:
        arguments.request = "GET / HTTP/1.1\\r\\nHost: a\\r\\n" if arguments.mode == "idle" else "GET / HTTP/1.0\\r\\n\\r\\n"
    limit = max(arguments.count + 1024, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    before = total_line(arguments.guest)
    opened, ended, open_seconds, peak, legitimate = asyncio.run(run(arguments))
    time.sleep(2)
    after = total_line(arguments.guest)
    result = {
        "mode": arguments.mode,
        "asked": arguments.count,
        "opened": len(opened),
        "open_seconds": round(open_seconds, 1),
        "ended_by_guest": {kind: ended.count(kind) for kind in set(ended)},
        "legitimate": legitimate,
        "legitimate_ok": sum(1 for item in legitimate if item["ok"]),
        "before": summary(before),
        "peak": summary(peak),
        "after": summary(after),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

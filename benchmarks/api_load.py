"""Open-loop HTTP load at a constant rate, in a process of its own (``bench_api`` runs one per
scenario), so the client's CPU is never the server's.

Request ``i`` is due at ``t0 + i / rate`` whatever happened to the earlier ones (open loop: a
slow server does not slow the offered load). Its latency is counted **from the due time** to the
last byte of the answer, so time a request waited for a free connection is included (no
coordinated omission). Requests are pre-rendered bytes over HTTP/1.1 keep-alive connections on a
bare asyncio ``Protocol`` under uvloop: a few tens of microseconds of client CPU per request.

    python -m benchmarks.api_load --url http://127.0.0.1:8480 --rate 500 --seconds 10 \\
        --scenario read --key ocs_... [--connections 32]

Prints one JSON object: offered and achieved rates, statuses, latency percentiles (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.parse
from collections import Counter
from typing import Any

import uvloop

SUBSCRIBERS = [f"49170990000{n:02d}" for n in range(100)]
ANSWER_BYTES_MAX = 1 << 20


def render(method: str, host: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def requests(scenario: str, host: str, key: str, count: int, run: str) -> list[bytes]:
    auth = {"Authorization": f"Bearer {key}"}
    out = []
    for i in range(count):
        subscriber = SUBSCRIBERS[i % len(SUBSCRIBERS)]
        if scenario == "hello":
            out.append(render("GET", host, "/hello", {}))
        elif scenario == "read":
            out.append(render("GET", host, f"/api/v1/tenants/acme/subscribers/{subscriber}", auth))
        elif scenario == "topup":
            body = b'{"amount":"0.01","reason":"bench"}'
            headers = {**auth, "Content-Type": "application/json",
                       "Idempotency-Key": f"bench-{run}-{i}"}  # fmt: skip
            path = f"/api/v1/tenants/acme/subscribers/{subscriber}/topup"
            out.append(render("POST", host, path, headers, body))
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
    return out


class Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; answers framed by Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.waiter is None:
            return
        length = 0
        for line in bytes(self.buffer[:head_end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[: head_end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))
        if not self.lost.done():
            self.lost.set_result(None)

    async def exchange(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": at(1.0)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    count = int(args.rate * args.seconds)
    rendered = requests(args.scenario, url.netloc, args.key, count, args.run)
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        _transport, conn = await loop.create_connection(Connection, host, port)
        idle.put_nowait(conn)
    for _ in range(min(args.connections, 50)):  # warm: connections, server caches
        conn = await idle.get()
        await conn.exchange(rendered[0])
        idle.put_nowait(conn)
    latencies: list[float] = []
    service: list[float] = []
    statuses: Counter[str] = Counter()
    clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
    start = clock() + 0.1

    async def one(i: int) -> None:
        due = start + i / args.rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        conn = await idle.get()
        sent = clock()
        try:
            status = await conn.exchange(rendered[i])
        except ConnectionError:
            statuses["connection_lost"] += 1
            return
        done = clock()
        idle.put_nowait(conn)
        statuses[str(status)] += 1
        latencies.append(done - due)
        service.append(done - sent)

    began = time.perf_counter()
    tasks = [loop.create_task(one(i)) for i in range(count)]
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return {
        "scenario": args.scenario,
        "offered_per_s": args.rate,
        "requests": count,
        "achieved_per_s": round(len(latencies) / elapsed, 1),
        "statuses": dict(statuses),
        "connections": args.connections,
        # From the due time (includes waiting for a free connection): what a client sees.
        **percentiles(latencies),
        # From the write to the answer: the server's own time per request.
        "service": percentiles(service),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--scenario", choices=["hello", "read", "topup"], required=True)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--key", default="")
    parser.add_argument("--run", default=str(int(time.time())), help="idempotency key prefix")
    args = parser.parse_args()
    result = uvloop.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""SIP UDP transport benchmark: asyncio ``DatagramProtocol`` vs ``asyncio-dgram``.

Both servers do the same work per datagram through the real sans-IO ``SipEndpoint``: parse a
REGISTER, create a server transaction, answer 405 with Allow and X-OCS-Result (no authorizer,
so the figure is the transport plus the SIP core, not charging). A client in another process
keeps ``--window`` requests outstanding on one UDP socket, each with a new branch, and counts
answers per second. Both backends run in the same invocation, on the default asyncio loop and
on uvloop, interleaved ``--repeats`` times; the ratio is protocol ÷ dgram (median rates).
An ``echo`` pass (fixed answer, no SIP work) isolates the transports' own cost, which the SIP
work otherwise dilutes.

Also timed in-process: parsing one INVITE, and one INVITE through the endpoint (receive →
Authorize action → authorized() → 302 bytes), the per-call CPU cost of the SIP side.

Run: ``.venv/bin/python -m benchmarks.bench_sip_transport`` (writes
benchmarks/results/sip_transport.json).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import multiprocessing
import os
import pathlib
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import asyncio_dgram

from ocs.sip.authorizer import AuthOutcome, CallAuthDecision
from ocs.sip.endpoint import Authorize, Send, SipEndpoint
from ocs.sip.message import ParseLimits, parse_message
from ocs.sip.metrics import SipMetrics
from ocs.sip.redirect import RedirectPolicy

RESULTS = pathlib.Path(__file__).parent / "results" / "sip_transport.json"


def register(branch: int, port: int) -> bytes:
    return (
        f"REGISTER sip:ocs.test SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-b{branch}\r\n"
        f"From: <sip:+491710000001@proxy.test>;tag=t{branch}\r\n"
        f"To: <sip:+491710000001@proxy.test>\r\n"
        f"Call-ID: bench-{branch}@proxy.test\r\n"
        f"CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


INVITE = (
    b"INVITE sip:+4930123456@ocs.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-invite-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:+491710000001@proxy.test>;tag=a1\r\n'
    b"To: <sip:+4930123456@ocs.test>\r\n"
    b"Call-ID: 8f1c2a@proxy.test\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.9:5060>\r\n"
    b"P-Asserted-Identity: <sip:+491710000001@proxy.test>\r\n"
    b"User-Agent: kamailio\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def new_endpoint() -> SipEndpoint:
    return SipEndpoint(
        transport="udp",
        limits=ParseLimits(),
        policy=RedirectPolicy(),
        metrics=SipMetrics(),
        transactions_max=10_000_000,
    )


# -- servers (child process) -----------------------------------------------------------------


Handler = Callable[[bytes, tuple[str, int]], list[tuple[bytes, tuple[str, int]]]]
ECHO_ANSWER = b"SIP/2.0 405 Method Not Allowed\r\n" + b"X-Pad: " + b"x" * 300 + b"\r\n\r\n"


def make_handler(work: str) -> Handler:
    """``echo``: a fixed answer, no SIP work (transport cost only); ``sip``: the endpoint."""
    if work == "echo":
        return lambda data, source: [(ECHO_ANSWER, source)]
    endpoint = new_endpoint()
    clock = time.monotonic

    def handle(data: bytes, source: tuple[str, int]) -> list[tuple[bytes, tuple[str, int]]]:
        return [
            (action.data, cast(tuple[str, int], action.destination))
            for action in endpoint.receive(data, source, clock())
            if isinstance(action, Send)
        ]

    return handle


class _BenchProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        for answer, destination in self.handler(data, (addr[0], addr[1])):
            self.transport.sendto(answer, destination)


async def serve_protocol(work: str, ready: Any, port_box: Any, stop: Any) -> None:
    loop = asyncio.get_running_loop()
    handler = make_handler(work)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _BenchProtocol(handler), local_addr=("127.0.0.1", 0)
    )
    port_box.value = transport.get_extra_info("sockname")[1]
    ready.set()
    while not stop.is_set():
        await asyncio.sleep(0.05)
    transport.close()


async def serve_dgram(work: str, ready: Any, port_box: Any, stop: Any) -> None:
    handler = make_handler(work)
    stream = await asyncio_dgram.bind(("127.0.0.1", 0))
    port_box.value = stream.sockname[1]
    ready.set()

    async def pump() -> None:
        while True:
            data, addr = await stream.recv()
            source = cast(tuple[str, int], addr)
            for answer, destination in handler(data, (source[0], source[1])):
                await stream.send(answer, destination)

    task = asyncio.create_task(pump())
    while not stop.is_set():
        await asyncio.sleep(0.05)
    task.cancel()
    stream.close()


def server_main(
    backend: str, loop_kind: str, work: str, ready: Any, port_box: Any, stop: Any
) -> None:
    serve = serve_protocol if backend == "protocol" else serve_dgram
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(serve(work, ready, port_box, stop))
    else:
        asyncio.run(serve(work, ready, port_box, stop))


# -- client (this process) -------------------------------------------------------------------


def blast(port: int, requests: int, window: int, first_branch: int) -> tuple[float, int]:
    """Send ``requests`` REGISTERs with at most ``window`` outstanding; (seconds, answered)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    my_port = sock.getsockname()[1]
    payloads = [register(first_branch + n, my_port) for n in range(requests)]
    target = ("127.0.0.1", port)
    sent = answered = 0
    started = time.perf_counter()
    while sent < min(window, requests):
        sock.sendto(payloads[sent], target)
        sent += 1
    while answered < sent:
        try:
            sock.recv(65536)
        except TimeoutError:
            break  # lost datagrams: stop counting rather than wait forever
        answered += 1
        if sent < requests:
            sock.sendto(payloads[sent], target)
            sent += 1
    elapsed = time.perf_counter() - started
    sock.close()
    return elapsed, answered


def measure(
    backend: str, loop_kind: str, work: str, requests: int, window: int, branch: int
) -> float:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    port_box = context.Value("i", 0)
    process = context.Process(
        target=server_main,
        args=(backend, loop_kind, work, ready, port_box, stop),
        daemon=True,
    )
    process.start()
    try:
        if not ready.wait(20):
            raise RuntimeError(f"{backend}/{loop_kind} server did not start")
        blast(port_box.value, min(2000, requests), window, branch)  # warm-up
        elapsed, answered = blast(port_box.value, requests, window, branch + 10_000_000)
    finally:
        stop.set()
        process.join(5)
        if process.is_alive():
            process.kill()
    if answered < requests * 0.99:
        raise RuntimeError(f"{backend}/{loop_kind}: only {answered}/{requests} answered")
    return answered / elapsed


# -- in-process CPU figures ------------------------------------------------------------------


def per_op_us(function: Callable[[], object], number: int, repeats: int) -> float:
    best = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number):
            function()
        best.append((time.perf_counter() - started) / number * 1e6)
    return round(min(best), 2)


def invite_round_trip() -> Callable[[], object]:
    endpoint = new_endpoint()
    decision = CallAuthDecision(
        AuthOutcome.AUTHORIZED, max_duration_s=120, reservation_id="r-1", tenant="t1"
    )
    counter = iter(range(10**9))

    def once() -> object:
        n = next(counter)
        data = INVITE.replace(b"invite-1", f"i{n}".encode())
        (action,) = endpoint.receive(data, ("10.0.0.1", 5060), 0.0)
        assert isinstance(action, Authorize)
        return endpoint.authorized(action.ticket, decision, 0.0)

    return once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        pass
    works = ("echo", "sip")
    rates: dict[tuple[str, str], dict[str, list[float]]] = {
        (work, loop): {"protocol": [], "dgram": []} for work in works for loop in loops
    }
    branch = 0
    for _ in range(args.repeats):
        for work in works:
            for loop_kind in loops:
                for backend in ("protocol", "dgram"):  # interleaved so drift hits both
                    branch += 20_000_000
                    rate = measure(backend, loop_kind, work, args.requests, args.window, branch)
                    rates[(work, loop_kind)][backend].append(rate)
                    print(f"{work:5} {loop_kind:8} {backend:9} {rate:10.0f} req/s", flush=True)

    summary: dict[str, Any] = {}
    for (work, loop_kind), by_backend in rates.items():
        protocol = statistics.median(by_backend["protocol"])
        dgram = statistics.median(by_backend["dgram"])
        summary[f"{work}/{loop_kind}"] = {
            "protocol_req_per_s": round(protocol),
            "dgram_req_per_s": round(dgram),
            "ratio_protocol_over_dgram": round(protocol / dgram, 2),
            "protocol_runs": [round(r) for r in by_backend["protocol"]],
            "dgram_runs": [round(r) for r in by_backend["dgram"]],
        }
    ratios = [entry["ratio_protocol_over_dgram"] for entry in summary.values()]
    winner = "protocol" if statistics.median(ratios) >= 1 else "dgram"
    result = {
        "benchmark": "sip_transport",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "work_per_request": {
            "echo": "fixed answer, no parsing: the transport's own cost",
            "sip": "parse REGISTER + server transaction + 405 answer (SipEndpoint)",
        },
        "requests": args.requests,
        "window": args.window,
        "repeats": args.repeats,
        "results": summary,
        "median_ratio_protocol_over_dgram": round(statistics.median(ratios), 2),
        "faster_backend": winner,
        "used_by_sip_server": "protocol",
        "parse_invite_us": per_op_us(
            lambda: parse_message(INVITE, ParseLimits()), number=5000, repeats=3
        ),
        "endpoint_invite_to_302_us": per_op_us(invite_round_trip(), number=5000, repeats=3),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
        },
        "packages": {
            name: importlib.metadata.version(name)
            for name in ("asyncio-dgram", "uvloop", "msgspec")
            if _installed(name)
        },
    }
    print(json.dumps(result, indent=2))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())

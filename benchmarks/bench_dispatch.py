"""Dispatcher benchmark: events delivered per second by ``ocs dispatch``'s webhook plug-in to a
local receiver, vs the same receiver fed plain signed POSTs by httpx at the same concurrency
(no Redis, no consumer groups): the ratio is what the event pipeline costs on top of HTTP.

The receiver is a separate process (ThreadingHTTPServer answering 200), so it does not share
the dispatcher's interpreter. Events: one ``created`` event per subscriber, spread over the
shards as the ledger spreads them.

    .venv/bin/python -m benchmarks.bench_dispatch [--events 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from balance.ledger import Ledger
from ocs.dispatch_config import DispatchConfig, PluginSpec
from ocs.dispatcher import Dispatcher
from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from ocs.plugins.webhook import WebhookPlugin, sign

RESULTS_PATH = Path(__file__).parent / "results" / "dispatch.json"
SECRET = b"bench-secret-0123456789"
RECEIVER = """
import asyncio, sys
# A minimal keep-alive HTTP/1.1 receiver (asyncio, one process): answers every POST 200, so the
# benchmark measures the sender, not the stdlib http.server's per-request thread.
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            length = 0
            for line in head.split(b"\\r\\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await server.serve_forever()
asyncio.run(main())
"""


async def produce(client: Any, tenant: str, events: int) -> None:
    ledger = Ledger(client, tenant)
    subs = [f"4917{n:09d}" for n in range(events)]
    for start in range(0, events, 500):
        await asyncio.gather(
            *(
                ledger.provision_account(s, balance=1, now_s=1.7e9)
                for s in subs[start : start + 500]
            )
        )


async def run_dispatch(url: str, hook: str, tenant: str, events: int) -> float:
    client = aioredis.Redis.from_url(url)
    await produce(client, tenant, events)
    plugin = WebhookPlugin(hook, SECRET)
    config = DispatchConfig(
        plugins=(PluginSpec("hook", "webhook", frozenset({tenant})),),
        poll_s=0.01,
        scan_every_s=3600.0,
        trim=False,
        streams_in_flight=64,
    )
    dispatcher = Dispatcher(client, config, {"hook": plugin}, consumer="bench")
    delivered = dispatcher.metrics.delivered.labels("hook", tenant)
    started = time.perf_counter()
    while delivered._value.get() < events:
        await dispatcher.step()
    elapsed = time.perf_counter() - started
    await plugin.aclose()
    await client.aclose()
    return events / elapsed


async def run_plain(hook: str, events: int, concurrency: int) -> float:
    body = b'{"id":"x","type":"created"}'
    async with httpx.AsyncClient() as http:
        queue = list(range(events))

        async def worker() -> None:
            while queue:
                queue.pop()
                headers = {"Idempotency-Key": "x", "X-OCS-Signature": sign(SECRET, 1, body)}
                response = await http.post(hook, content=body, headers=headers)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return events / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="plain POSTs in flight")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    port = free_tcp_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    hook = f"http://127.0.0.1:{port}/hook"
    ours: list[float] = []
    plain: list[float] = []
    loads: list[float] = []  # 1-minute load average after each round (a shared box)
    try:
        for _ in range(100):
            try:
                httpx.post(hook, content=b"{}")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as data_dir, EmbeddedRedis(Path(data_dir)) as server:
            for round_no in range(args.rounds):
                ours.append(
                    asyncio.run(run_dispatch(server.url, hook, f"b{round_no}", args.events))
                )
                plain.append(asyncio.run(run_plain(hook, args.events, args.concurrency)))
                loads.append(round(os.getloadavg()[0], 2))
                print(
                    f"round {round_no + 1}: dispatch {ours[-1]:,.0f} events/s, "
                    f"plain POSTs {plain[-1]:,.0f}/s"
                )
    finally:
        receiver.terminate()
        receiver.wait(timeout=30)
    ratio = statistics.median(ours) / statistics.median(plain)
    result = {
        "benchmark": "ocs dispatch webhook deliveries vs plain httpx POSTs, same receiver",
        "events_per_round": args.events,
        "rounds": args.rounds,
        "dispatch_events_per_s": [round(v, 1) for v in ours],
        "plain_posts_per_s": [round(v, 1) for v in plain],
        "dispatch_median_events_per_s": round(statistics.median(ours), 1),
        "plain_median_posts_per_s": round(statistics.median(plain), 1),
        "ratio": round(ratio, 3),
        "command": f"python -m benchmarks.bench_dispatch --events {args.events} "
        f"--rounds {args.rounds} --concurrency {args.concurrency}",
        "load_average_1m_per_round": loads,
        "machine": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"dispatch: {result['dispatch_median_events_per_s']:,.0f} events/s vs plain "
        f"{result['plain_median_posts_per_s']:,.0f} POSTs/s: ratio {ratio:.2f} -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

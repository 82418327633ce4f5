"""``ocs api`` benchmark: balance reads and top-ups at a fixed request rate (default 500/s),
against Litestar's bare hello-world measured in the same run with the same client.

Both servers are real processes under uvicorn (one worker each) on a private Redis and
PostgreSQL; the client is httpx's async client sending on an open-loop schedule (request i at
t0 + i/rate, so a slow answer does not slow the offered load). Latency is from send to the full
answer. Top-ups use a fresh Idempotency-Key each and rotate over the catalog's subscribers.

    .venv/bin/python -m benchmarks.bench_api [--rate 500] [--seconds 10] [--output FILE]
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ocs.cli import main as ocs_main
from ocs.embedded_postgres import EmbeddedPostgres
from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from usage import migrate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results") / "api.json"
SUBSCRIBERS = [f"49170990000{n:02d}" for n in range(100)]
CONNECTIONS = 64


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited {proc.returncode}")
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def _run(client: httpx.AsyncClient, make: Any, rate: float, seconds: float) -> dict[str, Any]:
    count = int(rate * seconds)
    latencies: list[float] = []
    late: list[float] = []
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    # At most CONNECTIONS requests in flight: httpcore's pool gets slow (quadratic) with
    # thousands of queued requests, and the client, not the server, would be measured.
    in_flight = asyncio.Semaphore(CONNECTIONS)

    async def one(i: int) -> None:
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        method, url, kwargs = make(i)
        async with in_flight:
            late.append(max(0.0, loop.time() - due))
            sent = time.perf_counter()
            try:
                answer = await client.request(method, url, **kwargs)
                await answer.aread()
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - sent)
        if answer.status_code >= 300:
            errors[str(answer.status_code)] = errors.get(str(answer.status_code), 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - began
    return {
        "requests": count,
        "achieved_per_s": round(len(latencies) / elapsed, 1),
        "errors": errors,
        **_percentiles(latencies),
        # How late requests left against the schedule (client or server saturated).
        "send_late_p99_ms": round(_percentiles(late)["p99_ms"], 2),
    }


async def _measure(api: str, hello: str, key: str, rate: float, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as client:
        warm = [client.get(f"{api}/api/v1/tenants/acme/subscribers/{s}") for s in SUBSCRIBERS]
        warm += [client.get(f"{hello}/hello") for _ in range(CONNECTIONS)]
        await asyncio.gather(*warm)  # connections, ACL user, pools, key cache
        out: dict[str, Any] = {}
        out["hello_world"] = await _run(
            client, lambda i: ("GET", f"{hello}/hello", {}), rate, seconds
        )
        out["balance_read"] = await _run(
            client,
            lambda i: ("GET", f"{api}/api/v1/tenants/acme/subscribers/{SUBSCRIBERS[i % 100]}", {}),
            rate,
            seconds,
        )
        run_id = int(time.time())
        out["topup"] = await _run(
            client,
            lambda i: (
                "POST",
                f"{api}/api/v1/tenants/acme/subscribers/{SUBSCRIBERS[i % 100]}/topup",
                {
                    "json": {"amount": "0.01", "reason": "bench"},
                    "headers": {**headers, "Idempotency-Key": f"bench-{run_id}-{i}"},
                },
            ),
            rate,
            seconds,
        )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured scenario")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the embedded PostgreSQL runs as the postgres user
        redis = EmbeddedRedis(work / "redis", appendfsync="everysec")
        redis.start()
        pg = EmbeddedPostgres(work / "pg", fsync=True)
        pg.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            migrate.apply(pg.url)
            catalog = str(ROOT / "examples" / "catalog")
            load = ["catalog", "load", catalog, "--redis-url", redis.url, "--data-dir", tmp]
            assert ocs_main(load) == 0
            env = dict(os.environ, OCS_REDIS_URL=redis.url, OCS_STORE_URL=pg.url,
                       OCS_REDIS_DATA_DIR=str(work / "redis-secret"))  # fmt: skip
            made = subprocess.run(
                [sys.executable, "-m", "ocs", "apikey", "create", "--tenant", "acme", "--role",
                 "operate", "--json"], env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            key = json.loads(made.stdout)["key"]
            api_port, hello_port = free_tcp_port(), free_tcp_port()
            log = (work / "servers.log").open("wb")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ocs", "api", "--listen", f"127.0.0.1:{api_port}"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "benchmarks.api_hello:app", "--port",
                 str(hello_port), "--log-level", "warning", "--no-access-log"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
            api, hello = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{hello_port}"
            _wait_ready(f"{api}/healthz", procs[0])
            _wait_ready(f"{hello}/hello", procs[1])
            figures = asyncio.run(_measure(api, hello, key, args.rate, args.seconds))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(20)
            pg.stop()
            redis.stop()
    result = {
        "benchmark": "api",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "connections": CONNECTIONS,
        **figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""``ocs api`` benchmark: balance reads and top-ups offered at a constant rate (default 500/s),
reported against Litestar's bare hello-world measured in the same run with the same client; and
the time from an API create to the first CCR of the new subscriber answered 2001.

Every server is a real process (``ocs api`` and the hello-world under uvicorn, one worker each;
``ocs serve`` for the CCR) on a private Redis and PostgreSQL. The load comes from
``benchmarks/api_load.py`` in a process of its own per scenario: open loop (request i due at
t0 + i/rate), latency from the due time to the last byte, so queueing counts. The machine's load
average is recorded before and after: on a shared machine the ratio to the hello-world is the
figure to compare, the absolute milliseconds depend on what else runs.

    .venv/bin/python -m benchmarks.bench_api [--rate 500] [--seconds 10] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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
from sim import messages as m
from sim.diameter_client import connect
from sim.fiber import as_future
from usage import migrate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results") / "api.json"
P99_GOAL_MS = 20.0
REACH_GOAL_S = 1.0
NEW_NUMBER, NEW_IMSI = "4915558000001", "262015558000001"
WAIT_S = 60.0  # safety nets on a loaded machine; the figures are the times measured


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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(
    url: str, scenario: str, key: str, rate: float, seconds: float, server_pid: int
) -> dict[str, Any]:
    """One scenario from a load process of its own, with the server's CPU time per request
    (a figure the machine's other load hardly moves, unlike the latency)."""
    cpu_before = _cpu_s(server_pid)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.api_load", "--url", url, "--scenario", scenario,
         "--key", key, "--rate", str(rate), "--seconds", str(seconds)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=seconds * 10 + 120,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    cpu = _cpu_s(server_pid) - cpu_before
    # Warm-up requests included (at most 50), so a slight over-count.
    result["server_cpu_ms_per_request"] = round(cpu * 1000 / result["requests"], 3)
    return result


async def _reach(api: str, key: str, diameter_port: int) -> dict[str, Any]:
    """Create a subscriber through the API, then send CCR-I for its IMSI until one is 2001."""
    peer = m.PeerIdentity("bench.pgw.local", "bench.local")
    client, realm = await connect("127.0.0.1", diameter_port, peer, timeout_s=10, watchdog_s=30)
    encoder = m.CcrEncoder(peer, realm)
    mscc = (m.MsccRequest(10, m.Unit.BYTES, requested=1024),)

    async def ccr_i(n: int) -> int | None:
        spec = m.CcrSpec(f"bench.pgw.local;reach;{n}", 1, 0, m.GY_CONTEXT, NEW_NUMBER,
                         NEW_IMSI, mscc)  # fmt: skip
        hop = client.next_hop_by_hop()
        wake = client.send(encoder.encode(spec, hop_by_hop=hop, end_to_end=hop), hop)
        raw = await as_future(wake, asyncio.get_running_loop())
        return None if raw is None else m.summarize_answer(raw).result_code

    try:
        before = await ccr_i(0)  # 5030: the number is nobody's yet
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http:
            made = await http.post(
                f"{api}/api/v1/tenants/acme/subscribers",
                json={"subscriber": NEW_NUMBER, "imsi": NEW_IMSI, "balance": "10.00"},
            )
        created = time.perf_counter()
        assert made.status_code == 201, made.text
        attempts, code = 0, None
        while time.perf_counter() - created < WAIT_S:
            attempts += 1
            code = await ccr_i(attempts)
            if code == 2001:
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - created
    finally:
        await client.close()
    return {
        "before_create_result_code": before,
        "result_code": code,
        "created_to_charged_s": round(elapsed, 4),
        "ccr_attempts": attempts,
        "goal_s": REACH_GOAL_S,
        "meets_goal": code == 2001 and elapsed <= REACH_GOAL_S,
    }


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    hello = figures["hello_world"]["p99_ms"] or 1e-9
    out = {}
    for name in ("balance_read", "topup"):
        f = figures[name]
        out[name] = {
            "p99_ms": f["p99_ms"],
            "p99_vs_hello_world": round(f["p99_ms"] / hello, 2),
            "service_p99_ms": f["service"]["p99_ms"],
            "server_cpu_ms_per_request": f["server_cpu_ms_per_request"],
            "cpu_vs_hello_world": round(
                f["server_cpu_ms_per_request"]
                / (figures["hello_world"]["server_cpu_ms_per_request"] or 1e-9),
                2,
            ),
            "achieved_per_s": f["achieved_per_s"],
            "meets_p99_goal": f["p99_ms"] <= P99_GOAL_MS and set(f["statuses"]) <= {"200", "201"},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measured scenario")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    load_before = os.getloadavg()
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
            diameter_port, http_port = free_tcp_port(), free_tcp_port()
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
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "ocs", "serve", "--redis-url", redis.url,
                 "--diameter-listen", f"127.0.0.1:{diameter_port}",
                 "--http-listen", f"127.0.0.1:{http_port}", "--sip-listen", "127.0.0.1:0",
                 "--redis-data-dir", str(work / "redis-secret"), "--log-level", "warning"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work,
            ))  # fmt: skip
            api, hello = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{hello_port}"
            _wait_ready(f"{api}/healthz", procs[0])
            _wait_ready(f"{hello}/hello", procs[1])
            _wait_ready(f"http://127.0.0.1:{http_port}/healthz", procs[2])
            figures: dict[str, Any] = {}
            for name, url, scenario, pid in (
                ("hello_world", hello, "hello", procs[1].pid),
                ("balance_read", api, "read", procs[0].pid),
                ("topup", api, "topup", procs[0].pid),
            ):
                figures[name] = _load(url, scenario, key, args.rate, args.seconds, pid)
            figures["created_subscriber_charged"] = asyncio.run(_reach(api, key, diameter_port))
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
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "p99_goal_ms": P99_GOAL_MS,
        "summary": _summary(figures),
        **figures,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""End-to-end benchmark: the highest sustained mixed CCR rate ``ocs serve`` answers with p99 ≤
10 ms and no errors, driven by ``ocs sim`` on the same machine, against the Redis ceiling
(``redis-benchmark`` running the same per-CCR ledger script) measured in the same run.

Mix: Gy data sessions of CCR-I, 3 × CCR-U, CCR-T (20 % I, 60 % U, 20 % T), two MSCCs each,
subscribers spread over two tenants. Each step is a verified simulator run (units reported ==
usage records == balance changes); the rate grows by ``--step-factor`` until a step fails.

Server layouts: one process; and ``--processes`` N processes sharing one port with
SO_REUSEPORT (``[diameter] reuse_port``, set here through ``OCS_DIAMETER_REUSE_PORT``) and one
Redis; the simulator opens ``CONNECTIONS_PER_PROCESS`` connections per process and per worker so
the kernel's spreading of connections over the processes evens out.

    .venv/bin/python -m benchmarks.bench_e2e [--start-rate 500] [--step-factor 1.25] [--step-s 5]
        [--processes 2] [--sim-workers 1] [--ceiling-rounds 3] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from balance.scripts import ScriptSet
from benchmarks.bench_ledger import (
    check_equivalence,
    machine_facts,
    prepare,
    run_redis_benchmark,
)
from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from sim.scenario import Scenario, load_scenario
from sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).parent / "results" / "e2e.json"
P99_LIMIT_US = 10_000
SUBSCRIBERS_PER_TENANT = 2_000
CEILING_CLIENTS = 32
CEILING_REQUESTS = 50_000
REACHED_SHARE = 0.95  # a step passes only if the answers/s reach 95 % of its target
CONNECTIONS_PER_PROCESS = 2  # per simulator worker: the kernel hashes connections to processes


def bench_catalog(directory: Path) -> Path:
    """The demo catalog with SUBSCRIBERS_PER_TENANT subscribers per tenant (spreads the load
    over accounts as real traffic does, instead of 100 hot accounts)."""
    directory.mkdir(parents=True, exist_ok=True)
    last = f"{SUBSCRIBERS_PER_TENANT - 1:04d}"
    for source in (ROOT / "examples" / "catalog").glob("*.yaml"):
        text = source.read_text(encoding="utf-8")
        text = re.sub(r'(_last: "\d+?)0099"', rf'\g<1>{last}"', text)
        (directory / source.name).write_text(text, encoding="utf-8")
    return directory


class Server:
    """``ocs serve`` processes sharing one Redis and, with SO_REUSEPORT, one Diameter port."""

    def __init__(self, workdir: Path, redis_url: str, catalog: Path, processes: int) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.catalog = catalog
        self.processes = processes
        self.ports = [free_tcp_port()]
        self.http_ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        port = self.ports[0]
        env = {**os.environ, "OCS_DIAMETER_REUSE_PORT": "true" if self.processes > 1 else "false"}
        for number in range(self.processes):
            log = (self.workdir / f"ocs-{number}.log").open("wb")
            http_port = free_tcp_port()
            self.http_ports.append(http_port)
            args = [
                sys.executable, "-m", "ocs", "serve",
                "--diameter-listen", f"127.0.0.1:{port}",
                "--http-listen", f"127.0.0.1:{http_port}",
                "--no-sip", "--redis-url", self.redis_url,
                "--redis-data-dir", str(self.workdir / "redis"),
                "--catalog", str(self.catalog), "--log-level", "warning",
                "--origin-realm", "bench.local",
            ]  # fmt: skip
            self.procs.append(
                subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
                )
            )
            # The HTTP listener is this process's own and opens after the Diameter one: with
            # a shared Diameter port only it tells that this process is up.
            self._wait_port(http_port, self.procs[-1])

    @staticmethod
    def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
        import socket

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ocs serve exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("ocs serve did not listen in time")

    def latency_buckets(self) -> dict[float, float]:
        """The servers' own CCR latency histogram (arrival to answer written), summed."""
        buckets: dict[float, float] = {}
        for port in self.http_ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                text = reply.read().decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name.endswith("_bucket") and sample.labels.get("command") == "CCR":
                        le = float(sample.labels["le"])
                        buckets[le] = buckets.get(le, 0.0) + sample.value
        return buckets

    def cpu_s_by_process(self) -> list[float]:
        ticks = os.sysconf("SC_CLK_TCK")
        out = []
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out.append((int(fields[11]) + int(fields[12])) / ticks)
        return out

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def redis_cpu_s(server: EmbeddedRedis) -> float:
    info = redis.Redis.from_url(server.url).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def step_scenario(
    rate: float, ports: list[int], catalog: Path, args: argparse.Namespace, processes: int = 1
) -> Scenario:
    return load_scenario(
        None,
        {
            "load": {"rate": rate, "rate_unit": "ccr", "duration_s": args.step_s,
                     "ramp_s": 1.0, "drain_s": 10},
            "mix": {"data": 1, "voice": 0, "sms": 0, "sip": 0},
            "data": {"updates": 3, "update_interval_s": 0.05, "rating_groups": [10, 20],
                     "usage_bytes": 10_000},
            "roaming_share": 0.0,
            "target": {"diameter_port": ports[0], "extra_diameter_ports": ports[1:]},
            "catalog": str(catalog),
            "subscribers_per_tenant_max": SUBSCRIBERS_PER_TENANT,
            "workers": args.sim_workers,
            "connections_per_worker": 1 if processes == 1 else CONNECTIONS_PER_PROCESS * processes,
        },
    )  # fmt: skip


def bucket_percentile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound (µs) of the histogram bucket holding quantile ``q`` of this step."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= q * counts[-1]:
            return bound * 1e6
    return float("inf")


def run_step(
    rate: float, server: Server, redis_server: EmbeddedRedis, catalog: Path, args: Any
) -> dict[str, Any]:
    scenario = step_scenario(rate, server.ports, catalog, args, server.processes)
    by_process_before = server.cpu_s_by_process()
    redis_before = redis_cpu_s(redis_server)
    latency_before = server.latency_buckets()
    outcome = simulate(scenario, redis_url=redis_server.url, progress=False, quiet=True)
    report = outcome.report
    by_process = [
        after - before
        for after, before in zip(server.cpu_s_by_process(), by_process_before, strict=True)
    ]
    server_cpu = sum(by_process)
    redis_cpu = redis_cpu_s(redis_server) - redis_before
    latency_after = server.latency_buckets()
    answers = max(1, report["throughput"]["answers"])
    p99 = report["latency_us"]["p99"]
    achieved = report["throughput"]["steady_answers_per_s"]
    kept_up = outcome.passed and not report["errors"] and achieved >= REACHED_SHARE * rate
    passed = kept_up and p99 <= P99_LIMIT_US
    step = {
        "target_ccr_per_s": round(rate, 1),
        "achieved_ccr_per_s": achieved,
        "p50_us": report["latency_us"]["p50"],
        "p99_us": p99,
        # Seen by the server (arrival to answer written), as histogram bucket bounds: the rest
        # of the simulator's latency is the simulator, the kernel and waiting for a CPU.
        "server_p50_us_at_most": bucket_percentile(latency_before, latency_after, 0.5),
        "server_p99_us_at_most": bucket_percentile(latency_before, latency_after, 0.99),
        "errors": report["errors"],
        "verified": outcome.passed,
        "kept_up": kept_up,
        "passed": passed,
        "server_cpu_us_per_ccr": round(server_cpu / answers * 1e6, 1),
        # How SO_REUSEPORT spread the work: each process's share of the server CPU.
        "server_cpu_share_by_process": [round(c / max(server_cpu, 1e-9), 2) for c in by_process],
        "redis_cpu_us_per_ccr": round(redis_cpu / answers * 1e6, 1),
        "sim_cpu_us_per_ccr": round(report["cpu"]["workers_cpu_s"] / answers * 1e6, 1),
        "result_codes": report["result_codes"],
    }
    verdict = "ok" if passed else "kept up, p99 over" if kept_up else "over"
    print(
        f"  {rate:8,.0f} CCR/s target: {achieved:8,.0f} achieved, p50 {step['p50_us'] / 1000:.2f}"
        f" ms, p99 {p99 / 1000:.2f} ms (server p99 <= "
        f"{step['server_p99_us_at_most'] / 1000:g} ms), errors {sum(report['errors'].values())}, "
        f"verified {'PASS' if outcome.passed else 'FAIL'}; CPU per CCR: server "
        f"{step['server_cpu_us_per_ccr']} µs, redis {step['redis_cpu_us_per_ccr']} µs, sim "
        f"{step['sim_cpu_us_per_ccr']} µs -> {verdict}",
        flush=True,
    )
    return step


def _venv_bin() -> str:
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``module.py:func``."""
    name, _, where = frame.partition(" (")
    return f"{where.split(':', 1)[0].rsplit('/', 1)[-1]}:{name}" if where else name


def summarize_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the hottest functions in py-spy's raw (collapsed) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def share(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in ranked]

    return {"samples": total, "self_percent": share(own), "inclusive_percent": share(inclusive)}


def profile_server(
    rate: float, server: Server, redis_server: EmbeddedRedis, catalog: Path, args: Any
) -> dict[str, Any]:
    """py-spy on the server process during one more step at ``rate``."""
    out = Path(tempfile.mkdtemp(prefix="bench-e2e-prof-")) / "server.txt"
    spy = subprocess.Popen(
        [shutil.which("py-spy", path=_venv_bin()) or "py-spy", "record", "-p",
         str(server.procs[0].pid), "-d", str(int(args.step_s) + 1), "-r", "200", "-f", "raw",
         "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)
    step = run_step(rate, server, redis_server, catalog, args)
    spy.wait(timeout=60)
    summary = summarize_profile(out.read_text()) if out.exists() else {"error": "no output"}
    return {"rate_ccr_per_s": rate, "step": step, **summary}


def pin_layout(server: Server, redis_server: EmbeddedRedis) -> dict[str, list[int]]:
    """The server on the first CPU; Redis and the simulator (this process, whose workers
    inherit its affinity) on the others: the server then never waits behind them for a CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, others = {cpus[0]}, set(cpus[1:]) or {cpus[0]}
    for proc in server.procs:
        os.sched_setaffinity(proc.pid, server_cpus)
    if redis_server.pid is not None:
        os.sched_setaffinity(redis_server.pid, others)
    os.sched_setaffinity(0, others)
    return {"server": sorted(server_cpus), "redis_and_simulator": sorted(others)}


def search(
    processes: int, workdir: Path, catalog: Path, args: argparse.Namespace, *, pinned: bool = False
) -> dict[str, Any]:
    """Raise the rate until the server no longer keeps up; the best step within the p99 limit
    is the sustained rate, the best step that kept up (any p99) the saturation rate."""
    print(f"server: {processes} process(es){', pinned' if pinned else ''}", flush=True)
    data_dir = workdir / f"redis-{processes}{'-pinned' if pinned else ''}"
    own_cpus = os.sched_getaffinity(0)
    pinning: dict[str, list[int]] | None = None
    with EmbeddedRedis(data_dir) as redis_server:
        server = Server(workdir, redis_server.url, catalog, processes)
        try:
            server.start()
            if pinned:
                pinning = pin_layout(server, redis_server)
            load_before = os.getloadavg()[0]
            steps: list[dict[str, Any]] = []
            rate = float(args.start_rate)
            deadline = time.monotonic() + args.budget_s
            while time.monotonic() < deadline:
                steps.append(run_step(rate, server, redis_server, catalog, args))
                for attempt in range(2, args.p99_attempts + 1):
                    if steps[-1]["passed"] or not steps[-1]["kept_up"]:
                        break
                    # Kept up but missed the p99 limit: on a shared machine one burst of other
                    # work is enough for that, so the same rate gets another attempt.
                    steps.append(run_step(rate, server, redis_server, catalog, args))
                    steps[-1]["attempt"] = attempt
                if not steps[-1]["kept_up"]:
                    break  # saturated (or wrong): the p99 limit was passed on the way
                rate *= args.step_factor
            passing = [s for s in steps if s["passed"]]
            best = max(passing, key=lambda s: s["achieved_ccr_per_s"]) if passing else None
            kept = [s for s in steps if s["kept_up"]]
            saturation = max(kept, key=lambda s: s["achieved_ccr_per_s"]) if kept else None
            profile = None
            wants_profile = args.profile and processes == 1 and not pinned
            if wants_profile and shutil.which("py-spy", path=_venv_bin()):
                profile_rate = best["target_ccr_per_s"] if best else float(args.start_rate)
                profile = profile_server(profile_rate, server, redis_server, catalog, args)
        finally:
            server.stop()
            os.sched_setaffinity(0, own_cpus)
    return {
        "load_average_before": round(load_before, 2),
        "profile": profile,
        "processes": processes,
        "pinning": pinning,
        "listen": "one port" if processes == 1 else "one port shared with SO_REUSEPORT",
        "steps": steps,
        "best_ccr_per_s": best["achieved_ccr_per_s"] if best else 0.0,
        "best_step": best,
        "saturation_ccr_per_s": saturation["achieved_ccr_per_s"] if saturation else 0.0,
        "saturation_p99_us": saturation["p99_us"] if saturation else None,
    }


def redis_ceiling(workdir: Path, rounds: int) -> list[float]:
    """``redis-benchmark`` running the per-CCR script (bench_ledger's request) on a fresh Redis,
    ``rounds`` times (this shared machine's figure moves by 2-3x between minutes)."""
    script = ScriptSet.load()["ccr"]
    with EmbeddedRedis(workdir / "redis-ceiling") as server:
        redis.Redis.from_url(server.url).script_load(script.body)
        asyncio.run(prepare(server.url))
        check_equivalence(server.url, script.sha)
        return [
            run_redis_benchmark(server, script.sha, CEILING_CLIENTS, CEILING_REQUESTS, n)
            for n in range(rounds)
        ]


def versions() -> dict[str, Any]:
    from importlib.metadata import version

    packages = ("msgspec", "uvloop", "redis", "hiredis", "mvna-ocs")
    return {**machine_facts(), **{name: version(name) for name in packages}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--start-rate", type=float, default=500.0, help="first step, CCR/s")
    parser.add_argument("--step-factor", type=float, default=1.25)
    parser.add_argument("--step-s", type=float, default=5.0, help="arrival seconds per step")
    parser.add_argument("--budget-s", type=float, default=150.0, help="per server layout")
    parser.add_argument("--processes", type=int, default=2, help="the multi-process layout")
    parser.add_argument("--sim-workers", type=int, default=1)
    parser.add_argument(
        "--p99-attempts",
        type=int,
        default=2,
        help="attempts at a rate that kept up but missed the p99 limit (all are recorded)",
    )
    parser.add_argument(
        "--ceiling-rounds", type=int, default=3, help="redis-benchmark runs; the median counts"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="also run one server process pinned to the first CPU, Redis and the simulator to "
        "the others",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument(
        "--no-profile", dest="profile", action="store_false", help="skip the py-spy profile"
    )
    args = parser.parse_args(argv)
    if shutil.which("redis-benchmark") is None:
        print("bench_e2e: redis-benchmark not found (Debian: apt-get install redis-tools)")
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        workdir = Path(tmp)
        catalog = bench_catalog(workdir / "catalog")
        ceilings = redis_ceiling(workdir, args.ceiling_rounds)
        ceiling = statistics.median(ceilings)
        print(
            f"Redis ceiling (redis-benchmark, per-CCR script): {ceiling:,.0f} CCR/s, the median "
            f"of {', '.join(f'{c:,.0f}' for c in ceilings)}",
            flush=True,
        )
        layouts = [search(1, workdir, catalog, args)]
        if args.processes > 1:
            layouts.append(search(args.processes, workdir, catalog, args))
        if args.pin:
            layouts.append(search(1, workdir, catalog, args, pinned=True))
    best = max(layouts, key=lambda layout: layout["best_ccr_per_s"])
    ratio = best["best_ccr_per_s"] / ceiling if ceiling else 0.0
    result = {
        "benchmark": "end to end: mixed Gy CCRs (20% I, 60% U, 20% T, 2 MSCCs) from ocs sim to "
        "ocs serve, highest sustained rate with p99 <= 10 ms, no errors, verified ledger",
        "command": "python -m benchmarks.bench_e2e " + " ".join(argv or sys.argv[1:]),
        "p99_limit_us": P99_LIMIT_US,
        "redis_ceiling_ccr_per_s": round(ceiling, 1),
        "redis_ceiling_rounds_ccr_per_s": [round(c, 1) for c in ceilings],
        "layouts": layouts,
        "best_ccr_per_s": best["best_ccr_per_s"],
        "best_layout_processes": best["processes"],
        "best_layout_pinned": best["pinning"] is not None,
        "saturation_ccr_per_s": max(layout["saturation_ccr_per_s"] for layout in layouts),
        "ratio_to_redis_ceiling": round(ratio, 3),
        "targets": {"ccr_per_s": 12_000, "ratio": 0.25},
        "notes": "simulator, server and Redis share the machine (and other work running on "
        "it: see load_average_before); a rate that kept up but missed the p99 limit is tried "
        "again up to p99_attempts times, every attempt recorded; N processes share the port "
        "with SO_REUSEPORT",
        "p99_attempts": args.p99_attempts,
        "machine": {**versions(), "cores": os.cpu_count()},
        "duration_s": round(time.monotonic() - started, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for layout in layouts:
        print(
            f"{layout['processes']} process(es){' pinned' if layout['pinning'] else ''}: "
            f"{layout['best_ccr_per_s']:,.0f} CCR/s within "
            f"p99 10 ms; saturation {layout['saturation_ccr_per_s']:,.0f} CCR/s at p99 "
            f"{(layout['saturation_p99_us'] or 0) / 1000:.1f} ms"
        )
    profile = layouts[0].get("profile")
    if profile and "self_percent" in profile:
        print("server profile (py-spy, self time):")
        for name, percent in profile["self_percent"][:10]:
            print(f"  {percent:5.1f}%  {name}")
    print(
        f"end to end {best['best_ccr_per_s']:,.0f} CCR/s vs Redis ceiling {ceiling:,.0f} CCR/s: "
        f"ratio {ratio:.3f} (targets: 12,000 CCR/s, 0.25) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""In-process server benchmark: the CPU one ``ocs serve`` process spends per CCR, without the
simulator, the kernel's socket path on the Diameter side or other processes' noise.

The real ``OcsApp`` (catalog, rating, ledger on a private redis-server) gets the bench_e2e mix
(Gy sessions of CCR-I, 3 × CCR-U, CCR-T, two MSCCs each) through one ``DiameterConnection``
whose transport is an in-memory sink. Requests arrive in waves of ``--batch`` CCRs (one
``data_received`` each, as a pipelining gateway delivers them); the next wave goes when every
answer of the previous one was written. Reported: process CPU µs per CCR (time.process_time;
Redis runs in its own process and is not counted), answers/s of this closed loop, writes per
answer, and optionally a cProfile table (which slows everything; use it for shares only).

    .venv/bin/python -m benchmarks.bench_server [--sessions 4000] [--batch 64] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.bench_e2e import SUBSCRIBERS_PER_TENANT, bench_catalog
from diameter_apps.credit_control.codes import CcRequestType
from ocs.app import OcsApp, tune_garbage_collector
from ocs.config import (
    CatalogConfig,
    Config,
    DiameterConfig,
    HttpConfig,
    LogConfig,
    RedisConfig,
    SipConfig,
)
from ocs.diameter_server import DiameterConnection
from ocs.embedded_redis import EmbeddedRedis
from sim import messages as m
from sim.population import load_population

UPDATES = 3
USAGE_BYTES = 10_000
RATING_GROUPS = (10, 20)
PEER = m.PeerIdentity("bench-gw.sim.local", "sim.local")


class Sink:
    """The connection's transport: counts writes and the answers in them."""

    def __init__(self) -> None:
        self.writes = 0
        self.answers = 0
        self.received: list[bytes] = []
        self.waiter: asyncio.Future[None] | None = None
        self.expected = 0

    def write(self, data: bytes) -> None:
        # Only split into messages here; decoding waits until the clock stopped.
        self.writes += 1
        self.received.append(data)
        while data:
            length = int.from_bytes(data[1:4], "big")
            if data[5:8] == b"\x00\x01\x10":  # Credit-Control (272)
                self.answers += 1
            data = data[length:]
        if self.waiter is not None and self.answers >= self.expected and not self.waiter.done():
            self.waiter.set_result(None)

    def result_codes(self) -> Counter[int | None]:
        codes: Counter[int | None] = Counter()
        for data in self.received:
            while data:
                length = int.from_bytes(data[1:4], "big")
                summary = m.summarize_answer(data[:length])
                data = data[length:]
                if summary.command_code == 272:
                    codes[summary.result_code] += 1
        return codes

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def session_waves(catalog: Path, sessions: int) -> list[list[m.CcrSpec]]:
    """Stage k of every session, stage by stage: I, U × UPDATES, T."""
    subscribers = load_population(str(catalog), per_tenant_max=SUBSCRIBERS_PER_TENANT)
    stages: list[list[m.CcrSpec]] = [[] for _ in range(UPDATES + 2)]
    for number in range(sessions):
        sub = subscribers[number % len(subscribers)]
        session = f"bench-gw.sim.local;{number};1"
        for stage, (kind, used, requested) in enumerate(
            [(CcRequestType.INITIAL, 0, 0)]
            + [(CcRequestType.UPDATE, USAGE_BYTES, 0)] * UPDATES
            + [(CcRequestType.TERMINATION, USAGE_BYTES, None)]
        ):
            msccs = tuple(
                m.MsccRequest(rg, m.Unit.BYTES, requested=requested, used=used)
                for rg in RATING_GROUPS
            )
            stages[stage].append(
                m.CcrSpec(session, kind, stage, m.GY_CONTEXT, sub.msisdn, sub.imsi, msccs)
            )
    return stages


async def drive(
    app: OcsApp, waves: list[list[m.CcrSpec]], batch: int, first_id: int
) -> dict[str, Any]:
    """Hop-by-Hop/End-to-End ids start at ``first_id``: ids seen before would be answered
    from the duplicate cache."""
    assert app.diameter is not None
    loop = asyncio.get_running_loop()
    connection = DiameterConnection(app.diameter)
    sink = Sink()
    connection.connection_made(sink)  # type: ignore[arg-type]
    connection.data_received(m.cer(PEER, hop_by_hop=1, end_to_end=1))
    encoder = m.CcrEncoder(PEER, app.config.diameter.origin_realm)
    hop = first_id
    # Encode everything up front: the client's cost is not the server's.
    chunks: list[tuple[bytes, int]] = []
    for stage in waves:
        for start in range(0, len(stage), batch):
            parts = []
            for spec in stage[start : start + batch]:
                hop += 1
                parts.append(encoder.encode(spec, hop_by_hop=hop, end_to_end=hop))
            chunks.append((b"".join(parts), len(parts)))
    total = sum(n for _, n in chunks)
    writes_before = sink.writes
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for data, count in chunks:
        sink.expected = sink.answers + count
        sink.waiter = loop.create_future()
        connection.data_received(data)
        await sink.waiter
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "ccrs": total,
        "cpu_us_per_ccr": round(cpu / total * 1e6, 1),
        "answers_per_s": round(total / wall, 1),
        "writes_per_answer": round((sink.writes - writes_before) / total, 3),
        "result_codes": {str(k): v for k, v in sink.result_codes().items()},
        "last_id": hop,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        workdir = Path(tmp)
        catalog = bench_catalog(workdir / "catalog")
        with EmbeddedRedis(workdir / "redis") as redis_server:
            config = Config(
                diameter=DiameterConfig(listen_port=0, origin_realm="bench.local"),
                http=HttpConfig(listen_port=0),
                redis=RedisConfig(url=redis_server.url, data_dir=str(workdir / "data")),
                sip=SipConfig(enabled=False),
                catalog=CatalogConfig(path=str(catalog)),
                log=LogConfig(level="warning"),
            )
            app = OcsApp(config)
            await app.start()
            if args.gc_tuning:
                tune_garbage_collector()  # as `ocs serve` does once started
            try:
                warm = await drive(
                    app, session_waves(catalog, min(args.sessions, 256)), args.batch, 10
                )
                runs: list[dict[str, Any]] = []
                last_id = warm["last_id"]
                for run_number in range(args.repeat):
                    # Fresh sessions per run (the warm-up used the first numbers).
                    waves = [
                        [
                            m.CcrSpec(
                                **{**_fields(s), "session_id": f"{s.session_id};{run_number}"}
                            )
                            for s in stage
                        ]
                        for stage in session_waves(catalog, args.sessions)
                    ]
                    profiler = cProfile.Profile() if args.profile else None
                    if profiler is not None:
                        profiler.enable()
                    runs.append(await drive(app, waves, args.batch, last_id + 1))
                    last_id = runs[-1]["last_id"]
                    if profiler is not None:
                        profiler.disable()
                        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            finally:
                await app.stop()
    # The machine is shared: the least CPU of the runs is the least disturbed one.
    best = min(runs, key=lambda r: r["cpu_us_per_ccr"])
    best["cpu_us_per_ccr_runs"] = [r["cpu_us_per_ccr"] for r in runs]
    return best


def _fields(spec: m.CcrSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__struct_fields__}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=2000, help="per run (5 CCRs each)")
    parser.add_argument("--batch", type=int, default=64, help="CCRs per data_received")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the least CPU is reported")
    parser.add_argument("--profile", action="store_true", help="print a cProfile table")
    parser.add_argument(
        "--no-gc-tuning", dest="gc_tuning", action="store_false", help="CPython's GC defaults"
    )
    args = parser.parse_args(argv)
    result = uvloop.run(run(args))
    print(
        f"{result['ccrs']:,} CCRs in waves of {args.batch}: {result['cpu_us_per_ccr']} µs "
        f"server CPU per CCR (runs: {result['cpu_us_per_ccr_runs']}), "
        f"{result['answers_per_s']:,.0f} answers/s (closed loop, one "
        f"process), {result['writes_per_answer']} writes per answer, "
        f"result codes {result['result_codes']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

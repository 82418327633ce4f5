"""Run a scenario: worker processes (or one in-process worker for tests), live progress, merged
statistics, and, given the server's Redis, verification.

Workers connect first (CER/CEA), report ready, then all start on one shared instant so their
per-second series line up. Each ships a light snapshot every ``PROGRESS_INTERVAL_S`` and its
full statistics at the end.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from sim.histogram import Histogram
from sim.population import SimSubscriber, load_population
from sim.scenario import Scenario
from sim.stats import RunStats
from sim.traffic import Worker, session_prefix

PROGRESS_INTERVAL_S = 0.5
# Young-generation threshold of a worker process's cyclic collector (Python's default: 700).
# Every CCR allocates a few futures, coroutine frames and tuples that die within milliseconds;
# at 700 the collector ran every few CCRs, about a tenth of a worker's CPU. The cycles a run
# makes are few and short-lived, so collecting every 50,000 allocations holds little memory.
WORKER_GC_YOUNG_THRESHOLD = 50_000
READY_TIMEOUT_S = 30.0
ProgressHook = Callable[[dict[str, Any]], None]


class RunError(RuntimeError):
    """The run could not take place (server unreachable, CER refused, worker crashed)."""


class RunResult(msgspec.Struct):
    run_id: str
    scenario: Scenario
    stats: RunStats
    started_at: float
    arrivals_s: float  # time sessions were being started
    elapsed_s: float  # until the last worker finished (drain included)
    wall_cpu_s: float  # the parent's own CPU (progress, merging)
    workers: int


SEED_MAX = 2**32 - 1


def with_seed(scenario: Scenario) -> Scenario:
    """The scenario with the seed the run uses: its own, or (0) a random one from 1..2**32-1."""
    if scenario.seed:
        return scenario
    return msgspec.structs.replace(scenario, seed=secrets.randbelow(SEED_MAX) + 1)


def _budget(total: int, workers: int, index: int) -> int:
    if total <= 0:
        return 0
    return total // workers + (1 if index < total % workers else 0)


async def _worker_main(
    index: int,
    workers: int,
    scenario: Scenario,
    population: list[SimSubscriber],
    run_id: str,
    out: Any,
    start: Any,
    start_at: Any,
) -> None:
    seed = scenario.seed * 1_000_003 + index  # drawn by the parent when 0: see with_seed
    worker = Worker(
        index,
        scenario,
        population,
        run_id,
        share=1.0 / workers,
        session_budget=_budget(scenario.load.sessions, workers, index),
        seed=seed,
        sip_call=_sip_calls() if scenario.mix.sip > 0 else None,
    )
    try:
        await worker.connect()
    except Exception as exc:
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))
        return
    # What exists now (scenario, population, connections) lives for the whole run: frozen out
    # of the cyclic collector so its full collections do not walk it again and again.
    gc.freeze()
    out.put(("ready", index, None))
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(None, start.wait, 0.2):
        pass
    worker.start_clock(start_at.value)

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            out.put(("progress", index, _light(worker.stats)))

    reporter = loop.create_task(report())
    await worker.run_arrivals()
    out.put(("arrivals_done", index, None))
    await worker.drain()
    await worker.close()
    reporter.cancel()
    out.put(("final", index, worker.snapshot()))


def _sip_calls() -> Any:
    """The SIP call behaviour, imported only by runs that make SIP calls: the SIP parser's
    imports cost each worker about 17 ms of CPU at start, a run's whole CPU at low rates."""
    from sim.sip_call import SipCalls

    return SipCalls()


def _light(stats: RunStats) -> dict[str, Any]:
    return {
        "sent": dict(stats.sent),
        "results": dict(stats.results),
        "errors": dict(stats.errors),
        "latency": stats.latency.to_wire(),
    }


def worker_process(
    index: int,
    workers: int,
    scenario_raw: bytes,
    population_raw: bytes,
    run_id: str,
    out: Any,
    start: Any,
    start_at: Any,
    own_process: bool = False,
) -> None:
    """Entry point of a worker process (arguments arrive msgpack-encoded: cheap to pickle);
    ``own_process``: not a thread of the caller, so the collector may be tuned for the run."""
    if own_process:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(WORKER_GC_YOUNG_THRESHOLD, older, oldest)
    scenario = msgspec.msgpack.decode(scenario_raw, type=Scenario)
    population = msgspec.msgpack.decode(population_raw, type=list[SimSubscriber])
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        runner(_worker_main(index, workers, scenario, population, run_id, out, start, start_at))
    except Exception as exc:  # reported to the parent, which fails the run
        out.put(("error", index, f"{type(exc).__name__}: {exc}"))


class _ThreadValue:
    def __init__(self) -> None:
        self.value = 0.0


def run_traffic(
    scenario: Scenario,
    population: list[SimSubscriber],
    *,
    run_id: str,
    in_process: bool = False,
    progress: ProgressHook | None = None,
) -> RunResult:
    """Run the traffic and return merged statistics (no verification). A random seed (0) is
    drawn here, once, and kept on the result's scenario, so any run can be replayed."""
    scenario = with_seed(scenario)
    workers = 1 if in_process else scenario.workers
    scenario_raw = msgspec.msgpack.encode(scenario)
    population_raw = msgspec.msgpack.encode(population)
    handles: list[Any] = []
    if in_process:
        out: Any = queue.Queue()
        start: Any = threading.Event()
        start_at: Any = _ThreadValue()
        thread = threading.Thread(
            target=worker_process,
            args=(0, 1, scenario_raw, population_raw, run_id, out, start, start_at),
            daemon=True,
        )
        thread.start()
        handles.append(thread)
    else:
        # fork: workers start in milliseconds and need no importable __main__; the parent has
        # no event loop running in this thread (callers in async code use a thread).
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context: Any = multiprocessing.get_context(method)
        out = context.Queue()
        start = context.Event()
        start_at = context.Value("d", 0.0)
        for index in range(workers):
            process = context.Process(
                target=worker_process,
                args=(index, workers, scenario_raw, population_raw, run_id, out, start, start_at),
                kwargs={"own_process": True},
                daemon=True,
            )
            process.start()
            handles.append(process)
    cpu_before = time.process_time() if not in_process else 0.0
    try:
        return _collect(
            scenario, run_id, workers, out, start, start_at, progress, handles, cpu_before,
            in_process,
        )  # fmt: skip
    finally:
        for handle in handles:
            handle.join(timeout=5)
            if not in_process and handle.is_alive():
                handle.terminate()


def _collect(
    scenario: Scenario,
    run_id: str,
    workers: int,
    out: Any,
    start: Any,
    start_at: Any,
    progress: ProgressHook | None,
    handles: list[Any],
    cpu_before: float,
    in_process: bool,
) -> RunResult:
    ready = 0
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ready < workers:
        try:
            kind, index, payload = out.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RunError("workers did not connect in time (is the server running?)") from None
        if kind == "error":
            start.set()
            raise RunError(f"worker {index}: {payload}")
        ready += kind == "ready"
    started = time.time()
    start_at.value = started
    start.set()
    light: dict[int, dict[str, Any]] = {}
    finals: dict[int, dict[str, Any]] = {}
    arrivals_end: float | None = None
    arrivals_done = 0
    last_shown = 0.0
    while len(finals) < workers:
        try:
            kind, index, payload = out.get(timeout=PROGRESS_INTERVAL_S)
        except queue.Empty:
            if not in_process and not any(h.is_alive() for h in handles) and len(finals) < workers:
                raise RunError("a worker process died without reporting") from None
            kind, index, payload = "tick", -1, None
        if kind == "error":
            raise RunError(f"worker {index}: {payload}")
        if kind == "progress":
            light[index] = payload
        elif kind == "arrivals_done":
            arrivals_done += 1
            if arrivals_done == workers:
                arrivals_end = time.time()
        elif kind == "final":
            finals[index] = payload
            light[index] = payload
        now = time.time()
        if progress is not None and now - last_shown >= PROGRESS_INTERVAL_S:
            last_shown = now
            progress(_merged_light(light, now - started, arrivals_end is not None))
    stats = RunStats()
    for wire in finals.values():
        stats.merge_wire(wire)
    ended = time.time()
    parent_cpu = (time.process_time() - cpu_before) if not in_process else 0.0
    return RunResult(
        run_id=run_id,
        scenario=scenario,
        stats=stats,
        started_at=started,
        arrivals_s=(arrivals_end or ended) - started,
        elapsed_s=ended - started,
        wall_cpu_s=parent_cpu,
        workers=workers,
    )


def _merged_light(
    light: dict[int, dict[str, Any]], elapsed_s: float, draining: bool
) -> dict[str, Any]:
    stats = RunStats()
    for wire in light.values():
        stats.sent.update(wire["sent"])
        stats.results.update(wire["results"])
        stats.errors.update(wire["errors"])
        stats.latency.merge(Histogram.from_wire(wire["latency"]))
    return {"stats": stats, "elapsed_s": elapsed_s, "draining": draining}


def new_run_id() -> str:
    return f"{time.strftime('%H%M%S')}{secrets.token_hex(3)}"


def load_run_population(scenario: Scenario) -> list[SimSubscriber]:
    return load_population(scenario.catalog, scenario.tenants, scenario.subscribers_per_tenant_max)


__all__ = [
    "SEED_MAX",
    "RunError",
    "RunResult",
    "load_run_population",
    "new_run_id",
    "run_traffic",
    "session_prefix",
    "with_seed",
]

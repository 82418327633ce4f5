"""The simulator's shared timers: sleeps that end together share one loop timer, and one
connection timer expires unanswered requests oldest first."""

from __future__ import annotations

import asyncio
import time

from sim import messages as m
from sim.diameter_client import SWEEP_SLACK_S, DiameterClient
from sim.fiber import Fiber, Wake, as_future
from sim.runner import load_run_population
from sim.scenario import load_scenario
from sim.timer_wheel import TimerWheel
from sim.traffic import Worker
from tests.sim.test_end_to_end import CATALOG


async def test_sleeps_ending_in_one_millisecond_share_a_timer() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop)
    started = loop.time()
    first = [wheel.sleep(0.02) for _ in range(5)]
    later = as_future(wheel.wake_after(0.3), loop)
    assert wheel.pending_slots == 2
    await asyncio.gather(*first)
    assert not later.done()  # its own slot, far enough for a loaded machine
    assert loop.time() - started >= 0.02 - 0.001
    await later
    assert loop.time() - started >= 0.3 - 0.001
    assert wheel.pending_slots == 0


async def test_a_cancelled_sleep_does_not_stop_the_others() -> None:
    wheel = TimerWheel(asyncio.get_running_loop())
    cancelled, kept = wheel.sleep(0.01), wheel.sleep(0.01)
    cancelled.cancel()
    await kept
    assert cancelled.cancelled()


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def close(self) -> None:
        pass


async def test_unanswered_requests_expire_oldest_first_answered_ones_do_not() -> None:
    client = DiameterClient(m.PeerIdentity("a.sim.local", "sim.local"), timeout_s=0.05,
                            watchdog_s=60.0)  # fmt: skip
    client.connection_made(_Transport())
    loop = asyncio.get_running_loop()
    old = as_future(client.send(b"first", 1), loop)
    await asyncio.sleep(0.02)
    answered = as_future(client.send(b"second", 2), loop)
    young = as_future(client.send(b"third", 3), loop)
    frame = b"\x01\x00\x00\x14\x00\x00\x01\x10\x00\x00\x00\x04\x00\x00\x00\x02\x00\x00\x00\x00"
    client.data_received(frame)
    assert answered.result() == frame
    started = loop.time()
    assert await old is None
    assert not young.done()  # sent 20 ms later: still in time
    assert await young is None
    assert loop.time() - started <= 0.02 + SWEEP_SLACK_S + 0.05
    assert client.in_flight == 0


async def test_a_fiber_resumes_when_its_wake_resolves_not_an_iteration_later() -> None:
    wake: Wake[int] = Wake()
    seen: list[int] = []
    ended: list[Fiber] = []

    async def session() -> None:
        seen.append(await wake)
        seen.append(await asyncio.sleep(0, result=2))  # an asyncio future works too

    fiber = Fiber(session(), ended.append)
    fiber.start()
    assert seen == [] and not fiber.ended
    wake.resolve(1)
    assert seen == [1]  # already, inside resolve()
    await asyncio.sleep(0.01)
    assert seen == [1, 2] and ended == [fiber]


async def test_a_cancelled_fiber_ignores_its_late_answer() -> None:
    wake: Wake[int] = Wake()
    reached: list[str] = []

    async def session() -> None:
        await wake
        reached.append("after")

    ended: list[Fiber] = []
    fiber = Fiber(session(), ended.append)
    fiber.start()
    fiber.cancel()
    wake.resolve(1)
    assert reached == [] and ended == [fiber]


async def test_a_coarser_slot_never_ends_a_sleep_early_nor_a_slot_late() -> None:
    loop = asyncio.get_running_loop()
    wheel = TimerWheel(loop, 5)
    for delay in (0.001, 0.0123, 0.02):
        started = loop.time()
        await wheel.sleep(delay)
        waited = loop.time() - started
        assert delay - 0.001 <= waited <= delay + 0.005 + 0.02  # scheduling slack


class _SilentClient:
    """A connection that never answers (requests wait until the drain gives up on them)."""

    def __init__(self) -> None:
        self.peer = m.PeerIdentity("sim-t-w0c0.sim.local", "sim.local")
        self.is_open = True
        self.server_requests: dict[str, int] = {}
        self.sent = 0
        self._ids = 0

    def next_hop_by_hop(self) -> int:
        self._ids += 1
        return self._ids

    next_end_to_end = next_hop_by_hop

    def send(self, encoded: bytes, hop_by_hop: int) -> Wake[bytes | None]:
        self.sent += 1
        return Wake()

    def hold_writes(self) -> None:
        pass

    def release_writes(self) -> None:
        pass


async def test_concurrency_keeps_sessions_in_flight_and_drain_cancels_the_stuck() -> None:
    scenario = load_scenario(
        None,
        {
            "load": {"concurrency": 7, "duration_s": 0.1, "drain_s": 0.05},
            "mix": {"data": 1, "voice": 0, "sms": 0, "sip": 0},
            "catalog": CATALOG,
        },
    )
    population = load_run_population(scenario)
    worker = Worker(0, scenario, population, "t", share=1.0, session_budget=0, seed=1)
    client = _SilentClient()
    worker.clients = [client]  # type: ignore[list-item]
    worker.destination_realm = "ocs.local"
    worker.start_clock(time.time())
    await worker.run_arrivals()
    assert client.sent == 7  # seven sessions, each waiting for its CCR-I answer
    await worker.drain()
    assert worker.stats.errors["sessions_cancelled_at_drain"] == 7

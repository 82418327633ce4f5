"""The simulator's shared timers: sleeps that end together share one loop timer, and one
connection timer expires unanswered requests oldest first."""

from __future__ import annotations

import asyncio
import time

from sim import messages as m
from sim.diameter_client import SWEEP_SLACK_S, DiameterClient
from sim.fiber import Fiber, Wake
from sim.runner import load_run_population
from sim.scenario import load_scenario
from sim.timer_wheel import TimerWheel
from sim.traffic import Worker
from tests.sim.test_end_to_end import CATALOG


class _FakeLoop:
    """The two loop methods a TimerWheel uses, on a clock the test moves: which sleeps share a
    timer then depends on the times asked for, never on how fast the machine runs the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, object, tuple[object, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: object, *args: object) -> None:
        self.timers.append((self.now + delay, callback, args))

    def advance_to(self, when: float) -> None:
        """Move the clock and fire every timer due by then, in order."""
        self.now = when
        due = sorted((t for t in self.timers if t[0] <= when + 1e-9), key=lambda t: t[0])
        self.timers = [t for t in self.timers if t[0] > when + 1e-9]
        for _, callback, args in due:
            callback(*args)  # type: ignore[operator]


def test_sleeps_ending_in_one_millisecond_share_a_timer() -> None:
    loop = _FakeLoop()
    wheel = TimerWheel(loop)  # type: ignore[arg-type]
    first = [wheel.wake_after(0.02) for _ in range(5)]
    loop.now += 0.0004  # later within the same millisecond: the same slot
    first.append(wheel.wake_after(0.02))
    later = wheel.wake_after(0.3)
    assert wheel.pending_slots == 2 and len(loop.timers) == 2  # one loop timer per slot
    loop.advance_to(100.0 + 0.019)
    assert not any(w.done for w in first)
    loop.advance_to(100.0 + 0.021)
    assert all(w.done for w in first) and not later.done
    loop.advance_to(100.0 + 0.3004)
    assert later.done and wheel.pending_slots == 0


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


class _Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _ClientLoop(_FakeLoop):
    """A fake clock for the client's timers; futures and call_soon stay the real loop's."""

    def __init__(self, real: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.real = real

    def call_later(self, delay: float, callback: object, *args: object) -> _Handle:  # type: ignore[override]
        handle = _Handle()

        def fire(*fired: object) -> None:
            if not handle.cancelled:
                callback(*fired)  # type: ignore[operator]

        super().call_later(delay, fire, *args)
        return handle

    def call_soon(self, callback: object, *args: object) -> object:
        return self.real.call_soon(callback, *args)  # type: ignore[arg-type]

    def create_future(self) -> asyncio.Future[object]:
        return self.real.create_future()


async def test_unanswered_requests_expire_oldest_first_answered_ones_do_not() -> None:
    client = DiameterClient(m.PeerIdentity("a.sim.local", "sim.local"), timeout_s=0.05,
                            watchdog_s=60.0)  # fmt: skip
    loop = _ClientLoop(asyncio.get_running_loop())
    client.loop = loop  # type: ignore[assignment]
    client._last_traffic = loop.now
    client.connection_made(_Transport())
    old = client.send(b"first", 1)  # due at 100.05
    loop.now += 0.02
    answered = client.send(b"second", 2)
    young = client.send(b"third", 3)  # due at 100.07
    frame = b"\x01\x00\x00\x14\x00\x00\x01\x10\x00\x00\x00\x04\x00\x00\x00\x02\x00\x00\x00\x00"
    client.data_received(frame)
    assert answered.done and answered.value == frame
    loop.advance_to(100.05)
    assert old.done and old.value is None
    assert not young.done  # sent 20 ms later: still in time
    loop.advance_to(100.07 + SWEEP_SLACK_S)  # noticed at most SWEEP_SLACK_S late
    assert young.done and young.value is None
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


def test_a_coarser_slot_never_ends_a_sleep_early_nor_a_slot_late() -> None:
    for delay in (0.001, 0.0123, 0.02):
        loop = _FakeLoop()
        wheel = TimerWheel(loop, 5)  # type: ignore[arg-type]
        loop.now += 0.0007  # asked between two slot boundaries
        started = loop.now
        wake = wheel.wake_after(delay)
        (due, _, _) = loop.timers[0]
        assert delay - 0.001 <= due - started <= delay + 0.005  # the slot ends after the delay
        loop.advance_to(due - 0.0001)
        assert not wake.done
        loop.advance_to(due)
        assert wake.done


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

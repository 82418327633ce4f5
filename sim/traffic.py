"""One worker's traffic: Diameter connections, session arrivals (open loop or fixed
concurrency), and the behaviour of each session kind (Gy data, Ro voice, SMS event, SIP call).

Accounting rule: a session adds the units a request reported to ``used`` only when the answer
shows the server committed them (see :data:`sim.messages.COMMITTING_CODES`); a request left
without an answer after one T-flagged retransmission adds them to ``uncertain`` instead, and the
verification reports those apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from diameter_apps.codes import CommandCode, ResultCode
from diameter_apps.credit_control.codes import CcRequestType
from diameter_apps.errors import DiameterError
from sim import messages as m
from sim.diameter_client import DiameterClient, connect
from sim.fiber import Fiber, Wake
from sim.population import SimSubscriber, called_number, visited_plmn
from sim.scenario import Scenario
from sim.stats import RunStats
from sim.timer_wheel import TimerWheel

ARRIVAL_TICK_S = 0.002
# The open-loop arrival clock sleeps until the next session is due, but never less than the
# event loop's 1 ms timer resolution: shorter sleeps came back at once and spun the loop
# thousands of times a second for nothing.
ARRIVAL_SLEEP_MIN_S = 0.001
TOO_BUSY_RETRY_S = 0.05
# A server restart closes every connection: requests wait this long for one to come back.
RECONNECT_WAIT_S = 30.0
RECONNECT_BACKOFF_S = 0.2
RAMP_FLOOR = 0.1  # a ramp starts at 10 % of the rate
SIP_CALL = Callable[["Worker", SimSubscriber], Coroutine[Any, Any, None]]
_EVENT_COMMITTING = frozenset({int(ResultCode.SUCCESS)})


def session_prefix(run_id: str) -> str:
    """Every Session-Id (and SIP Call-ID) of a run starts with this."""
    return f"sim-{run_id}-"


class Worker:
    """The traffic of one process: ``await run()`` then read ``stats``."""

    def __init__(
        self,
        index: int,
        scenario: Scenario,
        population: list[SimSubscriber],
        run_id: str,
        *,
        share: float,
        session_budget: int,
        seed: int,
        sip_call: SIP_CALL | None = None,
    ) -> None:
        self.index = index
        self.scenario = scenario
        self.population = population
        self.run_id = run_id
        self.share = share  # this worker's fraction of the rate / concurrency
        self.session_budget = session_budget  # 0: unlimited (time decides)
        self.rng = random.Random(seed)
        self.sip_call = sip_call
        self.stats = RunStats()
        self.clients: list[DiameterClient] = []
        self._reconnecting: asyncio.Future[None] | None = None
        self.destination_realm = scenario.target.destination_realm
        self._next_client = 0
        self._encoders: dict[str, m.CcrEncoder] = {}
        self._mscc_answers: dict[bytes, m.MsccAnswer] = {}
        self._session_numbers = 0
        self._aborted: set[str] = set()
        self._sessions: set[Fiber] = set()  # running
        self._all_ended: asyncio.Future[None] | None = None  # drain() waits on it
        self._t0 = 0.0
        self._second_offset = 0.0
        self._second_base = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wheel: TimerWheel | None = None
        self._arrival_wheel: TimerWheel | None = None
        kinds = scenario.mix
        self._kinds = ("data", "voice", "sms", "sip")
        self._weights = (kinds.data, kinds.voice, kinds.sms, kinds.sip if sip_call else 0.0)
        if sum(self._weights) <= 0:
            self._weights = (kinds.data, kinds.voice, kinds.sms, 0.0)

    # -- connections ---------------------------------------------------------------------------

    def origin_host(self, connection: int) -> str:
        realm = self.scenario.target.origin_realm
        return f"{session_prefix(self.run_id)}w{self.index}c{connection}.{realm}"

    async def connect(self) -> None:
        for number in range(self.scenario.connections_per_worker):
            self.clients.append(await self._open(number))

    async def _open(self, number: int) -> DiameterClient:
        """Connection ``number`` of this worker (the same Origin-Host every time, so a server
        recognises a retransmission sent on a new connection)."""
        target = self.scenario.target
        ports = (target.diameter_port, *target.extra_diameter_ports)
        per_worker = self.scenario.connections_per_worker
        peer = m.PeerIdentity(self.origin_host(number), target.origin_realm)
        client, realm = await connect(
            target.diameter_host,
            ports[(self.index * per_worker + number) % len(ports)],
            peer,
            timeout_s=target.request_timeout_s,
            watchdog_s=target.watchdog_s,
            on_server_request=self._server_request,
        )
        if not self.destination_realm:
            self.destination_realm = realm
        return client

    async def _reconnected(self) -> DiameterClient | None:
        """Every connection closed (the server restarted): open them again, waiting up to
        ``RECONNECT_WAIT_S``; one reconnection at a time, every caller waits for it."""
        if self._reconnecting is None:
            self._reconnecting = asyncio.ensure_future(self._reconnect())
        try:
            await asyncio.shield(self._reconnecting)
        finally:
            if self._reconnecting is not None and self._reconnecting.done():
                self._reconnecting = None
        return self._client()

    async def _reconnect(self) -> None:
        deadline = self.loop.time() + RECONNECT_WAIT_S
        while self.loop.time() < deadline:
            for number, client in enumerate(self.clients):
                if client.is_open:
                    continue
                with contextlib.suppress(OSError, TimeoutError):
                    self.clients[number] = await self._open(number)
                    self.stats.sent["reconnect"] += 1
            if any(client.is_open for client in self.clients):
                return
            await asyncio.sleep(RECONNECT_BACKOFF_S)

    def _server_request(self, command: int, session_id: str | None) -> None:
        if command == CommandCode.ABORT_SESSION and session_id:
            self._aborted.add(session_id)

    def hold_writes(self) -> None:
        for client in self.clients:
            client.hold_writes()

    def release_writes(self) -> None:
        for client in self.clients:
            client.release_writes()

    def _client(self) -> DiameterClient | None:
        for _ in range(len(self.clients)):
            client = self.clients[self._next_client % len(self.clients)]
            self._next_client += 1
            if client.is_open:
                return client
        return None

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self.clients))
        for client in self.clients:
            self.stats.server_requests.update(client.server_requests)

    # -- timing --------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The worker's event loop, looked up once: ``asyncio.get_running_loop`` costs a
        ``getpid`` system call on every call in Python 3.11, about 10 % of the simulator's CPU
        when every ``asyncio.sleep`` paid it."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    @property
    def timers(self) -> TimerWheel:
        """The sessions' timers (on ``load.session_timer_slot_ms``)."""
        wheel = self._wheel
        if wheel is None:
            wheel = self._wheel = TimerWheel(
                self.loop, self.scenario.load.session_timer_slot_ms, writes=self
            )
        return wheel

    @property
    def arrival_timers(self) -> TimerWheel:
        """The arrival clock's timers: always 1 ms, shared with the sessions' when theirs is."""
        wheel = self._arrival_wheel
        if wheel is None:
            sessions = self.timers
            wheel = self._arrival_wheel = (
                sessions if sessions.slot_ms == 1 else TimerWheel(self.loop, writes=self)
            )
        return wheel

    def sleep(self, delay_s: float) -> Wake[None]:
        """A session's ``asyncio.sleep``, on the worker's shared timers (see
        :mod:`sim.timer_wheel`); code running in a Task awaits :meth:`sleep_in_task`."""
        return self.timers.wake_after(delay_s)

    def sleep_in_task(self, delay_s: float) -> asyncio.Future[None]:
        return self.timers.sleep(delay_s)

    def start_clock(self, start_at_wall: float) -> None:
        loop = self.loop
        self._t0 = loop.time()
        self._second_offset = time.time() - start_at_wall
        self._second_base = self._second_offset - time.monotonic()

    def second(self) -> int:
        """The second of the run now (hot: once per answer, so no event-loop lookup)."""
        return int(time.monotonic() + self._second_base)

    # -- one request ---------------------------------------------------------------------------

    async def request(
        self, spec: m.CcrSpec, *, malformed: bool = False, kind: str = ""
    ) -> m.AnswerSummary | None:
        """Send one CCR (with the injected retransmit / duplicate), await and account its answer."""
        faults = self.scenario.faults
        client = self._client() or await self._reconnected()
        if client is None:
            self.stats.errors["no_connection"] += 1
            return None
        hop = client.next_hop_by_hop()
        encoder = self._encoders.get(client.peer.origin_host)
        if encoder is None:
            encoder = m.CcrEncoder(client.peer, self.destination_realm)
            self._encoders[client.peer.origin_host] = encoder
        encoded = encoder.encode(
            spec, hop_by_hop=hop, end_to_end=client.next_end_to_end(), omit_request_type=malformed
        )
        self.stats.sent["malformed" if malformed else kind] += 1
        started = time.perf_counter_ns()
        future = client.send(encoded, hop)
        twin: Wake[bytes | None] | None = None
        if faults.retransmit_share and self.rng.random() < faults.retransmit_share:
            twin_hop = client.next_hop_by_hop()
            twin = client.send(m.with_hop_by_hop(encoded, twin_hop, retransmit=True), twin_hop)
            self.stats.sent["retransmit"] += 1
        frame = await future
        if frame is None:
            self.stats.errors["timeout_or_lost"] += 1
            frame = await self._retry(encoded)
            if frame is None:
                return None
        latency_us = (time.perf_counter_ns() - started) // 1000
        summary = self._summarize(frame)
        if summary is None:
            return None
        if summary.result_code == ResultCode.TOO_BUSY:
            # The ledger may or may not have applied it: as a gateway would, ask again (same
            # request, T flag); the idempotent ledger answers what really happened.
            self.stats.answered(self.second(), latency_us, summary.result_code)
            self.stats.errors["too_busy_3004"] += 1
            await self.sleep(TOO_BUSY_RETRY_S)
            frame = await self._retry(encoded)
            if frame is None:
                return None
            latency_us = (time.perf_counter_ns() - started) // 1000
            summary = self._summarize(frame)
            if summary is None or summary.result_code == ResultCode.TOO_BUSY:
                return None
        self.stats.answered(self.second(), latency_us, summary.result_code)
        if twin is not None:
            await self._compare_twin(twin, summary, "retransmit_mismatch")
        if faults.duplicate_share and self.rng.random() < faults.duplicate_share:
            dup_client = self._client() or client
            dup_hop = dup_client.next_hop_by_hop()
            self.stats.sent["duplicate"] += 1
            dup = dup_client.send(m.with_hop_by_hop(encoded, dup_hop, retransmit=False), dup_hop)
            await self._compare_twin(dup, summary, "duplicate_mismatch")
        if not malformed and (summary.error_bit or summary.result_code is None):
            self.stats.errors[f"error_answer_{summary.result_code}"] += 1
        return summary

    async def _retry(self, encoded: bytes) -> bytes | None:
        """One T-flagged retransmission (RFC 6733 §5.5.4) on any open connection (opened
        again if the server restarted meanwhile)."""
        client = self._client() or await self._reconnected()
        if client is None:
            return None
        hop = client.next_hop_by_hop()
        self.stats.sent["timeout_retransmit"] += 1
        frame = await client.send(m.with_hop_by_hop(encoded, hop, retransmit=True), hop)
        if frame is None:
            self.stats.errors["unanswered"] += 1
        return frame

    def _summarize(self, frame: bytes) -> m.AnswerSummary | None:
        try:
            return m.summarize_answer(frame, self._mscc_answers)
        except DiameterError as exc:
            self.stats.errors[f"undecodable_answer_{type(exc).__name__}"] += 1
            return None

    async def _compare_twin(
        self, future: Wake[bytes | None], original: m.AnswerSummary, error: str
    ) -> None:
        frame = await future
        twin = self._summarize(frame) if frame is not None else None
        if twin is None:
            self.stats.errors[f"{error}_unanswered"] += 1
            return
        self.stats.results[str(twin.result_code)] += 1
        same = twin.result_code == original.result_code and [
            (a.result_code, a.granted) for a in twin.msccs
        ] == [(a.result_code, a.granted) for a in original.msccs]
        if not same:
            self.stats.errors[error] += 1

    # -- usage accounting ----------------------------------------------------------------------

    def account(
        self,
        tenant: str,
        service: str,
        sent: tuple[m.MsccRequest, ...],
        summary: m.AnswerSummary | None,
        *,
        event: bool = False,
    ) -> dict[int | None, m.MsccAnswer]:
        """Count the units ``sent`` reported as used (or uncertain); the answer's MSCCs by RG."""
        totals = self.stats.tenant(tenant)
        totals.ccrs += 1
        answers: dict[int | None, m.MsccAnswer] = {}
        if summary is not None:
            for position, answer in enumerate(summary.msccs):
                key = answer.rating_group
                if key is None and position < len(sent):
                    key = sent[position].rating_group
                answers[key] = answer
        committing = _EVENT_COMMITTING if event else m.COMMITTING_CODES
        for request in sent:
            amount = request.requested if event else request.used
            if not amount:
                continue
            if summary is None:
                totals.uncertain[service] = totals.uncertain.get(service, 0) + amount
                continue
            found = answers.get(request.rating_group)
            code = found.result_code if found and found.result_code else summary.result_code
            if code in committing:
                totals.used[service] = totals.used.get(service, 0) + amount
        return answers

    # -- sessions ------------------------------------------------------------------------------

    def _session_id(self) -> str:
        self._session_numbers += 1
        return f"{self.origin_host(0)};{self._session_numbers};{self.index}"

    def _pick(self) -> SimSubscriber:
        subscriber = self.rng.choice(self.population)
        self.stats.subscribers.add((subscriber.tenant, subscriber.msisdn))
        return subscriber

    async def one_session(self) -> None:
        kind = self.rng.choices(self._kinds, self._weights)[0]
        subscriber = self._pick()
        self.stats.tenant(subscriber.tenant).sessions += 1
        self.stats.sessions[f"{kind}_started"] += 1
        faults = self.scenario.faults
        if faults.malformed_share and self.rng.random() < faults.malformed_share:
            await self._malformed(subscriber)
        try:
            if kind == "data":
                await self._data(subscriber)
            elif kind == "voice":
                await self._voice(subscriber)
            elif kind == "sms":
                await self._sms(subscriber)
            elif self.sip_call is not None:
                # A Task of its own: the SIP and HTTP code uses asyncio timeouts, which need one.
                await self.loop.create_task(self.sip_call(self, subscriber))
        except Exception as exc:  # a simulator bug must show in the report, not kill the run
            self.stats.errors[f"sim_{type(exc).__name__}"] += 1

    async def _malformed(self, subscriber: SimSubscriber) -> None:
        spec = m.CcrSpec(
            self._session_id(), CcRequestType.INITIAL, 0, m.GY_CONTEXT,
            subscriber.msisdn, subscriber.imsi,
        )  # fmt: skip
        summary = await self.request(spec, malformed=True)
        if summary is not None:
            self.stats.sessions[
                "malformed_rejected"
                if summary.error_bit or (summary.result_code or 0) >= 5000
                else "malformed_accepted"
            ] += 1

    def _abandon(self) -> bool:
        share = self.scenario.faults.abandon_share
        return bool(share) and self.rng.random() < share

    async def _data(self, subscriber: SimSubscriber) -> None:
        config = self.scenario.data
        session_id = self._session_id()
        roaming = self.rng.random() < self.scenario.roaming_share
        plmn = visited_plmn(self.rng, roaming)
        unit = m.Unit.BYTES
        requested = config.request_bytes

        def spec(kind: int, number: int, msccs: tuple[m.MsccRequest, ...]) -> m.CcrSpec:
            return m.CcrSpec(
                session_id, kind, number, m.GY_CONTEXT, subscriber.msisdn, subscriber.imsi,
                msccs, visited_plmn=plmn,
            )  # fmt: skip

        sent = tuple(m.MsccRequest(rg, unit, requested=requested) for rg in config.rating_groups)
        summary = await self.request(spec(CcRequestType.INITIAL, 0, sent), kind="I")
        grants = self.account(subscriber.tenant, "data", sent, summary)
        if summary is None or summary.result_code != ResultCode.SUCCESS:
            self.stats.sessions["data_refused"] += 1
            return
        granted = {rg: (a.granted or 0) for rg, a in grants.items()}
        number = 0
        abandon = self._abandon()
        for _ in range(config.updates):
            await self.sleep(config.update_interval_s)
            if session_id in self._aborted or not any(granted.values()):
                break
            number += 1
            sent = tuple(
                m.MsccRequest(
                    rg, unit, requested=requested, used=min(config.usage_bytes, granted.get(rg, 0))
                )
                for rg in config.rating_groups
            )
            summary = await self.request(spec(CcRequestType.UPDATE, number, sent), kind="U")
            grants = self.account(subscriber.tenant, "data", sent, summary)
            if summary is None:
                return  # unanswered twice: as a gateway would, give up the session
            granted = {rg: (a.granted or 0) for rg, a in grants.items()}
        if abandon:
            self.stats.sessions["abandoned"] += 1
            return
        await self.sleep(config.update_interval_s)
        number += 1
        sent = tuple(
            m.MsccRequest(rg, unit, used=min(config.usage_bytes, granted.get(rg, 0)))
            for rg in config.rating_groups
        )
        summary = await self.request(spec(CcRequestType.TERMINATION, number, sent), kind="T")
        self.account(subscriber.tenant, "data", sent, summary)
        self.stats.sessions["data_completed"] += 1

    def call_seconds(self) -> int:
        voice = self.scenario.voice
        drawn = self.rng.expovariate(1.0 / voice.mean_duration_s)
        return max(1, min(voice.max_duration_s, math.ceil(drawn)))

    async def _voice(self, subscriber: SimSubscriber) -> None:
        voice = self.scenario.voice
        session_id = self._session_id()
        roaming = self.rng.random() < self.scenario.roaming_share
        plmn = visited_plmn(self.rng, True) if roaming else None
        called = "tel:+" + called_number(
            self.rng, self.rng.random() < self.scenario.international_share
        )
        unit = m.Unit.SECONDS

        def spec(kind: int, number: int, msccs: tuple[m.MsccRequest, ...]) -> m.CcrSpec:
            return m.CcrSpec(
                session_id, kind, number, m.MMTEL_CONTEXT, subscriber.msisdn, subscriber.imsi,
                msccs, visited_plmn=plmn, called=called,
            )  # fmt: skip

        remaining = self.call_seconds()
        sent: tuple[m.MsccRequest, ...] = (m.MsccRequest(None, unit, requested=0),)
        summary = await self.request(spec(CcRequestType.INITIAL, 0, sent), kind="I")
        grants = self.account(subscriber.tenant, "voice", sent, summary)
        if summary is None or summary.result_code != ResultCode.SUCCESS:
            self.stats.sessions["voice_refused"] += 1
            return
        grant = next(iter(grants.values())).granted if grants else None
        number = 0
        abandon = self._abandon()
        while grant and remaining > grant and session_id not in self._aborted:
            await self.sleep(grant / voice.time_scale)
            remaining -= grant
            number += 1
            sent = (m.MsccRequest(None, unit, requested=0, used=grant),)
            summary = await self.request(spec(CcRequestType.UPDATE, number, sent), kind="U")
            grants = self.account(subscriber.tenant, "voice", sent, summary)
            if summary is None:
                return
            grant = next(iter(grants.values())).granted if grants else None
        if abandon:
            self.stats.sessions["abandoned"] += 1
            return
        talked = min(remaining, grant or 0)
        await self.sleep(talked / voice.time_scale)
        number += 1
        sent = (m.MsccRequest(None, unit, used=talked),)
        summary = await self.request(spec(CcRequestType.TERMINATION, number, sent), kind="T")
        self.account(subscriber.tenant, "voice", sent, summary)
        self.stats.sessions["voice_completed"] += 1

    async def _sms(self, subscriber: SimSubscriber) -> None:
        roaming = self.rng.random() < self.scenario.roaming_share
        recipient = called_number(self.rng, self.rng.random() < self.scenario.international_share)
        sent = (m.MsccRequest(None, m.Unit.EVENTS, requested=1),)
        spec = m.CcrSpec(
            self._session_id(), CcRequestType.EVENT, 0, m.SMS_CONTEXT, subscriber.msisdn,
            subscriber.imsi, sent, visited_plmn=visited_plmn(self.rng, True) if roaming else None,
            sms_recipient=recipient,
        )  # fmt: skip
        summary = await self.request(spec, kind="E")
        self.account(subscriber.tenant, "sms", sent, summary, event=True)

    # -- arrivals ------------------------------------------------------------------------------

    def _spawn(self) -> None:
        """Start a session now (its first request goes out with this iteration's writes)."""
        session = Fiber(self.one_session(), self._session_ended)
        self._sessions.add(session)
        session.start()

    def _session_ended(self, session: Fiber) -> None:
        self._sessions.discard(session)
        if not self._sessions and self._all_ended is not None and not self._all_ended.done():
            self._all_ended.set_result(None)

    async def run_arrivals(self) -> None:
        """Start sessions until the run's time or count is over (open loop or concurrency).

        The arrival clock runs as a fiber on the worker's timer wheel (the sessions' own at the
        default 1 ms slot), so an arrival and the session timers due in the same millisecond are
        one wake-up and one write."""
        ended: asyncio.Future[None] = self.loop.create_future()

        def settle(clock: Fiber) -> None:
            if clock.error is not None:
                ended.set_exception(clock.error)
            else:
                ended.set_result(None)

        Fiber(self._arrivals(), settle).start()
        await ended

    async def _arrivals(self) -> None:
        load = self.scenario.load
        loop = self.loop
        started = 0
        budget = self.session_budget
        deadline = self._t0 + load.duration_s if load.duration_s > 0 else math.inf
        if load.concurrency > 0:
            target = max(1, round(load.concurrency * self.share))
            while loop.time() < deadline and (not budget or started < budget):
                while len(self._sessions) < target and (not budget or started < budget):
                    self._spawn()
                    started += 1
                await self.arrival_timers.wake_after(ARRIVAL_TICK_S)
            return
        rate = self.scenario.session_rate() * self.share
        if rate <= 0:
            return
        due = self._t0
        while not budget or started < budget:
            now = loop.time()
            if now >= deadline:
                break
            while due <= now and (not budget or started < budget):
                self._spawn()
                started += 1
                elapsed = due - self._t0
                ramp = 1.0
                if load.ramp_s > 0 and elapsed < load.ramp_s:
                    ramp = RAMP_FLOOR + (1 - RAMP_FLOOR) * elapsed / load.ramp_s
                due += 1.0 / (rate * ramp)
            # Until the next arrival or the run's end, whichever comes first: no idle wake-ups.
            wake = min(due, deadline) - loop.time()
            await self.arrival_timers.wake_after(max(wake, ARRIVAL_SLEEP_MIN_S))

    async def drain(self) -> None:
        """Let in-flight sessions finish (up to ``drain_s``); what is left is cancelled."""
        if not self._sessions:
            return
        self._all_ended = self.loop.create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.scenario.load.drain_s):
                await self._all_ended
        pending = list(self._sessions)
        for session in pending:
            session.cancel()
        if pending:
            # Their last request may be in flight with usage the ledger may have committed:
            # an error, so a verification that disagrees is explained, not silently passed.
            self.stats.errors["sessions_cancelled_at_drain"] += len(pending)

    def snapshot(self) -> dict[str, Any]:
        self.stats.cpu_s = time.thread_time()
        return self.stats.to_wire()

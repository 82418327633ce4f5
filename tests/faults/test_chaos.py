"""Chaos (issue #11), bounded to about a minute: gateways charge SMS events against two
``ocs serve`` processes sharing one Diameter port while one server is killed -9, Redis
(``appendfsync always``) is killed -9 and restarted from its AOF, and the other server gets
SIGTERM. Each gateway retransmits an unanswered or 3004-answered request (same End-to-End id,
T flag), reconnecting as needed, until it gets the ledger's outcome. Afterwards, from the record
streams and the balances: no acknowledged debit lost, none applied twice, every refusal
uncharged, and balances equal the records."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from balance.records import Account, LedgerRecord
from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from tests.interop.test_base_interop import _cer
from tests.support.gy import DIRECT_DEBITING, EVENT, SMS_CONTEXT, Mscc, ccr, result_code
from tests.support.pd_client import PdClient
from tests.support.server_process import ServerProcess

CATALOG = str(Path(__file__).resolve().parents[2] / "examples" / "catalog")
GATEWAYS = 4
SUBSCRIBERS_PER_GATEWAY = 5
PHASE_S = 4.0  # load between two faults
FINAL_ANSWER_WAIT_S = 120.0  # a request still unanswered this long after the faults: a failure
ANSWER_TIMEOUT_S = 3.0
DEFINITIVE = (2001, 4012, 4010)
EUR = 1_000_000
_ids = itertools.count(1)


@dataclass
class Gateway:
    """One gateway: sends SMS events one after another, each until it has a final answer."""

    port: int
    subscribers: list[str]
    name: str
    outcomes: dict[str, tuple[str, int]] = field(default_factory=dict)  # session → (sub, code)
    retransmissions: int = 0
    reconnects: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    _client: PdClient | None = None

    def _connect(self, deadline: float) -> PdClient:
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_TIMEOUT_S)
                client = PdClient(sock)
                if client.request(_cer()).result_code == 2001:
                    return client
                client.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no server to connect to")
            time.sleep(0.1)

    def _final_answer(self, request: object, deadline: float) -> int:
        first = True
        while True:
            if self._client is None:
                self._client = self._connect(deadline)
                self.reconnects += 1
            try:
                if not first:
                    request.header.is_retransmit = True  # type: ignore[attr-defined]
                    self.retransmissions += 1
                first = False
                self._client.send(request)  # type: ignore[arg-type]
                code = result_code(self._client.recv())
            except OSError:
                self._client.close()
                self._client = None
                code = None
            if code in DEFINITIVE:
                return code
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no final answer, last {code}")
            time.sleep(0.05)

    def run(self) -> None:
        try:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                subscriber = self.subscribers[n % len(self.subscribers)]
                sid = f"smsc.{self.name};chaos;{next(_ids)}"
                request = ccr(sid, EVENT, 0, msisdn=subscriber, context=SMS_CONTEXT,
                              requested_action=DIRECT_DEBITING,
                              msccs=[Mscc(None, {"cc_service_specific_units": 1})])  # fmt: skip
                deadline = time.monotonic() + FINAL_ANSWER_WAIT_S
                self.outcomes[sid] = (subscriber, self._final_answer(request, deadline))
        except BaseException as exc:
            self.error = exc
        finally:
            if self._client is not None:
                self._client.close()


@pytest.fixture
def servers(private_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    port = free_tcp_port()
    procs = [
        ServerProcess(
            tmp_path / name,
            redis_url=private_redis.url,
            catalog=CATALOG,
            extra_args=["--diameter-listen", f"127.0.0.1:{port}", "--log-level", "info"],
            env={"OCS_DIAMETER_REUSE_PORT": "true"},
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        proc.diameter_port = port
        proc.start()
    try:
        yield procs
    finally:
        for proc in procs:
            proc.stop()


async def _top_up(url: str, subscribers: list[str]) -> None:
    client = aioredis.Redis.from_url(url)
    ledger = Ledger(client, "acme")
    try:
        for subscriber in subscribers:
            await ledger.topup(subscriber, 1_000 * EUR, now_s=time.time())
    finally:
        await client.aclose()


def _records(admin: redis.Redis, subscriber: str) -> list[LedgerRecord]:
    stream = keys.stream_key(keys.subscriber_prefix("acme", subscriber))
    decoder = msgspec.msgpack.Decoder(LedgerRecord)
    records = [decoder.decode(fields[b"r"]) for _, fields in admin.xrange(stream)]
    return [r for r in records if r.subscriber == subscriber]


def _money(admin: redis.Redis, subscriber: str) -> int:
    raw = admin.get(keys.account_key(keys.subscriber_prefix("acme", subscriber), subscriber))
    account = msgspec.msgpack.decode(raw, type=Account)
    return account.balance + account.held_money


def test_no_debit_lost_or_doubled_through_kills_and_restarts(
    servers: list[ServerProcess], private_redis: EmbeddedRedis
) -> None:
    a, b = servers
    subscribers = [f"4917099000{80 + i:03d}" for i in range(GATEWAYS * SUBSCRIBERS_PER_GATEWAY)]
    asyncio.run(_top_up(private_redis.url, subscribers))  # charged all run long, not refused
    admin = redis.Redis.from_url(private_redis.url)
    before = {s: _money(admin, s) for s in subscribers}
    admin.close()
    gateways = [
        Gateway(a.diameter_port, subscribers[i::GATEWAYS], f"gw{i}") for i in range(GATEWAYS)
    ]
    threads = [threading.Thread(target=g.run, daemon=True) for g in gateways]
    for thread in threads:
        thread.start()
    recoveries: dict[str, float] = {}

    def settled_after(fault: str, action: object) -> None:
        """Load, the fault (which returns once the component is back), then the time until
        every gateway could have settled one more event (charging recovered)."""
        time.sleep(PHASE_S)
        action()  # type: ignore[operator]
        back = time.monotonic()
        done = sum(len(g.outcomes) for g in gateways)
        deadline = back + FINAL_ANSWER_WAIT_S
        while sum(len(g.outcomes) for g in gateways) <= done + GATEWAYS:
            assert time.monotonic() < deadline, f"no progress after {fault}"
            time.sleep(0.02)
        recoveries[fault] = time.monotonic() - back

    def kill_a() -> None:
        assert a.proc is not None
        a.proc.kill()
        a.proc.wait()
        a.proc = None
        a.start()

    def kill_redis() -> None:
        private_redis.kill()
        private_redis.start()

    def term_b() -> None:
        assert b.stop() == 0, b.log_text()
        b.start()

    settled_after("kill -9 ocs serve", kill_a)
    settled_after("kill -9 redis-server", kill_redis)
    settled_after("SIGTERM ocs serve", term_b)
    time.sleep(PHASE_S)
    for gateway in gateways:
        gateway.stop.set()
    for thread in threads:
        thread.join(FINAL_ANSWER_WAIT_S + 10)
    for gateway in gateways:
        assert gateway.error is None, repr(gateway.error)

    admin = redis.Redis.from_url(private_redis.url)
    try:
        outcomes = {sid: o for g in gateways for sid, o in g.outcomes.items()}
        charged = {sid for sid, (_, code) in outcomes.items() if code == 2001}
        lost = doubled = wrongly_charged = 0
        for subscriber in subscribers:
            debits = [r for r in _records(admin, subscriber) if r.kind == "debit"]
            ops = [r.op_id for r in debits]
            doubled += len(ops) - len(set(ops))
            sessions = {r.session_id for r in debits}
            mine = {sid for sid, (sub, _) in outcomes.items() if sub == subscriber}
            lost += len((charged & mine) - sessions)
            wrongly_charged += len((sessions & mine) - charged)
            assert _money(admin, subscriber) == before[subscriber] - sum(r.retail for r in debits)
        tried = len(outcomes)
        print(
            f"\nchaos: {tried} events, {len(charged)} charged, lost {lost}, doubled {doubled}, "
            f"charged though refused {wrongly_charged}, retransmissions "
            f"{sum(g.retransmissions for g in gateways)}, reconnects "
            f"{sum(g.reconnects for g in gateways)}, recovery "
            + ", ".join(f"{k}: {v:.2f} s" for k, v in recoveries.items())
        )
        assert (lost, doubled, wrongly_charged) == (0, 0, 0)
        assert tried > 0 and len(charged) == tried  # the top-up covers every event
    finally:
        admin.close()

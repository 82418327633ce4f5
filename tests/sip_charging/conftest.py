"""SIP charging harness: the demo catalog installed on a real redis-server, the ledger-backed
authorizer and call accounting on a clock the test moves, a real SipServer on loopback and the
HTTP routes on an HttpServer (requests are handed to its ``handle``: routing and error mapping
included, no socket needed for most tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from balance.ledger import Ledger
from balance.records import Account, LedgerRecord
from ocs.charging.directory import TenantDirectory
from ocs.config import SipConfig
from ocs.http_server import HttpRequest, HttpRouter, HttpServer
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics
from ocs.proxy_keys import ProxyKeyVerifier
from ocs.sip.authorizer import CallAuthDecision, CallAuthRequest, CallerSource
from ocs.sip.transport import SipServer
from ocs.sip_charging.accounting import CallAccounting
from ocs.sip_charging.authorizer import LedgerAuthorizer
from ocs.sip_charging.http_api import CallApi
from ocs.sip_charging.metrics import SipMetricsCollector
from ocs.sip_charging.policy import CallPolicy
from ocs.sip_charging.sweeper import AutoEndSweeper
from tests.support.charging import Clock, demo_directory, ledger_records
from tests.support.proxy_keys import make_proxy_key

ACME_CALLER = "4917099000001"  # acme range, opening balance 10.00 EUR
ACME_CALLER_2 = "4917099000002"
GLOBEX_CALLER = "4917199000001"
UNKNOWN_CALLER = "4930999999999"
DE_MOBILE_CALLEE = "4915112345678"  # acme: 0.09 EUR/min peak, 0.05 off-peak, 60/1 increments
GRACE_S = 180


@dataclass
class Harness:
    directory: TenantDirectory
    clock: Clock
    client: aioredis.Redis
    policy: CallPolicy
    authorizer: LedgerAuthorizer
    accounting: CallAccounting
    sweeper: AutoEndSweeper
    http: HttpServer
    metrics: Metrics
    proxy_key: str  # acme's proxy key, sent by ``post`` unless told otherwise

    async def ledger(self, tenant: str) -> Ledger:
        return await self.directory.ledger(tenant)

    async def account(self, subscriber: str, tenant: str = "acme") -> Account:
        return await (await self.ledger(tenant)).query(subscriber)

    async def records(
        self, subscriber: str, kind: str = "usage", tenant: str = "acme"
    ) -> list[LedgerRecord]:
        return await ledger_records(self.client, tenant, subscriber, kind)

    async def authorize(
        self,
        caller: str = ACME_CALLER,
        callee: str = DE_MOBILE_CALLEE,
        *,
        call_id: str = "call-1@proxy.test",
        from_tag: str = "tag-1",
        authorizer: LedgerAuthorizer | None = None,
    ) -> CallAuthDecision:
        request = CallAuthRequest(
            source_host="127.0.0.1",
            source_port=5070,
            transport="udp",
            caller=caller,
            caller_source=CallerSource.FROM,
            callee=callee,
            call_id=call_id,
            from_tag=from_tag,
            request_uri=f"sip:+{callee}@ocs.test",
        )
        return await (authorizer or self.authorizer).authorize(request)

    async def post(
        self, path: str, body: Any, *, key: str | None = "acme"
    ) -> tuple[int, dict[str, Any]]:
        """``key``: "acme" sends acme's proxy key, None no key, anything else as given."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = self.proxy_key if key == "acme" else key
        headers = {} if sent is None else {"authorization": f"Bearer {sent}"}
        response = await self.http.handle(HttpRequest("POST", path, "", headers, raw))
        return response.status, json.loads(response.body)

    async def end(self, reservation: str, duration_s: int, cause: str = "normal") -> Any:
        return await self.post(
            f"/v1/calls/{reservation}/end", {"duration_s": duration_s, "cause": cause}
        )

    async def reauth(self, reservation: str, used_s: int) -> Any:
        return await self.post(f"/v1/calls/{reservation}/reauth", {"used_s": used_s})


def new_authorizer(harness: Harness) -> LedgerAuthorizer:
    """Another authorizer on the same Redis: a restarted or second server process."""
    return LedgerAuthorizer(
        harness.directory,
        harness.policy,
        clock=harness.clock,
        ping=harness.client.ping,
        log=make_logger("warning"),
    )


@pytest.fixture
async def harness(redis_url: str) -> AsyncIterator[Harness]:
    client = aioredis.Redis.from_url(redis_url)
    clock = Clock()
    directory = await demo_directory(client, clock.now)
    log = make_logger("warning")
    policy = CallPolicy(grace_s=GRACE_S, route_uri="sip:+{callee}@gw.test")
    authorizer = LedgerAuthorizer(directory, policy, clock=clock, ping=client.ping, log=log)
    accounting = CallAccounting(directory, policy, clock=clock, log=log)
    sweeper = AutoEndSweeper(directory, accounting, interval_s=1.0, clock=clock, log=log)
    metrics = Metrics()
    router = HttpRouter()
    http = HttpServer(router, metrics)
    CallApi(accounting, ProxyKeyVerifier(client, cache_s=10, clock=clock)).register(router)
    key = await make_proxy_key(client, "acme", now=clock.now)
    yield Harness(
        directory, clock, client, policy, authorizer, accounting, sweeper, http, metrics, key
    )
    await client.aclose()
    await asyncio.sleep(0)


@pytest.fixture
async def sip_server(harness: Harness) -> AsyncIterator[SipServer]:
    server = SipServer(harness.authorizer, SipConfig())
    harness.metrics.registry.register(SipMetricsCollector(server.metrics))
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()

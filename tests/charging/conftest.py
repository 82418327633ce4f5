"""In-process charging harness: the real handler, real ledger scripts on a real redis-server,
the demo catalog, and a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from diameter.message import Message as PdMessage

from balance.ledger import Ledger
from balance.records import Account, LedgerRecord
from diameter_apps.codec import Message, decode_message
from diameter_apps.events import RequestReceived
from ocs.charging.credit_control import CreditControlHandler
from ocs.charging.directory import TenantDirectory
from ocs.charging.sessions import SessionRegistry
from ocs.config import ChargingConfig
from ocs.logging_setup import make_logger
from tests.support.charging import Clock, demo_directory, ledger_records


@dataclass
class Charging:
    handler: CreditControlHandler
    directory: TenantDirectory
    clock: Clock
    client: aioredis.Redis
    sessions: SessionRegistry

    async def send(self, request: PdMessage) -> PdMessage:
        """Encode with python-diameter, decode with ours, answer, decode with python-diameter."""
        return PdMessage.from_bytes(await self.send_raw(request))

    async def send_raw(self, request: PdMessage) -> bytes:
        """The answer's bytes as sent (python-diameter drops AVPs it has no attribute for,
        e.g. Tariff-Time-Change, when it encodes a decoded answer again)."""
        message = decode_message(request.as_bytes())
        event = RequestReceived(
            message=message,
            application_id=message.application_id,
            command_code=message.command_code,
            hop_by_hop=message.hop_by_hop,
            end_to_end=message.end_to_end,
            peer_origin_host="pgw.test.local",
            received_at=0.0,
        )
        answer: Message = await self.handler(event)
        return answer.encode()

    async def ledger(self, tenant: str) -> Ledger:
        return await self.directory.ledger(tenant)

    async def account(self, tenant: str, subscriber: str) -> Account:
        return await (await self.ledger(tenant)).query(subscriber)

    async def records(
        self, tenant: str, subscriber: str, kind: str = "usage"
    ) -> list[LedgerRecord]:
        return await ledger_records(self.client, tenant, subscriber, kind)


@pytest.fixture
async def charging(redis_url: str) -> AsyncIterator[Charging]:
    client = aioredis.Redis.from_url(redis_url)
    clock = Clock()
    directory = await demo_directory(client, clock.now)
    sessions = SessionRegistry()
    handler = CreditControlHandler(
        directory,
        ChargingConfig(),
        origin_host="ocs.test.local",
        origin_realm="test.local",
        sessions=sessions,
        log=make_logger("warning"),
        clock=clock,
    )
    yield Charging(handler, directory, clock, client, sessions)
    await client.aclose()
    await asyncio.sleep(0)

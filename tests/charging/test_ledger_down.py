"""Redis unreachable: every CCR is answered 3004 TOO_BUSY (the client fails over), none dropped."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from diameter.message import Message as PdMessage

from balance.ledger import Ledger
from diameter_apps.codec import decode_message
from diameter_apps.errors import DiameterError
from diameter_apps.events import RequestReceived
from ocs.charging.credit_control import CreditControlHandler
from ocs.charging.directory import TenantDirectory
from ocs.charging.sessions import SessionRegistry
from ocs.config import ChargingConfig
from ocs.embedded_redis import free_tcp_port
from ocs.logging_setup import make_logger
from tariffs.loader import load_catalog
from tests.support.charging import DEMO_CATALOG, TUESDAY_10_BERLIN
from tests.support.gy import EVENT, INITIAL, SMS_CONTEXT, Mscc, ccr


def _event(request: PdMessage) -> RequestReceived:
    message = decode_message(request.as_bytes())
    return RequestReceived(
        message, 4, 272, message.hop_by_hop, message.end_to_end, "pgw.test.local", 0.0
    )


async def test_unreachable_ledger_answers_3004() -> None:
    dead = aioredis.Redis(port=free_tcp_port(), socket_connect_timeout=0.2, socket_timeout=0.2)

    async def ledger_for(tenant: str) -> Ledger:
        return Ledger(dead, tenant)

    handler = CreditControlHandler(
        TenantDirectory(load_catalog(DEMO_CATALOG), ledger_for),
        ChargingConfig(),
        origin_host="ocs.test.local",
        origin_realm="test.local",
        sessions=SessionRegistry(),
        log=make_logger("error"),
        clock=lambda: TUESDAY_10_BERLIN,
    )
    for request in (
        ccr("s;down", INITIAL, 0, msisdn="4917099000001", msccs=[Mscc(10)]),
        ccr("s;down-sms", EVENT, 0, msisdn="4917099000001", context=SMS_CONTEXT,
            requested_action=0, msccs=[Mscc(None, {"cc_service_specific_units": 1})]),
    ):  # fmt: skip
        with pytest.raises(DiameterError) as refused:
            await handler(_event(request))
        assert refused.value.result_code == 3004
        assert refused.value.e_bit
    await dead.aclose()

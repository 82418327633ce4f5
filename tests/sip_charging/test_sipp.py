"""SIPp against a real SipServer whose authorizer is the ledger: the answers match the catalog
price and the caller's balance, and the ledger holds exactly one reservation per call."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from ocs.config import SipConfig
from ocs.sip.authorizer import CallAuthDecision, CallAuthRequest
from ocs.sip.transport import SipServer
from ocs.sip_charging.authorizer import LedgerAuthorizer
from ocs.sip_charging.reservation import parse_reservation
from tests.sip_charging.conftest import (
    ACME_CALLER,
    ACME_CALLER_2,
    DE_MOBILE_CALLEE,
    UNKNOWN_CALLER,
    Harness,
)
from tests.sip_charging.sipp import run_sipp

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed"),
]

EUR = 1_000_000


@pytest.mark.parametrize(("transport", "caller"), [("u1", ACME_CALLER), ("t1", ACME_CALLER_2)])
async def test_authorized_call_gets_302_with_the_affordable_duration(
    harness: Harness, sip_server: SipServer, tmp_path: Path, transport: str, caller: str
) -> None:
    ledger = await harness.ledger("acme")
    await ledger.adjust(caller, -9 * EUR, reason="test", now_s=harness.clock.now)
    [found] = await run_sipp(
        sip_server.port,
        "invite_302.xml",
        tmp_path,
        caller=caller,
        callee=DE_MOBILE_CALLEE,
        transport=transport,
    )
    # 1.00 EUR at 0.09 EUR/min with 60/1 increments: 60 + 0.91 / 0.0015 = 666 s.
    assert (found["max_duration"], found["maxdur"]) == ("666", "666")
    assert found["route"] == f"sip:+{DE_MOBILE_CALLEE}@gw.test"
    ref = parse_reservation(found["reservation"])
    assert (ref.tenant, ref.subscriber) == ("acme", caller)
    account = await harness.account(caller)
    assert [s.session_id for s in account.sessions] == [ref.session_id]
    assert account.held_money == 90_000 + 606 * 1500  # 60 s for 0.09 EUR, 606 s at 0.0015
    assert sip_server.metrics.invites[("acme", 302)] == 1


@pytest.mark.parametrize(
    ("scenario", "prepare"),
    [("invite_402.xml", "empty"), ("invite_403.xml", "blocked"), ("invite_404.xml", "unknown")],
)
async def test_refused_calls(
    harness: Harness, sip_server: SipServer, tmp_path: Path, scenario: str, prepare: str
) -> None:
    ledger = await harness.ledger("acme")
    caller = ACME_CALLER
    if prepare == "empty":
        await ledger.adjust(caller, -10 * EUR, reason="test", now_s=harness.clock.now)
    elif prepare == "blocked":
        await ledger.block(caller, now_s=harness.clock.now)
    else:
        caller = UNKNOWN_CALLER
    found = await run_sipp(
        sip_server.port, scenario, tmp_path, caller=caller, callee=DE_MOBILE_CALLEE, calls=2
    )
    assert len(found) == 2
    status = int(scenario[7:10])
    assert sum(n for (_, code), n in sip_server.metrics.invites.items() if code == status) == 2
    account = await harness.account(ACME_CALLER)
    assert account.sessions == () and account.held_money == 0


class SlowAuthorizer:
    """The real authorizer, answering after SIPp's first retransmissions (Timer A, 200 ms)."""

    def __init__(self, inner: LedgerAuthorizer) -> None:
        self.inner = inner

    async def authorize(self, request: CallAuthRequest) -> CallAuthDecision:
        await asyncio.sleep(0.5)
        return await self.inner.authorize(request)

    async def healthy(self) -> bool:
        return await self.inner.healthy()


async def test_forced_retransmissions_reserve_once_per_call(
    harness: Harness, tmp_path: Path
) -> None:
    ledger = await harness.ledger("acme")
    await ledger.topup(ACME_CALLER, 90 * EUR, now_s=harness.clock.now)
    server = SipServer(SlowAuthorizer(harness.authorizer), SipConfig())
    await server.start("127.0.0.1", 0)
    try:
        found = await run_sipp(
            server.port,
            "invite_slow.xml",
            tmp_path,
            caller=ACME_CALLER,
            callee=DE_MOBILE_CALLEE,
            calls=4,
        )
    finally:
        await server.close()
    assert len({f["call"] for f in found}) == 4
    assert server.metrics.retransmissions_absorbed >= 4
    assert {f["max_duration"] for f in found} == {"3600"}
    sessions = {parse_reservation(f["reservation"]).session_id for f in found}
    account = await harness.account(ACME_CALLER)
    assert {s.session_id for s in account.sessions} == sessions
    assert all(len(s.rating_groups) == 1 for s in account.sessions)
    assert account.held_money == 4 * 3600 * 1500
    assert account.balance == 100 * EUR - 4 * 3600 * 1500

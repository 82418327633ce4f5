"""SIP calls of a suspended tenant: a new INVITE is 403 / X-OCS-Result 4010 before any
reservation; calls authorized before the suspension still settle their end."""

from __future__ import annotations

import asyncio
from typing import Any

from ocs.sip.authorizer import AuthOutcome
from ocs.sip.message import ParseLimits, SipResponse, parse_message
from ocs.sip.transport import SipServer
from tariffs.loader import load_texts, read_sources
from tests.sip.helpers import request_bytes
from tests.sip_charging.conftest import (
    ACME_CALLER,
    ACME_CALLER_2,
    DE_MOBILE_CALLEE,
    GLOBEX_CALLER,
    Harness,
)
from tests.support.charging import DEMO_CATALOG

EUR = 1_000_000  # acme calls to German mobiles: 0.09 EUR/min at peak, 60 s first increment


def suspend(harness: Harness, tenant: str = "acme") -> None:
    sources, problems = read_sources(DEMO_CATALOG)
    assert not problems
    changed = [
        (name, text.replace(f"\ntenant: {tenant}\n", f"\ntenant: {tenant}\nstatus: suspended\n"))
        for name, text in sources
    ]
    harness.directory.replace_catalog(load_texts(changed))


async def test_new_call_is_refused_without_a_reservation(harness: Harness) -> None:
    suspend(harness)
    decision = await harness.authorize(ACME_CALLER_2, call_id="suspended-1@proxy.test")
    assert decision.outcome is AuthOutcome.BLOCKED and decision.tenant == "acme"
    account = await harness.account(ACME_CALLER_2)
    assert account.balance == 10 * EUR and account.held_money == 0 and account.sessions == ()


async def test_other_tenant_still_authorized(harness: Harness) -> None:
    suspend(harness)
    decision = await harness.authorize(GLOBEX_CALLER, call_id="globex-1@proxy.test")
    assert decision.outcome is AuthOutcome.AUTHORIZED


async def test_invite_over_udp_is_403_with_4010(harness: Harness, sip_server: SipServer) -> None:
    suspend(harness)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received.put_nowait(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        invite = request_bytes(
            uri=f"sip:+{DE_MOBILE_CALLEE}@ocs.test",
            from_uri=f"sip:+{ACME_CALLER}@proxy.test",
            call_id="suspended-udp@proxy.test",
            via_port=port,
        )
        transport.sendto(invite, ("127.0.0.1", sip_server.port))
        answer = parse_message(
            await asyncio.wait_for(received.get(), 2.0),
            ParseLimits(message_bytes_max=65536, headers_max=256),
        )
    finally:
        transport.close()
    assert isinstance(answer, SipResponse)
    assert (answer.status, answer.header("X-OCS-Result")) == (403, "4010")
    assert sip_server.metrics.invites[("acme", 403)] == 1


async def test_call_authorized_before_suspension_settles_its_end(harness: Harness) -> None:
    decision = await harness.authorize(call_id="before@proxy.test")
    assert decision.outcome is AuthOutcome.AUTHORIZED and decision.reservation_id
    suspend(harness)
    # The proxy's retransmission of that INVITE still gets its 302: the call may be up.
    again = await harness.authorize(call_id="before@proxy.test")
    assert again.outcome is AuthOutcome.AUTHORIZED
    harness.clock.now += 40
    status, body = await harness.reauth(decision.reservation_id, 30)
    assert status == 200, body
    # Used seconds committed, nothing new granted: the proxy ends the call.
    assert (body["result"], body["max_duration_s"], body["charged_s"]) == (4010, 0, 30)
    assert body["retail"] == 90_000  # the 60 s first increment, as for any call
    harness.clock.now += 5
    status, body = await harness.end(decision.reservation_id, 35)
    assert status == 200, body
    assert (body["charged_s"], body["retail"]) == (35, 90_000)  # still inside the first 60 s
    account = await harness.account(ACME_CALLER)
    assert account.balance == 10 * EUR - 90_000
    assert account.held_money == 0 and account.sessions == ()

"""A SipServer on a free loopback port with the in-memory test authorizer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ocs.config import SipConfig
from ocs.sip.authorizer import AuthOutcome, CallAuthDecision
from ocs.sip.transport import SipServer
from tests.sip.helpers import TableAuthorizer, authorized

# Caller numbers of the test subscribers (E.164 digits) and what the table answers for them.
RICH = "491710000001"
BROKE = "491710000002"
BLOCKED = "491710000003"
SLOW = "491710000004"
UNRATED = "491710000005"


def test_authorizer() -> TableAuthorizer:
    return TableAuthorizer(
        decisions={
            RICH: authorized(120, "res-rich", "sip:+4930123456@gw.test"),
            BROKE: CallAuthDecision(AuthOutcome.INSUFFICIENT_CREDIT, tenant="t1"),
            BLOCKED: CallAuthDecision(AuthOutcome.BLOCKED, tenant="t1"),
            SLOW: authorized(60, "res-slow"),
            UNRATED: CallAuthDecision(AuthOutcome.NOT_RATED, tenant="t1"),
        }
    )


test_authorizer.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def authorizer() -> TableAuthorizer:
    return test_authorizer()


@pytest.fixture
async def sip_server(authorizer: TableAuthorizer) -> AsyncIterator[SipServer]:
    server = SipServer(authorizer, SipConfig(message_bytes_max=8192, headers_max=64))
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    async def recv(self, timeout_s: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.received.get(), timeout_s)

    async def nothing_within(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self.received.get(), timeout_s)
        except TimeoutError:
            return True
        return False


@pytest.fixture
async def udp_client() -> AsyncIterator[UdpClient]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
    yield client
    transport.close()

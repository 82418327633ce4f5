"""The asyncio SipServer on real loopback sockets: answers, malformed datagrams, TCP."""

from __future__ import annotations

import asyncio

import pytest

from ocs.sip.message import ParseLimits, SipResponse, parse_message
from ocs.sip.transport import SipServer
from tests.sip.conftest import BROKE, RICH, SLOW, UdpClient
from tests.sip.helpers import TableAuthorizer, request_bytes

LIMITS = ParseLimits(message_bytes_max=65536, headers_max=256)


def parse(data: bytes) -> SipResponse:
    message = parse_message(data, LIMITS)
    assert isinstance(message, SipResponse)
    return message


def invite(client: UdpClient, caller: str, call_id: str, **kwargs: object) -> bytes:
    return request_bytes(
        from_uri=f"sip:+{caller}@proxy.test",
        call_id=call_id,
        via_port=client.port,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_udp_authorized_invite_gets_302(sip_server: SipServer, udp_client: UdpClient) -> None:
    udp_client.send(invite(udp_client, RICH, "c-rich"), sip_server.port)
    answer = parse(await udp_client.recv())
    assert answer.status == 302
    assert answer.header("Contact") == "<sip:+4930123456@gw.test>;maxdur=120"
    assert answer.header("X-Max-Duration") == "120"
    assert answer.header("X-OCS-Reservation") == "res-rich"
    assert answer.header("X-OCS-Result") == "2001"
    assert sip_server.metrics.invites[("t1", 302)] == 1
    assert sip_server.metrics.active_reservations == 1


async def test_udp_response_retransmitted_until_ack(
    authorizer: TableAuthorizer, udp_client: UdpClient
) -> None:
    from ocs.config import SipConfig
    from ocs.sip.transaction import TimerConfig

    server = SipServer(authorizer, SipConfig(), timers=TimerConfig(t1_s=0.05, t2_s=0.2))
    await server.start("127.0.0.1", 0)
    try:
        data = invite(udp_client, BROKE, "c-broke")
        udp_client.send(data, server.port)
        first = await udp_client.recv()
        assert parse(first).status == 402
        assert await udp_client.recv() == first  # Timer G
        assert await udp_client.recv() == first
        to_tag = (parse(first).header("To") or "").split("tag=")[1]
        ack = (
            data.replace(b"INVITE sip", b"ACK sip", 1)
            .replace(b"1 INVITE", b"1 ACK")
            .replace(b"ocs.test>\r\nCall", f"ocs.test>;tag={to_tag}\r\nCall".encode())
        )
        udp_client.send(ack, server.port)
        await asyncio.sleep(0.05)
        while not udp_client.received.empty():  # a retransmission may have crossed the ACK
            udp_client.received.get_nowait()
        assert await udp_client.nothing_within(0.5)
        assert authorizer.calls_for("c-broke") == 1
    finally:
        await server.close()


async def test_udp_retransmissions_during_slow_authorization(
    sip_server: SipServer, authorizer: TableAuthorizer, udp_client: UdpClient
) -> None:
    authorizer.delay_s = 0.3
    data = invite(udp_client, SLOW, "c-slow")
    udp_client.send(data, sip_server.port)
    await asyncio.sleep(0.05)
    udp_client.send(data, sip_server.port)
    assert parse(await udp_client.recv()).status == 100
    assert parse(await udp_client.recv()).status == 302
    udp_client.send(data, sip_server.port)
    assert parse(await udp_client.recv()).status == 302
    assert authorizer.calls_for("c-slow") == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff" * 700,
        b"INVITE sip:+49",
        request_bytes().replace(b"Via: ", b"X-Via: "),
        b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"\r\n\r\n",
    ],
)
async def test_unanswerable_datagrams_are_dropped_and_server_keeps_serving(
    sip_server: SipServer, udp_client: UdpClient, data: bytes
) -> None:
    udp_client.send(data, sip_server.port)
    assert await udp_client.nothing_within(0.2)
    udp_client.send(invite(udp_client, RICH, "after-garbage"), sip_server.port)
    assert parse(await udp_client.recv()).status == 302


async def test_answerable_malformed_datagrams(sip_server: SipServer, udp_client: UdpClient) -> None:
    bad_cseq = invite(udp_client, RICH, "c1").replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE")
    udp_client.send(bad_cseq, sip_server.port)
    answer = parse(await udp_client.recv())
    assert (answer.status, answer.reason) == (400, "Malformed CSeq Header")
    assert answer.header("X-OCS-Result") == "5004"
    huge = invite(udp_client, RICH, "c2", body=b"x" * 65000)
    udp_client.send(huge, sip_server.port)
    answer = parse(await udp_client.recv())
    assert answer.status == 513
    assert sip_server.metrics.dropped == {}


async def test_methods_and_options(
    sip_server: SipServer, authorizer: TableAuthorizer, udp_client: UdpClient
) -> None:
    register = request_bytes("REGISTER", via_port=udp_client.port)
    udp_client.send(register, sip_server.port)
    answer = parse(await udp_client.recv())
    assert (answer.status, answer.header("Allow")) == (405, "INVITE, ACK, CANCEL, OPTIONS")
    options = request_bytes("OPTIONS", via_port=udp_client.port, branch="z9hG4bK-o1")
    udp_client.send(options, sip_server.port)
    assert parse(await udp_client.recv()).status == 200
    authorizer.is_healthy = False
    udp_client.send(options.replace(b"z9hG4bK-o1", b"z9hG4bK-o2"), sip_server.port)
    down = parse(await udp_client.recv())
    assert (down.status, down.header("Retry-After")) == (503, "5")


async def test_tcp_framing_keepalive_and_oversize(sip_server: SipServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sip_server.port)
    try:
        first = request_bytes(
            from_uri=f"sip:+{RICH}@p", call_id="t1", transport="TCP", via_port=5999
        )
        second = request_bytes(
            from_uri=f"sip:+{BROKE}@p", call_id="t2", transport="TCP", branch="z9hG4bK-t2"
        )
        writer.write(b"\r\n\r\n" + first[:50])
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"  # pong
        writer.write(first[50:] + second)
        answers = [await read_tcp_response(reader), await read_tcp_response(reader)]
        assert [a.status for a in answers] == [302, 402]
        writer.write(request_bytes().replace(b"Content-Length: 0", b"Content-Length: 99999"))
        answer = await read_tcp_response(reader)
        assert answer.status == 513
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed after the refusal
    finally:
        writer.close()


async def read_tcp_response(reader: asyncio.StreamReader) -> SipResponse:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    return parse(head)


class _BrokenAuthorizer:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def authorize(self, request: object) -> object:
        if self.mode == "raise":
            raise ConnectionError("ledger down")
        if self.mode == "hang":
            await asyncio.sleep(10)
        return "not a decision"

    async def healthy(self) -> bool:
        raise ConnectionError("ledger down")


@pytest.mark.parametrize("mode", ["raise", "hang", "garbage"])
async def test_failing_authorizer_gives_503_never_silence(udp_client: UdpClient, mode: str) -> None:
    from ocs.config import SipConfig

    server = SipServer(_BrokenAuthorizer(mode), SipConfig(), authorize_timeout_s=0.2)  # type: ignore[arg-type]
    await server.start("127.0.0.1", 0)
    try:
        udp_client.send(invite(udp_client, RICH, f"c-{mode}"), server.port)
        answer = parse(await udp_client.recv())
        assert (answer.status, answer.header("Retry-After")) == (503, "5")
        assert answer.header("X-OCS-Result") == "5012"
        udp_client.send(request_bytes("OPTIONS", via_port=udp_client.port), server.port)
        assert parse(await udp_client.recv()).status == 503
        assert server.metrics.authorizer_failures == 1
    finally:
        await server.close()


async def test_tcp_connections_beyond_the_limit_are_closed(
    authorizer: TableAuthorizer,
) -> None:
    from ocs.config import SipConfig

    server = SipServer(authorizer, SipConfig(), connections_max=1)
    await server.start("127.0.0.1", 0)
    try:
        _, first = await asyncio.open_connection("127.0.0.1", server.port)
        second_reader, second = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(second_reader.read(), 2) == b""
        assert server.metrics.dropped["connections_max"] == 1
        first.close()
        second.close()
    finally:
        await server.close()


def test_server_runs_on_uvloop(authorizer: TableAuthorizer) -> None:
    """``ocs serve`` may run on uvloop, whose transports differ from the selector loop's."""
    uvloop = pytest.importorskip("uvloop")
    from ocs.config import SipConfig
    from ocs.sip.transaction import TimerConfig

    errors: list[dict[str, object]] = []

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        # Microsecond timers: deadlines are already past when armed (uvloop then returns a
        # plain Handle without when(); the driver must not depend on it).
        timers = TimerConfig(t1_s=1e-6, t2_s=4e-6)
        server = SipServer(authorizer, SipConfig(), timers=timers)
        await server.start("127.0.0.1", 0)
        transport, client = await loop.create_datagram_endpoint(
            UdpClient, local_addr=("127.0.0.1", 0)
        )
        try:
            for n in range(5):  # a burst, so datagrams arrive while a timer is pending
                client.send(
                    invite(client, RICH, f"uv-udp-{n}", branch=f"z9hG4bK-u{n}"), server.port
                )
            statuses = [parse(await client.recv()).status]
            async with asyncio.timeout(60):  # Timers G and H run their course (microseconds)
                while server.metrics.ack_timeouts < 5:
                    await asyncio.sleep(0.01)
            assert server.metrics.ack_timeouts == 5
            assert server.metrics.invites[("t1", 302)] == 5
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                request_bytes(from_uri=f"sip:+{BROKE}@p", call_id="uv-tcp", transport="TCP")
            )
            statuses.append((await read_tcp_response(reader)).status)
            writer.close()
            return statuses
        finally:
            transport.close()
            await server.close()

    assert uvloop.run(scenario()) == [302, 402]
    assert errors == []


async def test_receive_queue_limit_sheds_with_503(udp_client: UdpClient) -> None:
    from ocs.config import SipConfig

    slow = TableAuthorizer(delay_s=0.5)
    server = SipServer(slow, SipConfig(receive_queue_max=1, retry_after_s=3))
    await server.start("127.0.0.1", 0)
    try:
        udp_client.send(invite(udp_client, RICH, "q-1", branch="z9hG4bK-q1"), server.port)
        udp_client.send(invite(udp_client, RICH, "q-2", branch="z9hG4bK-q2"), server.port)
        shed = parse(await udp_client.recv())
        assert (shed.status, shed.header("Retry-After")) == (503, "3")
        assert (shed.header("Call-ID"), shed.header("X-OCS-Result")) == ("q-2", "3004")
        first = parse(await udp_client.recv())
        while first.header("Call-ID") == "q-2":  # Timer G re-sends the 503 until an ACK
            first = parse(await udp_client.recv())
        assert (first.status, first.header("Call-ID")) == (404, "q-1")
        assert server.metrics.shed == 1
        assert [call.call_id for call in slow.calls] == ["q-1"]
    finally:
        await server.close()


def test_bad_allowed_source_is_a_config_error(authorizer: TableAuthorizer) -> None:
    from ocs.config import ConfigError, SipConfig

    with pytest.raises(ConfigError, match=r"sip\.allowed_sources"):
        SipServer(authorizer, SipConfig(allowed_sources=("10.0.0.300",)))

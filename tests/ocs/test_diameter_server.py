"""The asyncio adapter around the sans-IO peer: coalesced writes, future handlers, SO_REUSEPORT."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from diameter_apps.answers import answer_to
from diameter_apps.codec import Message, decode_message
from diameter_apps.codes import VENDOR_3GPP, CommandCode
from diameter_apps.errors import TooBusy
from diameter_apps.events import RequestReceived
from diameter_apps.router import Router
from ocs.config import DiameterConfig
from ocs.diameter_server import DiameterConnection, DiameterServer
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics
from tests.diameter_apps.helpers import OUR_HOST, OUR_REALM, ccr, cer


class RecordingTransport:
    """Stands in for the socket: keeps every ``write`` apart so the test can count them."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.7", 40000) if name == "peername" else default


def messages(data: bytes) -> list[Message]:
    out = []
    while data:
        length = int.from_bytes(data[1:4], "big")
        out.append(decode_message(data[:length]))
        data = data[length:]
    return out


async def open_connection(
    handler: Any, config: DiameterConfig | None = None
) -> tuple[DiameterConnection, RecordingTransport, Metrics]:
    router = Router()
    router.register(4, CommandCode.CREDIT_CONTROL, handler, vendor_id=VENDOR_3GPP)
    metrics = Metrics()
    config = config or DiameterConfig(origin_host=OUR_HOST, origin_realm=OUR_REALM)
    server = DiameterServer(config, router, metrics, make_logger("error"))
    connection = DiameterConnection(server)
    transport = RecordingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.data_received(cer().encode())
    assert [m.command_code for m in messages(transport.writes.pop())] == [257]
    return connection, transport, metrics


async def test_answers_completed_in_one_loop_turn_leave_in_one_write() -> None:
    loop = asyncio.get_running_loop()
    waiting: list[tuple[RequestReceived, asyncio.Future[Message]]] = []

    def handler(event: RequestReceived) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = loop.create_future()
        waiting.append((event, future))
        return future

    connection, transport, metrics = await open_connection(handler)
    requests = [ccr(hop_by_hop=20 + n, end_to_end=700 + n, session=f"s;{n}") for n in range(3)]
    connection.data_received(b"".join(r.encode() for r in requests))
    assert len(waiting) == 3 and transport.writes == []

    # The ledger answers all three in one reply batch, last request first; the third fails.
    def resolve_all() -> None:
        for event, future in reversed(waiting[1:]):
            future.set_result(_cca(event))
        waiting[0][1].set_exception(TooBusy("the ledger is unavailable"))

    loop.call_soon(resolve_all)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(transport.writes) == 1
    answers = messages(transport.writes[0])
    assert [a.hop_by_hop for a in answers] == [22, 21, 20]  # in the order they completed
    assert [a.result_code for a in answers] == [2001, 2001, 3004]
    text = metrics.render().decode()
    assert 'ocs_diameter_answers_total{command="CCR",result_code="2001"} 2.0' in text
    assert 'ocs_diameter_answers_total{command="CCR",result_code="3004"} 1.0' in text
    assert 'ocs_diameter_requests_total{command="CCR"} 3.0' in text


async def test_answers_ready_at_once_go_out_with_the_read_that_brought_them() -> None:
    connection, transport, _ = await open_connection(lambda event: _cca(event))
    requests = [ccr(hop_by_hop=30 + n, session=f"s;{n}") for n in range(4)]
    connection.data_received(b"".join(r.encode() for r in requests))
    assert len(transport.writes) == 1
    assert [a.hop_by_hop for a in messages(transport.writes[0])] == [30, 31, 32, 33]
    for _ in range(3):
        await asyncio.sleep(0)
    assert len(transport.writes) == 1  # nothing left for the queued flush to write


async def test_a_done_future_and_a_coroutine_are_both_answered() -> None:
    loop = asyncio.get_running_loop()
    calls = 0

    def handler(event: RequestReceived) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            done: asyncio.Future[Message] = loop.create_future()
            done.set_result(_cca(event))
            return done

        async def later() -> Message:
            await asyncio.sleep(0)
            raise RuntimeError("a bug in the handler")

        return later()

    connection, transport, _ = await open_connection(handler)
    first, second = ccr(hop_by_hop=40, end_to_end=800), ccr(hop_by_hop=41, end_to_end=801)
    connection.data_received(first.encode() + second.encode())
    for _ in range(5):
        await asyncio.sleep(0)
    answers = [a for data in transport.writes for a in messages(data)]
    assert [(a.hop_by_hop, a.result_code) for a in answers] == [(40, 2001), (41, 5012)]


def _cca(event: RequestReceived) -> Message:
    return answer_to(event.message, origin_host=OUR_HOST, origin_realm=OUR_REALM, result_code=2001)


async def test_reuse_port_lets_processes_share_the_listening_port() -> None:
    router = Router()
    log = make_logger("error")
    first = DiameterServer(DiameterConfig(listen_port=0, reuse_port=True), router, Metrics(), log)
    _, port = await first.start()
    shared = DiameterConfig(listen_port=port, reuse_port=True)
    second = DiameterServer(shared, router, Metrics(), log)
    try:
        assert (await second.start())[1] == port
        exclusive = DiameterServer(DiameterConfig(listen_port=port), router, Metrics(), log)
        with pytest.raises(OSError):
            await exclusive.start()
    finally:
        await second.shutdown(0.1)
        await first.shutdown(0.1)

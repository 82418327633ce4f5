"""SIP calls as a proxy makes them against the OCS redirect server: INVITE over UDP (Timer A
retransmissions), ACK to the final answer, and on a 302 the call "talks" for the drawn duration
(capped at the granted ``X-Max-Duration``) before the proxy reports the end on the HTTP
accounting interface: ``POST /v1/calls/{reservation}/end`` with ``{"duration_s", "cause"}``.

Responses are parsed with the product's sans-IO SIP parser (:mod:`ocs.sip.message`).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import TYPE_CHECKING

from ocs.sip.errors import SipParseError
from ocs.sip.message import ParseLimits, SipResponse, parse_message
from sim.population import SimSubscriber, called_number

if TYPE_CHECKING:
    from sim.traffic import Worker

TIMER_A_S = 0.5
TIMER_B_S = 32 * TIMER_A_S
HTTP_TIMEOUT_S = 5.0
_LIMITS = ParseLimits()


class SipClient(asyncio.DatagramProtocol):
    """One UDP socket per worker; final responses are matched to calls by Call-ID."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiters: dict[str, asyncio.Future[SipResponse]] = {}
        self.local = ("127.0.0.1", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        try:
            message = parse_message(data, _LIMITS)
        except SipParseError:
            return
        if not isinstance(message, SipResponse) or message.status < 200:
            return  # provisional answers only stop retransmissions in a full UA; ignored here
        call_id = message.header("Call-ID")
        waiter = self.waiters.get(call_id or "")
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    def send(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data)


def invite(
    client: SipClient, call_id: str, branch: str, from_tag: str, caller: str, callee: str,
    server: tuple[str, int],
) -> bytes:  # fmt: skip
    host, port = client.local
    lines = [
        f"INVITE sip:+{callee}@{server[0]}:{server[1]} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:+{caller}@sim.local>;tag={from_tag}",
        f"To: <sip:+{callee}@{server[0]}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:{caller}@{host}:{port}>",
        f"P-Asserted-Identity: <tel:+{caller}>",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ack(invite_bytes: bytes, response: SipResponse) -> bytes:
    """ACK for a non-2xx final answer: same branch, the answer's To (with its tag)."""
    head = invite_bytes.decode().split("\r\n")
    uri = head[0].split(" ")[1]
    keep = [line for line in head[1:] if line.split(":", 1)[0] in ("Via", "From", "Call-ID")]
    to = response.header("To") or ""
    lines = [f"ACK {uri} SIP/2.0", *keep, f"To: {to}", "CSeq: 1 ACK", "Max-Forwards: 70",
             "Content-Length: 0"]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def post_end(base_url: str, reservation: str, duration_s: int, key: str = "") -> int:
    """The proxy's call-end report (with its proxy key); returns the HTTP status (0 when
    unreachable)."""
    url = urllib.parse.urlsplit(base_url)
    body = json.dumps({"duration_s": duration_s, "cause": "normal"}).encode()
    path = f"/v1/calls/{urllib.parse.quote(reservation, safe='')}/end"
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    try:
        async with asyncio.timeout(HTTP_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(url.hostname, url.port or 80)
            writer.write(request)
            status_line = await reader.readline()
            writer.close()
    except (OSError, TimeoutError):
        return 0
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0


class SipCalls:
    """The SIP session kind of a worker (``await calls(worker, subscriber)``)."""

    def __init__(self) -> None:
        self.client: SipClient | None = None
        self._numbers = 0

    async def _ensure(self, worker: Worker) -> SipClient:
        if self.client is None:
            target = worker.scenario.target
            loop = asyncio.get_running_loop()
            _transport, client = await loop.create_datagram_endpoint(
                SipClient, remote_addr=(target.sip_host, target.sip_port)
            )
            self.client = client
        return self.client

    async def __call__(self, worker: Worker, subscriber: SimSubscriber) -> None:
        client = await self._ensure(worker)
        target = worker.scenario.target
        stats = worker.stats
        self._numbers += 1
        call_id = f"{worker.origin_host(0)}-sip-{self._numbers}"
        from_tag = f"t{self._numbers}"
        callee = called_number(
            worker.rng, worker.rng.random() < worker.scenario.international_share
        )
        data = invite(
            client, call_id, f"z9hG4bK{self._numbers}w{worker.index}", from_tag,
            subscriber.msisdn, callee, (target.sip_host, target.sip_port),
        )  # fmt: skip
        future: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        client.waiters[call_id] = future
        stats.sent["INVITE"] += 1
        started = time.perf_counter_ns()
        interval, waited = TIMER_A_S, 0.0
        response: SipResponse | None = None
        try:
            while waited < TIMER_B_S:
                client.send(data)
                done, _ = await asyncio.wait({future}, timeout=interval)
                if done:
                    response = future.result()
                    break
                waited += interval
                interval *= 2
                stats.sent["INVITE_retransmit"] += 1
        finally:
            client.waiters.pop(call_id, None)
        if response is None:
            stats.errors["sip_timeout"] += 1
            return
        latency_us = (time.perf_counter_ns() - started) // 1000
        stats.answered(worker.second(), latency_us, f"SIP {response.status}")
        client.send(ack(data, response))
        if response.status != 302:
            stats.sessions["sip_refused"] += 1
            return
        reservation = response.header("X-OCS-Reservation") or ""
        max_s = int(response.header("X-Max-Duration") or "0")
        duration = min(worker.call_seconds(), max_s)
        await worker.sleep_in_task(duration / worker.scenario.voice.time_scale)
        status = await post_end(target.http_url, reservation, duration, target.http_key)
        totals = stats.tenant(subscriber.tenant)
        totals.ccrs += 1
        key = reservation.rsplit(".", 1)[-1]
        stats.extra_sessions.add(f"sip:{key}")
        if status == 200:
            totals.used["voice"] = totals.used.get("voice", 0) + duration
            stats.sessions["sip_completed"] += 1
        else:
            totals.uncertain["voice"] = totals.uncertain.get("voice", 0) + duration
            stats.errors[f"sip_end_http_{status}"] += 1

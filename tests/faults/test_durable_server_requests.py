"""Finding 6 of issue #11: RAR/ASR are durable and sent by whichever ``ocs serve`` process holds
a connection to the session's client, once: a notice published while no process is connected
to that client is delivered when one connects, and the RAA/ASA outcome is recorded so a second
sender skips."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from diameter.message.commands import AbortSessionAnswer, ReAuthAnswer

from ocs.charging.durable_requests import delivery_stream, outcome_key
from ocs.embedded_redis import EmbeddedRedis
from tests.faults.test_redis_restart import CATALOG, _client
from tests.support.gy import INITIAL, Mscc, ccr, msccs_of
from tests.support.pd_client import PdClient
from tests.support.server_process import ServerProcess

MIB = 1_048_576
SUBSCRIBER = "4917099000070"
ROAM = {"msisdn": SUBSCRIBER, "visited_plmn": "310260"}


@pytest.fixture
def two_servers(private_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers = [
        ServerProcess(tmp_path / name, redis_url=private_redis.url, catalog=CATALOG)
        for name in ("a", "b")
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _account(url: str, action: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ocs", "account", action, "--tenant", "acme", SUBSCRIBER,
         *(["5.00"] if action == "topup" else []), "--redis-url", url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _server_request(client: PdClient) -> object:
    """The next RAR/ASR from the server (a watchdog DWR on a slow machine is skipped)."""
    while True:
        message = client.recv()
        if message.header.command_code != 280:
            return message


def _answer(client: PdClient, request: object, answer: ReAuthAnswer | AbortSessionAnswer) -> None:
    answer.header.hop_by_hop_identifier = request.header.hop_by_hop_identifier  # type: ignore[attr-defined]
    answer.header.end_to_end_identifier = request.header.end_to_end_identifier  # type: ignore[attr-defined]
    answer.session_id = request.session_id  # type: ignore[attr-defined]
    answer.result_code = 2001
    answer.origin_host, answer.origin_realm = b"pgw.test.local", b"test.local"
    client.send(answer)


def test_rar_and_asr_reach_the_client_through_another_process_once(
    two_servers: list[ServerProcess], private_redis: EmbeddedRedis
) -> None:
    a, b = two_servers
    sid = "pgw.test.local;durable;1"
    first = _client(a)
    cca = first.request(ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": 10 * MIB})],
                            **ROAM))  # fmt: skip
    assert msccs_of(cca)[10]["fui"] is not None  # the final grant: waiting for credit
    first.close()  # the gateway's connection to A goes away

    # Published while no process holds a connection to pgw.test.local: kept, not lost.
    _account(private_redis.url, "topup")
    second = _client(b)  # the gateway comes back, on B
    second.sock.settimeout(60)
    rar = _server_request(second)
    assert (rar.header.command_code, rar.header.is_request) == (258, True)
    assert rar.session_id == sid
    _answer(second, rar, ReAuthAnswer())

    _account(private_redis.url, "block")
    asr = _server_request(second)
    assert (asr.header.command_code, asr.header.is_request) == (274, True)
    assert asr.session_id == sid
    _answer(second, asr, AbortSessionAnswer())

    # Both outcomes recorded, nothing left pending: no process will send them again.
    admin = redis.Redis.from_url(private_redis.url)
    try:
        stream = delivery_stream("pgw.test.local")
        entries = admin.xrange(stream)
        assert [e[1][b"c"] for e in entries] == [b"RAR", b"ASR"]
        for _entry_id, fields in entries:
            key = outcome_key(fields[b"n"].decode(), sid)
            deadline = time.monotonic() + 60  # the ASA's outcome is written just after it
            while admin.get(key) != b"2001" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert admin.get(key) == b"2001"
        # The server acknowledges the entry right after writing its outcome (a separate call).
        deadline = time.monotonic() + 60
        while admin.xpending(stream, "ocs-serve")["pending"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.xpending(stream, "ocs-serve")["pending"] == 0
    finally:
        admin.close()
    second.close()

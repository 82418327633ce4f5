"""Finding 2 of issue #11: a transient answer (3004 while Redis is down) is never replayed to a
retransmission. RFC 6733 keeps the End-to-End id on a retransmission, so a cached 3004 would
answer every retry of that request for the cache's lifetime although the ledger is back; only
answers carrying the ledger's outcome may be cached."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs.embedded_redis import EmbeddedRedis
from tests.faults.test_redis_restart import CATALOG, RECOVERY_WAIT_S, _client
from tests.support.gy import INITIAL, Mscc, ccr, msccs_of, result_code
from tests.support.server_process import ServerProcess


@pytest.fixture
def server(private_redis: EmbeddedRedis, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "ocs", redis_url=private_redis.url, catalog=CATALOG)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_a_3004_is_not_replayed_to_a_retransmission_after_recovery(
    server: ServerProcess, private_redis: EmbeddedRedis
) -> None:
    client = _client(server)
    warm = ccr("pgw.test.local;outage;0", INITIAL, 0, msisdn="4917099000030", msccs=[Mscc(10)])
    assert result_code(client.request(warm)) == 2001
    private_redis.kill()
    request = ccr("pgw.test.local;outage;1", INITIAL, 0, msisdn="4917099000030",
                  msccs=[Mscc(10, {"cc_total_octets": 1000})])  # fmt: skip
    client.send(request)
    assert result_code(client.recv()) == 3004
    private_redis.start()
    request.header.is_retransmit = True  # same End-to-End and Hop-by-Hop id: a retransmission
    deadline = time.monotonic() + RECOVERY_WAIT_S
    codes = []
    while time.monotonic() < deadline:
        answer = client.request(request)
        codes.append(result_code(answer))
        if codes[-1] == 2001:
            break
        time.sleep(0.2)
    assert codes[-1] == 2001, f"the retransmission never reached the ledger: {codes[-5:]}"
    granted = msccs_of(answer)[10]["octets"]
    assert granted >= 1000  # rounded up to the rate's increment
    # And the charged answer is the one replayed from then on (here from the duplicate cache).
    again = client.request(request)
    assert result_code(again) == 2001 and msccs_of(again)[10]["octets"] == granted
    client.close()

"""Call end, re-authorisation and auto-end through the HTTP routes, checked against the ledger."""

from __future__ import annotations

import json

import msgspec
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from balance.ledger import Ledger
from ocs.charging.directory import TenantDirectory
from ocs.embedded_redis import free_tcp_port
from ocs.http_server import HttpRequest, HttpRouter, HttpServer
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics
from ocs.proxy_keys import PROXY_KEYS_KEY, ProxyKeyVerifier
from ocs.sip.authorizer import AuthOutcome
from ocs.sip_charging.accounting import CallAccounting
from ocs.sip_charging.http_api import CallApi
from ocs.sip_charging.records import Intent, IntentKind
from ocs.sip_charging.reservation import parse_reservation
from ocs.sip_charging.store import CallStore
from tests.sip_charging.conftest import ACME_CALLER, GRACE_S, Harness
from tests.support.charging import TUESDAY_10_BERLIN
from tests.support.proxy_keys import make_proxy_key

EUR = 1_000_000
PEAK_PER_S = 1500  # 0.09 EUR/min
PEAK_COST_PER_MIN = 12_000  # 0.012 EUR/min wholesale


async def authorized(harness: Harness, call_id: str = "call-1@proxy.test") -> str:
    decision = await harness.authorize(call_id=call_id)
    assert decision.outcome is AuthOutcome.AUTHORIZED
    assert decision.reservation_id is not None
    return decision.reservation_id


async def test_61_second_call_is_charged_exactly(harness: Harness) -> None:
    reservation = await authorized(harness)
    harness.clock.now += 75  # 14 s ringing, 61 s talking
    status, body = await harness.end(reservation, 61, "normal")
    assert status == 200, body
    # 60/1 increments: 61 s = 0.09 + 0.0015 EUR retail; wholesale 0.012 * 61 / 60.
    retail, wholesale = 90_000 + PEAK_PER_S, PEAK_COST_PER_MIN * 61 // 60
    assert body["charged_s"] == 61
    assert (body["retail"], body["wholesale"]) == (retail, wholesale)
    assert body["balance"] == 10 * EUR - retail
    assert (body["held_money"], body["leakage_s"], body["replayed"]) == (0, 0, False)
    assert (body["ended_by"], body["cause"], body["duration_s"]) == ("end", "normal", 61)
    account = await harness.account(ACME_CALLER)
    assert account.balance == 10 * EUR - retail
    assert account.held_money == 0 and account.sessions == ()
    [record] = await harness.records(ACME_CALLER)
    ref = parse_reservation(reservation)
    assert (record.session_id, record.op_id) == (ref.session_id, f"{ref.session_id}:end")
    assert (record.units, record.retail, record.wholesale) == (61, retail, wholesale)
    assert record.service == "voice" and record.tenant == "acme"
    assert record.at_s == TUESDAY_10_BERLIN + 75
    assert record.balance_after == 10 * EUR - retail


async def test_repeated_end_changes_nothing(harness: Harness) -> None:
    reservation = await authorized(harness)
    harness.clock.now += 61
    first = await harness.end(reservation, 61)
    harness.clock.now += 3600  # a late retry, at another time
    status, again = await harness.end(reservation, 61)
    assert status == 200
    assert again == {**first[1], "replayed": True}
    assert len(await harness.records(ACME_CALLER)) == 1
    assert (await harness.account(ACME_CALLER)).balance == first[1]["balance"]
    status, conflict = await harness.end(reservation, 90)
    assert status == 409 and conflict["code"] == "conflict"
    assert conflict["call"]["duration_s"] == 61
    assert len(await harness.records(ACME_CALLER)) == 1


async def test_unanswered_call_releases_everything(harness: Harness) -> None:
    reservation = await authorized(harness)
    status, body = await harness.end(reservation, 0, "no-answer")
    assert status == 200 and body["retail"] == 0 and body["balance"] == 10 * EUR
    assert await harness.records(ACME_CALLER) == []
    assert (await harness.account(ACME_CALLER)).held_money == 0


async def test_call_crossing_into_off_peak_is_split_at_the_boundary(harness: Harness) -> None:
    harness.clock.now = TUESDAY_10_BERLIN + 9 * 3600 - 30  # 18:59:30
    reservation = await authorized(harness)
    harness.clock.now += 120  # answered at 18:59:30, ended 19:01:30
    status, body = await harness.end(reservation, 120)
    assert status == 200
    [record] = await harness.records(ACME_CALLER)
    assert [(leg.units, leg.retail) for leg in record.legs] == [
        (30, 90_000),  # peak leg: the 60 s first increment at 0.09 EUR/min
        (90, 90 * 50_000 // 60),  # off-peak leg: its own first increment, then per second
    ]
    assert body["retail"] == 90_000 + 75_000


async def test_reauth_commits_used_part_and_extends(harness: Harness) -> None:
    ledger = await harness.ledger("acme")
    await ledger.adjust(ACME_CALLER, -9 * EUR, reason="test", now_s=harness.clock.now)
    reservation = await authorized(harness)  # 1.00 EUR: 666 s
    harness.clock.now += 600
    status, body = await harness.reauth(reservation, 600)
    assert status == 200, body
    # 600 s cost 0.09 + 540 * 0.0015 = 0.90; 0.10 EUR left buys 66 s more (same leg, per second).
    assert (body["used_s"], body["max_duration_s"], body["result"]) == (600, 66, 2001)
    assert (body["charged_s"], body["retail"]) == (600, 900_000)
    again = await harness.reauth(reservation, 600)
    assert again == (200, {**body, "replayed": True})
    harness.clock.now += 66
    status, end = await harness.end(reservation, 666)
    assert status == 200
    assert (end["charged_s"], end["retail"], end["balance"]) == (666, 999_000, 1000)
    usage = await harness.records(ACME_CALLER)
    assert [r.units for r in usage] == [600, 66]
    assert (await harness.reauth(reservation, 700))[0] == 409


async def test_reauth_without_money_answers_zero(harness: Harness) -> None:
    ledger = await harness.ledger("acme")
    await ledger.adjust(ACME_CALLER, -9 * EUR, reason="test", now_s=harness.clock.now)
    reservation = await authorized(harness)
    harness.clock.now += 666
    status, body = await harness.reauth(reservation, 666)
    assert status == 200
    assert (body["max_duration_s"], body["result"]) == (0, 4012)
    status, body = await harness.reauth(reservation, 600)
    assert status == 409 and "less than" in body["error"]


async def test_missing_end_is_committed_at_max_duration_after_grace(harness: Harness) -> None:
    reservation = await authorized(harness)
    ref = parse_reservation(reservation)
    store = CallStore(harness.client, "acme", record_ttl_s=60)
    deadline = TUESDAY_10_BERLIN + 3600 + GRACE_S
    assert await store.deadline(ref) == deadline
    harness.clock.now = deadline - 1
    assert await harness.sweeper.sweep_once() == 0
    assert await harness.records(ACME_CALLER) == []
    harness.clock.now = deadline
    assert await harness.sweeper.sweep_once() == 1
    assert await harness.sweeper.sweep_once() == 0  # a second sweep (or process) is a no-op
    [record] = await harness.records(ACME_CALLER)
    assert record.op_id == f"{ref.session_id}:auto-end"  # the flag on the usage record
    assert (record.units, record.retail) == (3600, 3600 * PEAK_PER_S)
    assert record.at_s == TUESDAY_10_BERLIN + 3600  # the end of the granted time
    account = await harness.account(ACME_CALLER)
    assert account.balance == 10 * EUR - 3600 * PEAK_PER_S and account.held_money == 0
    assert await store.deadline(ref) is None
    # Tcc supervision afterwards finds nothing left to void.
    ledger = await harness.ledger("acme")
    assert await ledger.expire_due(deadline + 3600) == []
    # The proxy's end event arriving late gets the auto-end result, and changes nothing.
    status, body = await harness.end(reservation, 100)
    assert status == 409
    assert (body["call"]["ended_by"], body["call"]["duration_s"]) == ("auto-end", 3600)
    assert len(await harness.records(ACME_CALLER)) == 1


async def test_reauth_moves_the_auto_end_deadline(harness: Harness) -> None:
    reservation = await authorized(harness)
    ref = parse_reservation(reservation)
    harness.clock.now += 3000
    status, body = await harness.reauth(reservation, 3000)
    # 3000 s cost 0.09 + 2940 * 0.0015 = 4.50 EUR; the 5.50 EUR left cover the max grant again.
    assert status == 200 and body["max_duration_s"] == 3600
    store = CallStore(harness.client, "acme", record_ttl_s=60)
    granted = body["max_duration_s"]
    assert await store.deadline(ref) == harness.clock.now + granted + GRACE_S
    harness.clock.now = TUESDAY_10_BERLIN + 3600 + GRACE_S  # the old deadline
    assert await harness.sweeper.sweep_once() == 0
    harness.clock.now = TUESDAY_10_BERLIN + 3000 + granted + GRACE_S
    assert await harness.sweeper.sweep_once() == 1
    usage = await harness.records(ACME_CALLER)
    assert [r.units for r in usage] == [3000, granted]
    assert usage[1].op_id.endswith(":auto-end")


async def test_stalled_change_is_completed_once(harness: Harness) -> None:
    """A server that died between claiming an end and recording it: the retry (or the sweeper)
    completes the same end with the same operation id, charged once."""
    reservation = await authorized(harness)
    ref = parse_reservation(reservation)
    store = CallStore(harness.client, "acme", record_ttl_s=600)
    stored = await store.get(ref)
    assert stored is not None
    intent = Intent(IntentKind.END, 61, int(harness.clock.now) + 61, "normal")
    claimed = await store.swap(
        ref, stored, msgspec.structs.replace(stored.record, pending=intent), 0
    )
    assert claimed is not None
    harness.clock.now += 120
    assert await harness.sweeper.sweep_once() == 0  # completes the end; not an auto-end
    status, body = await harness.end(reservation, 61)
    assert status == 200 and body["replayed"] is True and body["retail"] == 91_500
    assert len(await harness.records(ACME_CALLER)) == 1


END = "/v1/calls/acme.4917099000001.{key}/end"
REAUTH = "/v1/calls/acme.4917099000001.{key}/reauth"
UNKNOWN, BAD_ID = "unknown_reservation", "bad_reservation"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (END, b"{not json", 400, "bad_json"),
        (END, b"[61]", 422, "bad_body"),
        (END, b'{"cause": "x"}', 422, "bad_body"),
        (END, b'{"duration_s": "61"}', 422, "bad_body"),
        (END, b'{"duration_s": 6.1}', 422, "bad_body"),
        (END, b'{"duration_s": true}', 422, "bad_body"),
        (END, b'{"duration_s": -1}', 422, "bad_body"),
        (END, b'{"duration_s": 9999999}', 422, "bad_body"),
        (END, b'{"duration_s": 1, "x": 1}', 422, "bad_body"),
        (END, b'{"duration_s": 1, "cause": 7}', 422, "bad_body"),
        (REAUTH, b'{"used_s": null}', 422, "bad_body"),
        ("/v1/calls/nonsense/end", b'{"duration_s": 1}', 400, BAD_ID),
        ("/v1/calls/acme.4917099000001.XYZ/end", b'{"duration_s": 1}', 400, BAD_ID),
        ("/v1/calls/acme.49170990000x1.{key}/end", b'{"duration_s": 1}', 400, BAD_ID),
        ("/v1/calls/a*b.4917099000001.{key}/end", b'{"duration_s": 1}', 400, BAD_ID),
        ("/v1/calls/acme.4917099000001.{other}/end", b'{"duration_s": 1}', 404, UNKNOWN),
        # acme's key does not reach another tenant's calls (known or not).
        ("/v1/calls/nobody.4917099000001.{key}/end", b'{"duration_s": 1}', 403, "wrong_tenant"),
        ("/v1/calls/acme.4917099000002.{key}/end", b'{"duration_s": 1}', 404, UNKNOWN),
    ],
)  # fmt: skip
async def test_bad_requests_get_specific_4xx(
    harness: Harness, path: str, body: bytes, status: int, code: str
) -> None:
    reservation = await authorized(harness)
    key = parse_reservation(reservation).key
    got_status, got = await harness.post(path.format(key=key, other="0" * 32), body)
    assert (got_status, got["code"]) == (status, code), got
    assert got["error"]
    # Nothing was charged by any of them.
    assert await harness.records(ACME_CALLER) == []


async def test_ledger_down_is_503_with_retry_after(harness: Harness) -> None:
    reservation = await authorized(harness)
    dead = aioredis.Redis(
        host="127.0.0.1", port=free_tcp_port(), socket_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )

    async def dead_ledger(tenant: str) -> Ledger:
        return Ledger(dead, tenant)

    directory = TenantDirectory(harness.directory.snapshot.catalog, dead_ledger)
    accounting = CallAccounting(
        directory, harness.policy, clock=harness.clock, log=make_logger("warning")
    )
    router = HttpRouter()
    # The key is checked before the ledger is reached: its cache stays on the live Redis.
    CallApi(accounting, ProxyKeyVerifier(harness.client, cache_s=10, clock=harness.clock)).register(
        router
    )
    server = HttpServer(router, Metrics())
    auth = {"authorization": f"Bearer {harness.proxy_key}"}
    for action, body in (("end", b'{"duration_s": 10}'), ("reauth", b'{"used_s": 10}')):
        response = await server.handle(
            HttpRequest("POST", f"/v1/calls/{reservation}/{action}", "", auth, body)
        )
        assert response.status == 503
        assert ("retry-after", "5") in response.headers
        assert json.loads(response.body)["code"] == "ledger_unavailable"
    await dead.aclose()
    # Nothing happened to the call: it can still be ended normally.
    assert (await harness.end(reservation, 10))[0] == 200


async def test_one_broken_call_does_not_hold_up_the_sweep(harness: Harness) -> None:
    broken = await authorized(harness, call_id="broken@proxy")
    fine = await authorized(harness, call_id="fine@proxy")
    store = CallStore(harness.client, "acme", record_ttl_s=600)
    await harness.client.set(f"{{t:acme:sip}}:call:{parse_reservation(broken).key}", b"\xc1junk")
    await harness.client.zadd("{t:acme:sip}:due", {"not-a-reservation": 0, "globex.1.x": 0})
    harness.clock.now = TUESDAY_10_BERLIN + 3600 + GRACE_S
    assert await harness.sweeper.sweep_once() == 1
    assert await store.deadline(parse_reservation(fine)) is None
    assert await store.deadline(parse_reservation(broken)) is not None  # still due, logged
    assert await harness.client.zscore("{t:acme:sip}:due", "not-a-reservation") is None
    [record] = await harness.records(ACME_CALLER)
    assert record.op_id == f"{parse_reservation(fine).session_id}:auto-end"


@pytest.mark.parametrize("action", ["end", "reauth"])
async def test_call_endpoints_need_the_tenants_proxy_key(harness: Harness, action: str) -> None:
    reservation = await authorized(harness)
    path = f"/v1/calls/{reservation}/{action}"
    body = {"duration_s": 30} if action == "end" else {"used_s": 30}
    globex = await make_proxy_key(harness.client, "globex", now=harness.clock.now)
    expired = await make_proxy_key(harness.client, "acme", expires_in_s=-1, now=harness.clock.now)
    for key, status, code in (
        (None, 401, "no_key"),
        ("ocs_nope", 401, "bad_key"),
        (expired, 401, "bad_key"),
        ("ocs_0123456789ab_" + "A" * 43, 401, "bad_key"),  # well-formed, never made
        (globex, 403, "wrong_tenant"),  # another tenant's proxy key
    ):
        got_status, got = await harness.post(path, body, key=key)
        assert (got_status, got["code"]) == (status, code), (key, got)
        assert "globex" not in got["error"]
    assert await harness.records(ACME_CALLER) == []  # nothing charged by any of them
    # X-API-Key works as well as Authorization: Bearer.
    response = await harness.http.handle(
        HttpRequest("POST", path, "", {"x-api-key": harness.proxy_key}, json.dumps(body).encode())
    )
    assert response.status == 200, response.body


async def test_revoked_proxy_key_stops_within_the_cache_time(harness: Harness) -> None:
    verifier = ProxyKeyVerifier(harness.client, cache_s=10, clock=harness.clock)
    key = await make_proxy_key(harness.client, "acme", now=harness.clock.now)
    assert (await verifier.verify(key)) is not None
    await harness.client.delete(PROXY_KEYS_KEY)  # what a revocation's sync does to it
    assert (await verifier.verify(key)) is not None  # remembered: no Redis call per request
    harness.clock.now += 10
    assert (await verifier.verify(key)) is None

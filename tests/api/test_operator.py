"""Operator routes: reads, writes, errors, idempotent top-up, audit of every write."""

from __future__ import annotations

import asyncio

from tests.api.conftest import ACME_SUB, GLOBEX_SUB, Api


async def test_read_topup_block_and_audit(api: Api) -> None:
    key = await api.key("acme", role="operate")
    h = api.auth(key)
    r = await api.client.get(f"/api/v1/tenants/acme/subscribers/{ACME_SUB}", headers=h)
    assert r.status_code == 200, r.text
    before = r.json()["balance_micro"]
    r = await api.client.post(
        f"/api/v1/tenants/acme/subscribers/{ACME_SUB}/topup", json={"amount": "5.00"}, headers=h
    )
    assert r.status_code == 201 or r.status_code == 200, r.text
    assert r.json()["balance_micro"] == before + 5_000_000
    r = await api.client.post(
        f"/api/v1/tenants/acme/subscribers/{ACME_SUB}/block", json={"reason": "fraud"}, headers=h
    )
    assert r.json()["state"] == "blocked"
    r = await api.client.get("/api/v1/tenants/acme/audit", headers=h)
    entries = r.json()["entries"]
    assert [e["action"] for e in entries] == ["subscriber.block", "subscriber.topup"]
    topup = entries[1]
    assert topup["actor"] == key.split("_")[1]
    assert topup["before"]["balance_micro"] == before
    assert topup["after"]["balance_micro"] == before + 5_000_000
    assert topup["source"]


async def test_retried_topup_credits_once(api: Api) -> None:
    h = api.auth(await api.key("acme", role="operate"))
    url = f"/api/v1/tenants/acme/subscribers/{ACME_SUB}"
    start = (await api.client.get(url, headers=h)).json()["balance_micro"]
    answers = await asyncio.gather(
        *(
            api.client.post(
                f"{url}/topup",
                json={"amount": "2.50"},
                headers={**h, "Idempotency-Key": "PAY-77"},
            )
            for _ in range(5)
        )
    )
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert sorted(a.json()["replayed"] for a in answers) == [False, True, True, True, True]
    assert (await api.client.get(url, headers=h)).json()["balance_micro"] == start + 2_500_000
    other = await api.client.post(
        f"{url}/topup", json={"amount": "3.00"}, headers={**h, "Idempotency-Key": "PAY-77"}
    )
    assert other.status_code == 409


async def test_errors_name_what_is_wrong(api: Api) -> None:
    h = api.auth(await api.key("acme", role="admin"))
    base = "/api/v1/tenants/acme/subscribers"
    r = await api.client.post(f"{base}/{ACME_SUB}/topup", json={"amount": "abc"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "amount"
    r = await api.client.post(f"{base}/{ACME_SUB}/topup", json={"amount": "5000"}, headers=h)
    assert r.status_code == 422 and "topup_max" in r.json()["detail"]
    r = await api.client.post(
        f"{base}/{ACME_SUB}/adjust", json={"amount": "1", "reason": " "}, headers=h
    )
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = await api.client.get(f"{base}/4917055555555", headers=h)
    assert r.status_code == 404 and "4917055555555" in r.json()["detail"]
    # A sibling's number is "unknown" here, without naming the sibling.
    r = await api.client.get(f"{base}/{GLOBEX_SUB}", headers=h)
    assert r.status_code == 404 and "globex" not in r.json()["detail"]
    r = await api.client.post(f"{base}/{ACME_SUB}/topup", json={"amount": 5}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "amount"
    # A NUL in a usage filter (found by schemathesis: PostgreSQL refuses it in text) is a 422.
    r = await api.client.get("/api/v1/tenants/acme/usage", params={"service": "d\x00"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "service"


async def test_no_key_or_revoked_key_is_401(api: Api) -> None:
    r = await api.client.get(f"/api/v1/tenants/acme/subscribers/{ACME_SUB}")
    assert r.status_code == 401
    r = await api.client.get(
        f"/api/v1/tenants/acme/subscribers/{ACME_SUB}", headers=api.auth("ocs_nope")
    )
    assert r.status_code == 401

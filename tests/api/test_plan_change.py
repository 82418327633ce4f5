"""The operator API's plan change: the same change as the CLI, audited, field errors named."""

from __future__ import annotations

from tests.api.conftest import ACME_SUB, Api


async def test_plan_change_now_and_refused(api: Api) -> None:
    key = await api.key("acme", role="operate")
    h = {**api.auth(key), "Idempotency-Key": "plan-1"}
    url = f"/api/v1/tenants/acme/subscribers/{ACME_SUB}"
    before = (await api.client.get(url, headers=h)).json()["balance_micro"]
    for _ in range(2):  # retried with its Idempotency-Key: charged once
        r = await api.client.post(f"{url}/plan", json={"plan": "data10"}, headers=h)
        assert r.status_code in (200, 201), r.text
        assert r.json()["balance_micro"] == before - 10_000_000  # a month from today: the full fee
    r = await api.client.post(f"{url}/plan", json={"plan": "gold"}, headers=api.auth(key))
    assert r.status_code == 422 and "plan" in r.text and "no plan 'gold'" in r.text
    r = await api.client.post(
        f"{url}/plan", json={"plan": "payg", "at": "someday"}, headers=api.auth(key)
    )
    assert r.status_code == 422 and "at" in r.text
    r = await api.client.get("/api/v1/tenants/acme/audit", headers=h)
    assert [e["action"] for e in r.json()["entries"]] == ["subscriber.plan", "subscriber.plan"]

"""Buying and renewing an add-on through the API: the fee charged in the same ledger call that
grants the buckets, idempotent on Idempotency-Key (also when the retry comes seconds later),
402 naming why when the balance cannot pay (and nothing granted), audit of each."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import ACME_SUB, Api

URL = f"/api/v1/tenants/acme/subscribers/{ACME_SUB}"
ADDON = "roam_world_500m"  # fee 9.99 EUR, 500 MiB for 7 days
FEE = 9_990_000
MIB_500 = 524_288_000
WEEK_S = 7 * 86400


def addon_buckets(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in view["buckets"] if b["kind"].startswith(ADDON + ".") and b["live"]]


async def test_buy_charges_the_fee_with_the_buckets_once(api: Api) -> None:
    h = api.auth(await api.key("acme", role="operate"))
    start = (await api.client.get(URL, headers=h)).json()
    bought = await api.client.post(
        f"{URL}/addons", json={"addon": ADDON}, headers={**h, "Idempotency-Key": "ORDER-1"}
    )
    assert bought.status_code == 201, bought.text
    view = bought.json()
    assert view["balance_micro"] == start["balance_micro"] - FEE and not view["replayed"]
    (bucket,) = addon_buckets(view)
    assert bucket["remaining"] == MIB_500
    assert abs(bucket["expires_at_s"] - api.state.clock() - WEEK_S) < 5
    # A retry, even seconds later (the buckets' expiry would differ): a replay, charged once.
    now = api.state.clock()
    api.state.clock = lambda: now + 7
    again = await api.client.post(
        f"{URL}/addons", json={"addon": ADDON}, headers={**h, "Idempotency-Key": "ORDER-1"}
    )
    assert again.status_code == 201 and again.json()["replayed"]
    assert again.json()["balance_micro"] == view["balance_micro"]
    assert len(addon_buckets(again.json())) == 1
    entries = (await api.client.get("/api/v1/tenants/acme/audit", headers=h)).json()["entries"]
    assert entries[-1]["action"] == "subscriber.addon_buy"
    assert entries[-1]["before"]["balance_micro"] == start["balance_micro"]
    assert entries[-1]["after"]["balance_micro"] == start["balance_micro"] - FEE


async def test_balance_that_cannot_pay_gets_402_and_nothing(api: Api) -> None:
    h = api.auth(await api.key("acme", role="admin"))
    # The catalog's opening balance is 10.00: leave 5.00, less than the fee.
    await api.client.post(f"{URL}/adjust", json={"amount": "-5.00", "reason": "test"}, headers=h)
    before = (await api.client.get(URL, headers=h)).json()
    refused = await api.client.post(f"{URL}/addons", json={"addon": ADDON}, headers=h)
    assert refused.status_code == 402, refused.text
    detail = refused.json()["detail"]
    assert "5.00 EUR" in detail and "9.99 EUR" in detail and "nothing" in detail
    after = (await api.client.get(URL, headers=h)).json()
    assert after["balance_micro"] == before["balance_micro"]
    assert after["buckets"] == before["buckets"]
    # No audit entry claims a purchase that did not happen.
    entries = (await api.client.get("/api/v1/tenants/acme/audit", headers=h)).json()["entries"]
    assert [e["action"] for e in entries] == ["subscriber.adjust"]


async def test_unknown_addon_is_422_naming_the_offered_ones(api: Api) -> None:
    h = api.auth(await api.key("acme", role="operate"))
    r = await api.client.post(f"{URL}/addons", json={"addon": "eu_pass"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "addon"
    assert "roam_world_500m" in r.json()["detail"] and "minutes_100" in r.json()["detail"]
    r = await api.client.post(f"{URL}/addons/nope/renew", headers=h)
    assert r.status_code == 422 and r.json()["field"] == "addon"


async def test_renew_carries_the_remainder_into_a_fresh_validity(api: Api) -> None:
    h = api.auth(await api.key("acme", role="operate"))
    r = await api.client.post(f"{URL}/addons/{ADDON}/renew", headers=h)
    assert r.status_code == 409 and "buy it" in r.json()["detail"]
    await api.client.post(f"{URL}/topup", json={"amount": "20.00"}, headers=h)
    bought = (await api.client.post(f"{URL}/addons", json={"addon": ADDON}, headers=h)).json()
    now = api.state.clock()
    api.state.clock = lambda: now + 3600  # an hour later
    renewed = await api.client.post(
        f"{URL}/addons/{ADDON}/renew", headers={**h, "Idempotency-Key": "RENEW-1"}
    )
    assert renewed.status_code == 201, renewed.text
    view = renewed.json()
    assert view["balance_micro"] == bought["balance_micro"] - FEE
    (bucket,) = addon_buckets(view)  # the old one carried over, nothing forfeited
    assert bucket["remaining"] == 2 * MIB_500
    assert abs(bucket["expires_at_s"] - (now + 3600 + WEEK_S)) < 5
    retry = await api.client.post(
        f"{URL}/addons/{ADDON}/renew", headers={**h, "Idempotency-Key": "RENEW-1"}
    )
    assert retry.json()["replayed"] and retry.json()["balance_micro"] == view["balance_micro"]
    # Too poor to renew: 402, the live add-on untouched.
    admin = api.auth(await api.key("acme", role="admin"))
    drain = str((view["balance_micro"] - 1_000_000) / 1_000_000)
    await api.client.post(f"{URL}/adjust", json={"amount": f"-{drain}", "reason": "t"},
                          headers=admin)  # fmt: skip
    poor = await api.client.post(f"{URL}/addons/{ADDON}/renew", headers=h)
    assert poor.status_code == 402 and "renewal" in poor.json()["detail"]
    (still,) = addon_buckets((await api.client.get(URL, headers=h)).json())
    assert still == bucket

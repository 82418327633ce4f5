"""Isolation, generated from the OpenAPI document: every operation x {own tenant, sibling tenant,
portfolio} x {read, operate, admin} key gets the expected status. A new route is in the
document, so it is in this matrix; a new request body without an example here fails the test.

Then the two layers below the API: a tenant's Redis user and store role refuse a sibling's data
even when asked directly (what a scope bug in the API would do)."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import pytest
from redis.exceptions import NoPermissionError

from ocs.api.keys import ROLE_RANK, ROLES
from tests.api.conftest import Api

# One valid body per request schema. A schema missing here fails the matrix, by design.
BODIES: dict[str, Any] = {
    "SubscriberCreate": lambda n: {"subscriber": f"+4915550{n:06d}"},
    "SimSwap": lambda n: {"imsi": f"26201555{n:07d}"},
    "TopUp": lambda n: {"amount": "1.00"},
    "Adjust": lambda n: {"amount": "0.50", "reason": "isolation matrix"},
    "StateChange": lambda n: {"reason": "isolation matrix"},
    "PlanChange": lambda n: {"plan": "payg"},
    "AddonPurchase": lambda n: {"addon": ADDON},
}
ADDON = "minutes_100"
HOLDERS = ("own", "sibling", "portfolio")


# One valid upload per media type other than JSON.
UPLOADS: dict[str, Any] = {
    "text/csv": lambda n: f"subscriber,balance\n+4915553{n:06d},1.00\n",
}


def _body(op: dict[str, Any], n: int) -> dict[str, Any]:
    """The request's body as httpx keyword arguments."""
    content = op.get("requestBody", {}).get("content", {})
    if not content:
        return {}
    if "application/json" not in content:
        (media,) = content
        assert media in UPLOADS, f"no example upload for {media}: add one to UPLOADS"
        return {"content": UPLOADS[media](n), "headers": {"Content-Type": media}}
    ref = content["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert ref in BODIES, f"no example body for schema {ref}: add one to BODIES"
    return {"json": BODIES[ref](n)}


def expected(op: dict[str, Any], holder: str, role: str) -> int:
    scope, need = op["x-scope"], op["x-required-role"]
    reaches = (scope == "portfolio") == (holder == "portfolio") and holder != "sibling"
    if not reaches or ROLE_RANK[role] < ROLE_RANK[need]:
        return 403
    for status in (201, 202):
        if op.get("responses", {}).get(str(status)):
            return status
    return 200


async def test_every_operation_for_every_key(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    keys = {
        (holder, role): await api.key(
            *({"own": ("acme",), "sibling": ("globex",), "portfolio": ()}[holder]), role=role
        )
        for holder, role in itertools.product(HOLDERS, ROLES)
    }
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if path.startswith("/api/")
    ]
    assert len(operations) >= 12
    for path, method, op in operations:
        assert "x-required-role" in op and "x-scope" in op, f"{method} {path} has no key rule"
    maker = api.auth(await api.key("acme", role="admin"))

    async def dynamic_subscriber(number: str) -> str:
        made = await api.client.post(
            "/api/v1/tenants/acme/subscribers",
            json={"subscriber": number, "balance": "500.00"},  # pays the add-on fees
            headers=maker,
        )
        assert made.status_code == 201, made.text
        writes.append(("post", "/api/v1/tenants/{tenant}/subscribers"))
        return number

    writes: list[tuple[str, str]] = []

    # Catalog subscribers cannot be deleted or SIM-swapped; a dynamic one can.
    subscriber = await dynamic_subscriber("4915551000000")
    # A live add-on to renew.
    bought = await api.client.post(
        f"/api/v1/tenants/acme/subscribers/{subscriber}/addons", json={"addon": ADDON},
        headers=maker,
    )  # fmt: skip
    assert bought.status_code == 201, bought.text
    writes.append(("post", "/api/v1/tenants/{tenant}/subscribers/{subscriber}/addons"))
    uploaded = await api.client.post(
        "/api/v1/tenants/acme/imports",
        content="subscriber\n4915554000000\n",
        headers={**maker, "Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 202, uploaded.text
    writes.append(("post", "/api/v1/tenants/{tenant}/imports"))
    job = uploaded.json()["job_id"]
    api.state.config = msgspec.structs.replace(
        api.state.config, api=msgspec.structs.replace(api.state.config.api, imports_open_max=100)
    )
    failures = []
    for n, ((path, method, op), (holder, role)) in enumerate(itertools.product(operations, keys)):
        if method == "delete":
            subscriber_here = await dynamic_subscriber(f"4915552{n:06d}")
        else:
            subscriber_here = subscriber
        url = path.replace("{tenant}", "acme").replace("{subscriber}", subscriber_here)
        url = url.replace("{job}", job).replace("{addon}", ADDON)
        request = _body(op, n)
        request["headers"] = {**request.get("headers", {}), **api.auth(keys[(holder, role)])}
        answer = await api.client.request(method.upper(), url, **request)
        want = expected(op, holder, role)
        if method in ("post", "delete", "put", "patch") and answer.status_code < 300:
            writes.append((method, path))
        if answer.status_code != want:
            failures.append(
                f"{method.upper()} {url} {holder}/{role}: {answer.status_code} != {want} "
                f"{answer.text[:120]}"
            )
        if want == 403:
            assert "globex" not in answer.text or holder == "sibling"
    assert not failures, "\n".join(failures)
    # Every write that succeeded left one audit entry naming its key, address and the after.
    async with api.state.store.as_portfolio() as conn:
        rows = await (
            await conn.execute("SELECT tenant, actor, source, action, after FROM api_audit")
        ).fetchall()
    assert len(rows) == len(writes)
    write_paths = {path for _, path in writes}
    write_routes = {
        p
        for p, item in document["paths"].items()
        for m in item
        if m in ("post", "delete") and p.startswith("/api/")
    }
    assert write_routes <= write_paths, f"write routes never run: {write_routes - write_paths}"
    for tenant, actor, source, action, after in rows:
        assert tenant == "acme" and len(actor) == 12 and source == "203.0.113.7"
        assert action.startswith("subscriber.") and after is not None


@pytest.mark.parametrize("sibling_key", ["{t:globex:0}:acct:4917199000042", "ocs:catalog"])
async def test_tenant_redis_user_refuses_a_sibling_key(api: Api, sibling_key: str) -> None:
    ledger = await api.state.ledger("acme")
    with pytest.raises(NoPermissionError):
        await ledger.client.get(sibling_key)


async def test_tenant_store_role_sees_no_sibling_rows(api: Api) -> None:
    from ocs.api import audit

    await audit.record(api.state, tenant="globex", actor="k", source="s", action="a",
                       target="t", status=200)  # fmt: skip
    async with await api.state.tenant_store("acme") as conn:
        rows = await (await conn.execute("SELECT count(*) FROM api_audit")).fetchone()
        assert rows == (0,)
    async with api.state.store.as_portfolio() as conn:
        rows = await (await conn.execute("SELECT count(*) FROM api_audit")).fetchone()
        assert rows == (1,)


async def test_proxy_key_reaches_no_api_route_and_is_copied_for_serve(api: Api) -> None:
    """A proxy key is refused by every API operation (403), and only the usable proxy keys are
    in the Redis copy that ``ocs serve`` checks call ends against."""
    from ocs.api.keys import create_key, revoke_key, sync_proxy_keys
    from ocs.proxy_keys import ProxyKeyVerifier

    proxy, secret = await create_key(
        api.state.store, tenants=("acme",), role="proxy", expires_days=1
    )
    reader, _ = await create_key(api.state.store, tenants=("acme",), role="read", expires_days=1)
    document = (await api.client.get("/openapi.json")).json()
    for path, item in document["paths"].items():
        if not path.startswith("/api/v1/tenants/"):
            continue
        for method in item:
            url = path.replace("{tenant}", "acme").replace("{subscriber}", "4917099000042")
            url = url.replace("{job}", "imp-" + "0" * 16).replace("{addon}", ADDON)
            answer = await api.client.request(method.upper(), url, headers=api.auth(secret))
            assert answer.status_code == 403, (method, path, answer.text)
    assert await sync_proxy_keys(api.state.store, api.state.admin) == 1  # not the read key
    verifier = ProxyKeyVerifier(api.state.admin, cache_s=0, clock=api.state.clock)
    found = await verifier.verify(secret)
    assert found is not None and found.tenants == ("acme",) and found.key_id == proxy.key_id
    assert reader.key_id != found.key_id
    await revoke_key(api.state.store, proxy.key_id)
    assert await sync_proxy_keys(api.state.store, api.state.admin) == 0
    assert await verifier.verify(secret) is None
    with pytest.raises(ValueError, match="proxy key belongs to tenants"):
        await create_key(api.state.store, tenants=(), role="proxy", expires_days=1)

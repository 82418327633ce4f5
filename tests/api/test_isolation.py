"""Isolation, generated from the OpenAPI document: every operation x {own tenant, sibling tenant,
portfolio} x {read, operate, admin} key gets the expected status. A new route is in the
document, so it is in this matrix; a new request body without an example here fails the test.

Then the two layers below the API: a tenant's Redis user and store role refuse a sibling's data
even when asked directly (what a scope bug in the API would do)."""

from __future__ import annotations

import itertools
from typing import Any

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
}
HOLDERS = ("own", "sibling", "portfolio")


def _body(op: dict[str, Any], n: int) -> Any:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    ref = content["schema"]["$ref"].rsplit("/", 1)[1]
    assert ref in BODIES, f"no example body for schema {ref}: add one to BODIES"
    return BODIES[ref](n)


def expected(op: dict[str, Any], holder: str, role: str) -> int:
    scope, need = op["x-scope"], op["x-required-role"]
    reaches = (scope == "portfolio") == (holder == "portfolio") and holder != "sibling"
    if not reaches or ROLE_RANK[role] < ROLE_RANK[need]:
        return 403
    return 201 if op.get("responses", {}).get("201") else 200


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
            "/api/v1/tenants/acme/subscribers", json={"subscriber": number}, headers=maker
        )
        assert made.status_code == 201, made.text
        writes.append(("post", "/api/v1/tenants/{tenant}/subscribers"))
        return number

    writes: list[tuple[str, str]] = []

    # Catalog subscribers cannot be deleted or SIM-swapped; a dynamic one can.
    subscriber = await dynamic_subscriber("4915551000000")
    failures = []
    for n, ((path, method, op), (holder, role)) in enumerate(itertools.product(operations, keys)):
        if method == "delete":
            subscriber_here = await dynamic_subscriber(f"4915552{n:06d}")
        else:
            subscriber_here = subscriber
        url = path.replace("{tenant}", "acme").replace("{subscriber}", subscriber_here)
        answer = await api.client.request(
            method.upper(), url, json=_body(op, n), headers=api.auth(keys[(holder, role)])
        )
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

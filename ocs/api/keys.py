"""API keys: made here, shown once, kept only as their SHA-256 in the usage store (the format
and the reason for a fast hash: ``ocs.key_format``). A ``proxy`` key is a SIP proxy's: it reaches
none of the API's routes, only ``ocs serve``'s call-end / reauth endpoints of its tenants, which
check it against a copy in Redis (``ocs.proxy_keys``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from ocs import proxy_keys
from ocs.api import sql as q
from ocs.key_format import KEY_ID_PATTERN, KEY_PATTERN, key_hash, new_key
from usage.store import StoreError, UsageStore, check_tenant

Role = Literal["read", "operate", "admin", "proxy"]
Scope = Literal["portfolio", "tenant"]
ROLES: tuple[Role, ...] = ("read", "operate", "admin")  # the API's roles, least first
KEY_ROLES: tuple[Role, ...] = (*ROLES, "proxy")
# A proxy key ranks below every API role: each API route refuses it (403).
ROLE_RANK: dict[str, int] = {"proxy": -1, **{role: rank for rank, role in enumerate(ROLES)}}
EXPIRES_DAYS_MAX = 3650
LIST_LIMIT_MAX = 10_000
TENANTS_PER_KEY_MAX = 100


class KeyError_(ValueError):
    """A key request that cannot be honoured; the message says why."""


class ApiKey(msgspec.Struct, frozen=True):
    key_id: str
    scope: Scope
    tenants: tuple[str, ...]
    role: Role
    label: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def allows(self, tenant: str | None, need: Role) -> bool:
        """A tenant key reaches only its tenants' resources, a portfolio key only the portfolio
        resources (``tenant`` None); either needs at least the role ``need``."""
        if ROLE_RANK[self.role] < ROLE_RANK[need]:
            return False
        if tenant is None:
            return self.scope == "portfolio"
        return self.scope == "tenant" and tenant in self.tenants


def _row(row: tuple[Any, ...]) -> ApiKey:
    key_id, scope, tenants, role, label, created, expires, revoked = row
    return ApiKey(key_id, scope, tuple(tenants), role, label, created, expires, revoked)


async def create_key(
    store: UsageStore,
    *,
    tenants: tuple[str, ...],
    role: Role,
    expires_days: int,
    label: str = "",
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key; returns it and the whole key (shown once, never stored)."""
    if role not in ROLE_RANK:
        raise KeyError_(f"role {role!r}: expected one of {', '.join(KEY_ROLES)}")
    if role == "proxy" and not tenants:
        raise KeyError_("a proxy key belongs to tenants: give --tenant (one or more)")
    if not 1 <= expires_days <= EXPIRES_DAYS_MAX:
        raise KeyError_(f"expires: 1 to {EXPIRES_DAYS_MAX} days, got {expires_days}")
    if len(tenants) > TENANTS_PER_KEY_MAX:
        raise KeyError_(f"at most {TENANTS_PER_KEY_MAX} tenants per key")
    for tenant in tenants:
        try:
            check_tenant(tenant)
        except StoreError as exc:
            raise KeyError_(str(exc)) from None
    if len(label) > 200:
        raise KeyError_("label: at most 200 characters")
    now = now or datetime.now(UTC)
    key_id, key = new_key()
    scope: Scope = "tenant" if tenants else "portfolio"
    ordered = tuple(sorted(set(tenants)))
    expires = now + timedelta(days=expires_days)
    async with store.as_owner() as conn:
        await conn.execute(
            q.INSERT_KEY,
            {
                "key_id": key_id,
                "key_hash": key_hash(key),
                "scope": scope,
                "tenants": list(ordered),
                "role": role,
                "label": label,
                "expires_at": expires,
            },
        )
    return ApiKey(key_id, scope, ordered, role, label, now, expires, None), key


async def find_key(store: UsageStore, key: str) -> ApiKey | None:
    """The stored key ``key`` stands for (revoked or expired included), or None."""
    if not KEY_PATTERN.fullmatch(key):
        return None
    async with store.as_owner() as conn:
        row = await (await conn.execute(q.FIND_KEY, (key_hash(key),))).fetchone()
    return None if row is None else _row(row)


async def list_keys(store: UsageStore, limit: int = 1000) -> list[ApiKey]:
    async with store.as_owner() as conn:
        rows = await (await conn.execute(q.LIST_KEYS, (min(limit, LIST_LIMIT_MAX),))).fetchall()
    return [_row(row) for row in rows]


async def revoke_key(store: UsageStore, key_id: str) -> bool:
    """Revoke; False if it was revoked already. KeyError_ if there is no such key."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise KeyError_(f"key id {key_id!r}: expected 12 hex digits (see `ocs apikey list`)")
    async with store.as_owner() as conn:
        done = await (await conn.execute(q.REVOKE_KEY, (key_id,))).fetchone()
        if done is None:
            exists = await (await conn.execute(q.KEY_EXISTS, (key_id,))).fetchone()
            if exists is None:
                raise KeyError_(f"no key {key_id!r}")
    return done is not None


async def sync_proxy_keys(store: UsageStore, client: Any) -> int:
    """Copy the usable proxy keys into Redis for ``ocs serve`` (``ocs.proxy_keys``): run after
    a proxy key is made or any key revoked, and at every ``ocs api`` start (so a copy lost with
    Redis comes back). Returns how many proxy keys there are."""
    async with store.as_owner() as conn:
        rows = await (await conn.execute(q.USABLE_PROXY_KEYS)).fetchall()
    return await proxy_keys.replace_all(
        client,
        (
            (bytes(digest), proxy_keys.ProxyKey(key_id, tuple(tenants), expires.timestamp()))
            for digest, key_id, tenants, expires in rows
        ),
    )

"""API keys: made here, shown once, kept only as their SHA-256 in the usage store.

A key is ``ocs_<key id>_<secret>``: the key id (12 hex digits) is public — it names the key in
lists and in the audit log — and the secret is 32 random bytes. Why SHA-256 and not a slow
password hash: the key has 256 bits of entropy, so nobody can guess it from its hash however
fast the hash is (slow hashes protect low-entropy passwords); a fast hash keeps each request's
check one index lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from ocs.api import sql as q
from usage.store import StoreError, UsageStore, check_tenant

Role = Literal["read", "operate", "admin"]
Scope = Literal["portfolio", "tenant"]
ROLES: tuple[Role, ...] = ("read", "operate", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
KEY_PATTERN = re.compile(r"ocs_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")
KEY_ID_PATTERN = re.compile(r"[0-9a-f]{12}")
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


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key() -> tuple[str, str]:
    """(key id, whole key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"ocs_{key_id}_{secrets.token_urlsafe(32)}"


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
        raise KeyError_(f"role {role!r}: expected one of {', '.join(ROLES)}")
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

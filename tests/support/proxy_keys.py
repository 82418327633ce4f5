"""A proxy key for tests of ``ocs serve``'s call endpoints, put straight into the Redis copy that
``ocs.proxy_keys`` reads (what ``ocs apikey create --role proxy`` leads to, without PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import redis

from ocs.key_format import key_hash, new_key
from ocs.proxy_keys import PROXY_KEYS_KEY, ProxyKey


def _entry(
    tenants: tuple[str, ...], expires_in_s: float, now: float | None
) -> tuple[str, str, bytes]:
    key_id, key = new_key()
    expires = (time.time() if now is None else now) + expires_in_s
    value = msgspec.msgpack.encode(ProxyKey(key_id, tenants, expires))
    return key, key_hash(key).hex(), value


async def make_proxy_key(
    client: Any, *tenants: str, expires_in_s: float = 86400.0, now: float | None = None
) -> str:
    """A usable proxy key of ``tenants`` on an asyncio Redis client; returns the key. ``now``:
    the clock the checking server runs on (default: the wall clock)."""
    key, field, value = _entry(tenants, expires_in_s, now)
    await client.hset(PROXY_KEYS_KEY, field, value)
    return key


def make_proxy_key_sync(url: str, *tenants: str, expires_in_s: float = 86400.0) -> str:
    """The same, for a test outside an event loop (a Redis URL)."""
    key, field, value = _entry(tenants, expires_in_s, None)
    client = redis.Redis.from_url(url)
    try:
        client.hset(PROXY_KEYS_KEY, field, value)
    finally:
        client.close()
    return key

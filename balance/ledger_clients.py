"""The Redis client a tenant's ledger runs on: its own ACL user, standalone or cluster."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from balance import keys

RedisClient = aioredis.Redis | RedisCluster


def tenant_username(tenant: str) -> str:
    return f"ocs-t-{tenant}"


def make_client(
    url: str,
    tenant: str,
    password: str,
    *,
    cluster: bool,
    pool_size: int,
    timeout_s: float,
) -> RedisClient:
    """A client logged in as the tenant's user (see ``balance.tenants``); ``pool_size``
    connections at most (per node on a cluster)."""
    username = tenant_username(keys.check_tenant(tenant))
    if cluster:
        return RedisCluster.from_url(
            url,
            username=username,
            password=password,
            socket_timeout=timeout_s,
            max_connections=pool_size,
        )
    return aioredis.Redis.from_url(
        url,
        username=username,
        password=password,
        socket_timeout=timeout_s,
        max_connections=pool_size,
    )

"""Tenant isolation in Redis itself: one ACL user per tenant, allowed only its own keys.

The user may run the ledger scripts and read/ack its record streams; commands inside the
scripts are checked against the same user, so a script handed another tenant's key fails with
NOPERM. Passwords are derived from a deployment secret (HMAC-SHA256), so any process holding
the secret can open a tenant's connection without storing per-tenant passwords.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from balance import keys
from balance.ledger import tenant_username
from balance.replica_wait import supports_waitaof
from balance.scripts import ScriptSet, load_library

LEDGER_SCRIPTS = ScriptSet.load()

# Commands the charging path needs, directly or inside the scripts, and the exporter's reads of
# the tenant's record streams (XREADGROUP, XACK, XPENDING, XAUTOCLAIM, XINFO GROUPS for the
# last delivered id, and XTRIM of what is stored); nothing administrative.
TENANT_COMMANDS = (
    "ping", "hello", "auth", "client|setname", "client|id", "command", "info",
    "evalsha", "eval", "evalsha_ro", "eval_ro", "script|load", "script|exists",
    "fcall", "fcall_ro",
    "get", "set", "mget", "del", "exists", "expire", "ttl",
    "zadd", "zrem", "zrangebyscore", "zrange", "zscore", "zcard",
    "hget", "hset", "hsetnx",  # renewal state (ocs.renewal, grant.lua)
    "zscan", "hdel",  # delete.lua: the deleted subscriber's renewals leave the index
    "xadd", "xlen", "xrange", "xreadgroup", "xack", "xgroup|create", "xpending", "xautoclaim",
    "xtrim", "xinfo|groups",
    "cluster|slots", "cluster|shards", "cluster|nodes", "readonly",
    "wait",  # redis.wait_replicas: on the connection that wrote, so the tenant's own user
)  # fmt: skip
# With redis.wait_aof on a Redis that has it (>= 7.2; older ones refuse the name in ACL rules).
WAITAOF_COMMAND = "waitaof"


def tenant_password(secret: bytes, tenant: str) -> str:
    """The tenant's Redis password: HMAC-SHA256(secret, tenant), hex."""
    if len(secret) < 16:
        raise ValueError("the tenant secret must be at least 16 bytes")
    return hmac.new(secret, keys.check_tenant(tenant).encode("utf-8"), hashlib.sha256).hexdigest()


def acl_rule(tenant: str, password: str, *, waitaof: bool = False) -> list[str]:
    """The ``ACL SETUSER`` arguments for a tenant (idempotent: resets before granting);
    ``waitaof`` when the server knows WAITAOF."""
    commands = [*TENANT_COMMANDS, *([WAITAOF_COMMAND] if waitaof else [])]
    return [
        tenant_username(keys.check_tenant(tenant)),
        "reset",
        "on",
        f">{password}",
        f"~{keys.acl_key_pattern(tenant)}",
        "resetchannels",
        "-@all",
        *(f"+{command}" for command in commands),
    ]


async def provision_tenant(admin: Any, tenant: str, password: str) -> None:
    """Create or refresh the tenant's ACL user on an admin connection (every cluster node), and
    load the ledger's Functions library, which the tenant's user may call but not load."""
    await load_library(admin, LEDGER_SCRIPTS.library)
    waitaof = supports_waitaof(await server_version(admin))
    arguments = ["ACL", "SETUSER", *acl_rule(tenant, password, waitaof=waitaof)]
    if isinstance(admin, RedisCluster):
        await admin.execute_command(*arguments, target_nodes=admin.get_nodes())
    else:
        await admin.execute_command(*arguments)
    await save_acl(admin)


async def server_version(admin: Any) -> str:
    """``redis_version`` of the server (of one primary on a cluster: a cluster runs one)."""
    if isinstance(admin, RedisCluster):
        info = await admin.info("server", target_nodes=admin.get_random_node())
    else:
        info = await admin.info("server")
    return str(info.get("redis_version", "0"))


async def save_acl(admin: Any) -> bool:
    """``ACL SAVE`` where Redis runs with an ``aclfile`` (the embedded one does), so a restart
    keeps the tenant users; False where it has none (an external Redis: the ledger's repair
    provisions them again on the first refused login instead)."""
    try:
        if isinstance(admin, RedisCluster):
            await admin.execute_command("ACL", "SAVE", target_nodes=admin.get_nodes())
        else:
            await admin.execute_command("ACL", "SAVE")
    except ResponseError as exc:
        if "not configured to use an ACL file" in str(exc):
            return False
        raise
    return True


async def remove_tenant(admin: Any, tenant: str) -> None:
    arguments = ["ACL", "DELUSER", tenant_username(keys.check_tenant(tenant))]
    if isinstance(admin, RedisCluster):
        await admin.execute_command(*arguments, target_nodes=admin.get_nodes())
    else:
        await admin.execute_command(*arguments)

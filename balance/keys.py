"""Redis key layout: every key of one subscriber shares the hash tag ``{t:<tenant>:<vshard>}``.

``vshard = zlib.crc32(subscriber.encode("utf-8")) % 1024`` (CRC-32/ISO-HDLC, the zlib and
PNG polynomial): stable across processes and languages, so a subscriber's keys, its shard's
expiry index and its shard's record stream always land in one Redis Cluster slot, and a tenant
has at most 1024 record streams.

Layout under the tag ``T = {t:<tenant>:<vshard>}``:

- ``T:a:<subscriber>``  account (msgpack: balance, credit limit, state, buckets, sessions)
- ``T:op:<op_id>``      idempotency record (digest + stored result), with a TTL
- ``T:exp``             the shard's reservation expiry index (zset subscriber -> deadline)
- ``T:cdr``             the shard's record stream (usage, expiry, top-up, adjust, ... records)
- ``T:ev``              the shard's event stream (provisioning events, notifications)
- ``T:ev:dead``         the shard's dead letters (events a plug-in gave up on)
- ``T:ev:redo``         operator re-deliveries (``ocs events retry / replay``) for one plug-in
"""

from __future__ import annotations

import re
import zlib

from balance.errors import InvalidRequest

VSHARDS = 1024
TENANT_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SUBSCRIBER_BYTES_MAX = 256
OP_ID_BYTES_MAX = 512


def check_tenant(tenant: str) -> str:
    """Tenant ids become ACL key patterns, so no glob or separator characters are allowed."""
    if not TENANT_ID_RE.match(tenant):
        raise InvalidRequest(f"tenant id {tenant!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return tenant


def check_subscriber(subscriber: str) -> str:
    if not subscriber or len(subscriber.encode("utf-8")) > SUBSCRIBER_BYTES_MAX:
        raise InvalidRequest(f"subscriber id must be 1-{SUBSCRIBER_BYTES_MAX} bytes")
    return subscriber


def vshard(subscriber: str) -> int:
    return zlib.crc32(subscriber.encode("utf-8")) % VSHARDS


def shard_prefix(tenant: str, shard: int) -> str:
    return f"{{t:{tenant}:{shard}}}"


def subscriber_prefix(tenant: str, subscriber: str) -> str:
    return shard_prefix(tenant, vshard(subscriber))


def account_key(prefix: str, subscriber: str) -> str:
    return f"{prefix}:a:{subscriber}"


def op_key(prefix: str, op_id: str) -> str:
    if not op_id or len(op_id.encode("utf-8")) > OP_ID_BYTES_MAX:
        raise InvalidRequest(f"operation id must be 1-{OP_ID_BYTES_MAX} bytes")
    return f"{prefix}:op:{op_id}"


def debit_key(prefix: str, subscriber: str, ref: str) -> str:
    """An event debit's refund record (what REFUND_ACCOUNT may still give back)."""
    return f"{prefix}:dr:{subscriber}:{ref}"


def expiry_key(prefix: str) -> str:
    return f"{prefix}:exp"


def stream_key(prefix: str) -> str:
    return f"{prefix}:cdr"


def event_key(prefix: str) -> str:
    return f"{prefix}:ev"


def bucket_expiry_key(prefix: str) -> str:
    """zset "<subscriber>|<bucket id>" -> expires_at_s (lib_events.lua bucket_expiry_index)."""
    return f"{prefix}:bx"


def dead_letter_key(prefix: str) -> str:
    return f"{prefix}:ev:dead"


def redo_key(prefix: str) -> str:
    return f"{prefix}:ev:redo"


def acl_key_pattern(tenant: str) -> str:
    """The ACL key pattern of a tenant: its keys all start with its tag (``{t:<tenant>:``)."""
    return f"{{t:{check_tenant(tenant)}:*"


# -- shared buckets (balance/shared.py): a group's pool in a slot of its own ---------------------

GROUP_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def group_prefix(tenant: str, group: str) -> str:
    """The group's hash tag: under the tenant's ACL key pattern, in a slot of its own."""
    if not GROUP_ID_RE.fullmatch(group):
        raise InvalidRequest(f"group id {group!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return f"{{t:{check_tenant(tenant)}:g:{group}}}"


def pool_key(prefix: str) -> str:
    return f"{prefix}:pool"


def members_key(prefix: str) -> str:
    return f"{prefix}:m"


def pending_key(prefix: str) -> str:
    return f"{prefix}:pend"


def membership_key(tenant: str) -> str:
    """The tenant's member index: hash MSISDN -> msgpack {group, kind}. Charging servers keep
    it in memory (``ocs.charging.shared_draw``) to know, per CCR and without a Redis call,
    whether the subscriber may draw from a group; written by ``balance.shared.fill_group``.
    Under the tenant's ACL key pattern, in a slot of its own."""
    return f"{{t:{check_tenant(tenant)}:g}}:idx"

"""Shared buckets: a family or corporate group whose members draw from one pool, each up to a
per-member cap.

Where the keys live, and why two calls: a subscriber's keys are tagged by its own shard
(``{t:<tenant>:<vshard>}``, vshard from the subscriber id), so the members of one group are
spread over many Redis Cluster slots and no single script can touch the pool and every
member's account. Putting a group's members under the group's tag instead would make joining
or leaving a group a key migration and put a large corporate group in one slot. So the pool has
its own tag, ``{t:<tenant>:g:<group>}``, and a draw is two calls:

1. ``shared_draw.lua`` in the group's slot: takes ``min(asked, pool left, member's cap left)``
   atomically (Redis runs one script at a time per slot: two members drawing at once never
   overdraw the pool or a cap), stores the result under the draw's op id, and notes the draw
   in the pool's pending hash;
2. ``bucket.lua`` on the member's account: a bucket of the pool's kind with the drawn units,
   op id ``share:<op_id>``; then the pending entry is removed.

Each call is idempotent on its op id, so retrying a draw applies each once. A caller that dies
between them leaves the draw pending: ``repair`` grants every pending draw (again, idempotently)
and removes it. The member's CCRs then spend the bucket like any other with ``ccr.lua``
unchanged, so a subscriber without shared buckets pays nothing for this feature.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import msgspec

from balance import keys
from balance.errors import AccountExists, InvalidRequest
from balance.ledger import _SCRIPTS, Context, Ledger, content_digest
from balance.records import BucketUnit

MEMBERS_MAX = 1000  # shared_fill.lua's limit
# Members of all a tenant's groups a server keeps in memory; the index is read by HSCAN pages.
INDEX_MAX = 5_000_000
SCAN_COUNT = 1000


class Membership(msgspec.Struct, frozen=True, array_like=True):
    """The group a subscriber belongs to and the bucket kind its pool holds."""

    group: str
    kind: str


_MEMBERSHIP = msgspec.msgpack.Decoder(Membership)
_encode_membership = msgspec.msgpack.Encoder().encode


class Draw(msgspec.Struct, frozen=True, array_like=True):
    """What one draw took (``units`` 0: nothing) and what is left for the pool and member."""

    units: int
    kind: str
    unit: str
    expires_at_s: float
    priority: int
    pool_left: int
    member_left: int


class _Pending(msgspec.Struct, frozen=True, array_like=True):
    member: str
    units: int
    kind: str
    unit: str
    expires_at_s: float
    priority: int


_DRAW = msgspec.msgpack.Decoder(Draw)
_PENDING = msgspec.msgpack.Decoder(_Pending)


async def fill_group(
    ledger: Ledger,
    group: str,
    *,
    period: str,
    kind: str,
    unit: BucketUnit,
    amount: int,
    member_cap: int,
    members: Sequence[str],
    expires_at_s: float,
    priority: int = 10,
) -> bool:
    """(Re)fill the group's pool for ``period`` (e.g. ``2026-03``): ``amount`` units of bucket
    ``kind`` shared by ``members``, each drawing at most ``member_cap`` this period. False when
    that period was filled already (a retried fill never resets what members drew).

    An operator's step (``ocs group fill``): it maintains the member index with reads a tenant's
    ACL user is not granted (HKEYS, HMGET), so ``ledger`` is on the admin connection. Drawing
    needs only the tenant's user."""
    if not 1 <= len(members) <= MEMBERS_MAX:
        raise InvalidRequest(f"a group has 1 to {MEMBERS_MAX} members")
    for member in members:
        keys.check_subscriber(member)
    prefix = keys.group_prefix(ledger.tenant, group)
    before: list[bytes | str] = await ledger.client.hkeys(keys.members_key(prefix))
    payload = [period, kind, unit.value, amount, member_cap, expires_at_s, priority, list(members)]
    code: int = await ledger._run(
        _SCRIPTS["shared_fill"], [keys.pool_key(prefix), keys.members_key(prefix)], payload
    )
    # Indexed whatever the script answered: a retried fill also repairs an index write lost
    # after the first attempt's script (from the members the pool really has).
    now_members: list[bytes | str] = await ledger.client.hkeys(keys.members_key(prefix))
    await _index_members(ledger, group, kind, [_text(m) for m in now_members], before)
    return code == 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _index_members(
    ledger: Ledger, group: str, kind: str, members: Sequence[str], before: Sequence[bytes | str]
) -> None:
    """The member index after a fill (a second call: the index has a slot of its own): the
    pool's members point at the group; members it dropped no longer do, unless another
    group's fill has taken them since."""
    index = keys.membership_key(ledger.tenant)
    entry = _encode_membership(Membership(group, kind))
    kept = set(members)
    dropped = [_text(m) for m in before if _text(m) not in kept]
    if dropped:
        current: list[bytes | str | None] = await ledger.client.hmget(index, dropped)
        gone = [
            m for m, raw in zip(dropped, current, strict=True)
            if raw is not None and _MEMBERSHIP.decode(_bytes(raw)).group == group
        ]  # fmt: skip
        if gone:
            await ledger.client.hdel(index, *gone)
    if members:
        await ledger.client.hset(index, mapping=dict.fromkeys(members, entry))


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


async def read_memberships(client: Any, tenant: str) -> dict[str, Membership]:
    """The tenant's member index (HSCAN: never one huge reply), bounded by ``INDEX_MAX``."""
    out: dict[str, Membership] = {}
    cursor = 0
    while True:
        cursor, chunk = await client.hscan(keys.membership_key(tenant), cursor, count=SCAN_COUNT)
        for field, value in chunk.items():
            try:
                out[_text(field)] = _MEMBERSHIP.decode(_bytes(value))
            except msgspec.DecodeError:
                continue  # not written by fill_group: ignored, never a crash
        if cursor == 0 or len(out) >= INDEX_MAX:
            return out


async def draw_shared(
    ledger: Ledger,
    group: str,
    member: str,
    units: int,
    *,
    now_s: float,
    op_id: str,
    min_units: int = 0,
    context: Context = None,
) -> Draw:
    """Draw up to ``units`` for ``member`` and grant them as a bucket on its account (the two
    calls above). Retrying with the same ``op_id`` draws and grants once."""
    keys.check_subscriber(member)
    if units <= 0:
        raise InvalidRequest("a draw asks for at least one unit")
    prefix = keys.group_prefix(ledger.tenant, group)
    digest = content_digest("shared_draw", group, member, units, min_units)
    payload = [op_id, digest, member, units, min_units, now_s, ledger.idempotency_ttl_s]
    key_list = [
        keys.op_key(prefix, op_id),
        keys.pool_key(prefix),
        keys.members_key(prefix),
        keys.pending_key(prefix),
    ]
    _, raw = await ledger._run(_SCRIPTS["shared_draw"], key_list, payload)
    draw = _DRAW.decode(raw)
    if draw.units > 0:
        pending = _Pending(
            member, draw.units, draw.kind, draw.unit, draw.expires_at_s, draw.priority
        )
        await _grant(ledger, group, op_id, pending, now_s, context)
    return draw


async def _grant(
    ledger: Ledger, group: str, op_id: str, draw: _Pending, now_s: float, context: Context
) -> None:
    """The second call: the drawn units as a bucket on the member's account, then the pending
    entry removed (both idempotent: a repair may run this again)."""
    # AccountExists: granted by an earlier attempt whose idempotency record has expired since.
    with contextlib.suppress(AccountExists):
        await ledger.add_bucket(
            draw.member,
            bucket_id=f"{draw.kind}#{group}:{op_id}"[:200],
            kind=draw.kind,
            unit=BucketUnit(draw.unit),
            amount=draw.units,
            priority=draw.priority,
            expires_at_s=draw.expires_at_s,
            now_s=now_s,
            op_id=f"share:{op_id}",
            context=context,
        )
    await ledger.client.hdel(keys.pending_key(keys.group_prefix(ledger.tenant, group)), op_id)


async def repair(ledger: Ledger, group: str, *, now_s: float) -> int:
    """Grant every draw still pending (its caller died between the two calls); returns how
    many were granted here."""
    prefix = keys.group_prefix(ledger.tenant, group)
    found: dict[bytes | str, bytes | str] = await ledger.client.hgetall(keys.pending_key(prefix))
    for field, value in found.items():
        op_id = field.decode() if isinstance(field, bytes) else str(field)
        raw = value.encode() if isinstance(value, str) else value
        await _grant(ledger, group, op_id, _PENDING.decode(raw), now_s, None)
    return len(found)


async def member_drawn(ledger: Ledger, group: str, member: str) -> int:
    """Units ``member`` drew from the group's pool this period."""
    raw = await ledger.client.hget(
        keys.members_key(keys.group_prefix(ledger.tenant, group)), member
    )
    return int(raw or 0)


class Pool(msgspec.Struct, frozen=True, array_like=True):
    """A group's pool as shared_fill.lua stores it."""

    period: str
    kind: str
    unit: str
    remaining: int
    member_cap: int
    expires_at_s: float
    priority: int


_POOL = msgspec.msgpack.Decoder(Pool)


async def read_group(ledger: Ledger, group: str) -> tuple[Pool, dict[str, int], int] | None:
    """The pool, units drawn per member this period, and draws pending (None: no group)."""
    prefix = keys.group_prefix(ledger.tenant, group)
    async with ledger.client.pipeline(transaction=False) as pipe:
        pipe.get(keys.pool_key(prefix))
        pipe.hgetall(keys.members_key(prefix))
        pipe.hlen(keys.pending_key(prefix))
        raw, members, pending = await pipe.execute()
    if raw is None:
        return None
    drawn = {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in members.items()}
    return _POOL.decode(raw), drawn, int(pending)

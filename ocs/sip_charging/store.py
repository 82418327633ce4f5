"""Redis layout of SIP calls, per tenant, under the tenant's ACL key pattern.

``{t:<tenant>:sip}:call:<key>`` holds one call record (msgpack, with a TTL), and
``{t:<tenant>:sip}:due`` is the tenant's index of auto-end deadlines (zset reservation id →
epoch seconds). Both share one hash tag, so the two small scripts that change them stay in one
Redis Cluster slot, and the tag starts with ``{t:<tenant>:`` so the tenant's Redis user (see
``balance.tenants``) may touch them and no other tenant's user can.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance.access import AccessGuard
from balance.errors import LedgerUnavailable
from balance.keys import check_tenant
from balance.scripts import LuaScript, run_script
from ocs.sip_charging.records import CallRecord, decode_record, encode_record
from ocs.sip_charging.reservation import CallRef

DUE_BATCH_MAX = 100


def _script(name: str) -> LuaScript:
    body = resources.files("ocs.sip_charging").joinpath("lua", f"{name}.lua").read_text("utf-8")
    body = "#!lua\n" + body
    return LuaScript(name, body, hashlib.sha1(body.encode("utf-8")).hexdigest())


_OPEN = _script("call_open")
_SWAP = _script("call_swap")


def tag(tenant: str) -> str:
    return f"{{t:{check_tenant(tenant)}:sip}}"


def call_key(ref: CallRef) -> str:
    return f"{tag(ref.tenant)}:call:{ref.key}"


def due_key(tenant: str) -> str:
    return f"{tag(tenant)}:due"


class Stored:
    """A record with the exact bytes it was read as (what a compare-and-set compares)."""

    __slots__ = ("raw", "record")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.record: CallRecord = decode_record(raw)


class CallStore:
    """Call records of one tenant on that tenant's Redis client (the ledger's)."""

    def __init__(
        self, client: Any, tenant: str, *, record_ttl_s: int, guard: AccessGuard | None = None
    ) -> None:
        self.client = client
        self.tenant = check_tenant(tenant)
        self.record_ttl_s = record_ttl_s
        # The ledger's guard: a restarted Redis that forgot the tenant's user gets it back.
        self._guard = guard or AccessGuard()

    async def _call(
        self, what: str, make_call: Callable[[], Awaitable[Any]], *, idempotent: bool = True
    ) -> Any:
        """``idempotent``: safe to send again after a lost connection (all but ``swap``)."""
        try:
            return await self._guard.run(make_call, idempotent=idempotent)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise LedgerUnavailable(f"{what}: Redis unavailable: {exc}") from exc
        except RedisError as exc:
            raise LedgerUnavailable(f"{what}: {exc}") from exc

    async def get(self, ref: CallRef) -> Stored | None:
        raw = await self._call("call record", lambda: self.client.get(call_key(ref)))
        return None if raw is None else Stored(bytes(raw))

    async def open(self, ref: CallRef, record: CallRecord, deadline_s: int) -> Stored:
        """Store a new call (or return the one stored before: a replayed INVITE)."""
        raw = await self._call(
            "call open",
            lambda: run_script(
                self.client,
                _OPEN,
                [call_key(ref), due_key(ref.tenant)],
                [encode_record(record), deadline_s, self.record_ttl_s, ref.reservation_id],
            ),
        )
        return Stored(bytes(raw))

    async def swap(
        self, ref: CallRef, expected: Stored, record: CallRecord, deadline_s: int | None
    ) -> Stored | None:
        """Replace ``expected`` by ``record`` and move (or, with None, remove) the deadline;
        None when the stored record was not ``expected`` any more (or is gone)."""
        swapped, raw = await self._call(
            "call swap",
            lambda: run_script(
                self.client,
                _SWAP,
                [call_key(ref), due_key(ref.tenant)],
                [
                    expected.raw,
                    encode_record(record),
                    self.record_ttl_s,
                    ref.reservation_id,
                    "" if deadline_s is None else deadline_s,
                ],
            ),
            idempotent=False,  # a compare-and-set applied once would fail a second time
        )
        return Stored(bytes(raw)) if int(swapped) == 1 else None

    async def due(self, now_s: float, limit: int = DUE_BATCH_MAX) -> list[str]:
        """Reservation ids whose deadline has passed, oldest first."""
        members = await self._call(
            "due calls",
            lambda: self.client.zrangebyscore(
                due_key(self.tenant), "-inf", now_s, start=0, num=limit
            ),
        )
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    async def forget_due(self, reservation_id: str) -> None:
        await self._call(
            "due calls", lambda: self.client.zrem(due_key(self.tenant), reservation_id)
        )

    async def deadline(self, ref: CallRef) -> float | None:
        score = await self._call(
            "due calls", lambda: self.client.zscore(due_key(ref.tenant), ref.reservation_id)
        )
        return None if score is None else float(score)

"""The async ledger API: one ``Ledger`` per tenant, on that tenant's Redis ACL user.

Every method takes ``now_s`` (epoch seconds) from the caller: the scripts never read the Redis
clock for business decisions, so behaviour is reproducible and tests need no sleeping.
Every write is idempotent on an operation id; a replay returns the stored result with
``replayed=True``, the same id with other content raises ``OperationConflict``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance import keys
from balance.access import Repair
from balance.account_ops import AccountMaintenance
from balance.errors import InvalidRequest, LedgerError, LedgerUnavailable, UnknownAccount
from balance.in_flight import InFlightLimit
from balance.ledger_ccr import CreditControlOps, SubscriberKeys
from balance.ledger_clients import RedisClient, make_client, tenant_username
from balance.ledger_wire import (
    ACCOUNT_DECODER,
    DEBIT_DECODER,
    DEBIT_MANY_DECODER,
    ENCODER,
    EXPIRED_DECODER,
    REFUND_DECODER,
    SCRIPTS,
    SUMMARY_DECODER,
    Context,
    ExpiredReservation,
    content_digest,
    encode_context,
    legs_wire,
    new_op_id,
    offline_args,
    offline_many_result,
    offline_result,
    script_args,
)
from balance.lifecycle import LifecycleOps
from balance.records import (
    Account,
    DebitItem,
    DebitManyResult,
    DebitResult,
    OfflineItem,
    OfflineResult,
    OnExhaust,
    OpResult,
    RecordContext,
    RefundResult,
    StreamRecord,
    UsedLeg,
)
from balance.replica_wait import ReplicaWait
from balance.script_calls import ScriptCalls
from balance.scripts import LuaScript
from balance.streams import RecordReader

__all__ = [
    "Context",
    "ExpiredReservation",
    "Ledger",
    "RedisClient",
    "content_digest",
    "encode_context",
    "new_op_id",
    "tenant_username",
]

IDEMPOTENCY_TTL_S_DEFAULT = 3600
SESSION_IDLE_S_DEFAULT = 86400.0
SESSIONS_MAX_DEFAULT = 32
BUCKETS_MAX_DEFAULT = 64
DEBIT_ITEMS_MAX = 32  # debit_many.lua's limit: an event's MSCCs
OFFLINE_MANY_MAX = 64  # offline_many.lua's limit: records of one shard per call
IN_FLIGHT_MAX_DEFAULT = 32  # redis-py's cluster pool default per node
BALANCE_BELOW_MAX = 8  # "balance below" notification levels per tenant
BUCKET_BELOW_MAX = 4  # "bucket below N %" notification levels per tenant
EXPIRE_CONCURRENCY = 32

# Kept under their former names for the modules that read them from here.
_SCRIPTS = SCRIPTS
_ACCOUNT_DECODER = ACCOUNT_DECODER


class Ledger(CreditControlOps, AccountMaintenance, LifecycleOps):
    """Ledger operations for one tenant over one Redis client (standalone or cluster)."""

    def __init__(
        self,
        client: RedisClient,
        tenant: str,
        *,
        idempotency_ttl_s: int = IDEMPOTENCY_TTL_S_DEFAULT,
        session_idle_s: float = SESSION_IDLE_S_DEFAULT,
        sessions_max: int = SESSIONS_MAX_DEFAULT,
        buckets_max: int = BUCKETS_MAX_DEFAULT,
        in_flight_max: int = IN_FLIGHT_MAX_DEFAULT,
        waiting_max: int | None = None,
        balance_below: Sequence[int] = (),
        repair: Repair | None = None,
        replica_wait: ReplicaWait | None = None,
    ) -> None:
        """``repair`` re-provisions the tenant's ACL user and the Functions library on an admin
        connection (see ``balance.access``); without it a Redis that forgot them stays refused.
        ``replica_wait``: answers wait for replicas to have the writes (balance.replica_wait)."""
        if min(idempotency_ttl_s, sessions_max, buckets_max, in_flight_max) <= 0:
            raise InvalidRequest("ledger limits must be positive")
        self.client = client
        self.tenant = keys.check_tenant(tenant)
        self.idempotency_ttl_s = idempotency_ttl_s
        self.idempotency_ttl_default_s = idempotency_ttl_s
        self.session_idle_s = session_idle_s
        self.sessions_max = sessions_max
        self.buckets_max = buckets_max
        self._balance_below: list[Any] = []  # levels, then [bucket percents] if any
        self._balance_levels: list[int] = []
        self._bucket_percents: list[int] = []
        self.set_balance_below(balance_below)
        self._calls = ScriptCalls(
            client,
            library=SCRIPTS.library,
            in_flight_max=in_flight_max,
            waiting_max=waiting_max,
            repair=repair,
            caller_options={"replica_wait": replica_wait} if replica_wait is not None else None,
        )
        # Read by tests and callers that check the connection state.
        self._in_flight = self._calls.in_flight
        self._scripts = self._calls.caller
        self.access = self._calls.access
        self._readers: dict[tuple[str, str], RecordReader] = {}
        self._subscriber_keys: dict[str, SubscriberKeys] = {}

    def use_idempotency_window(self, seconds: int | None) -> None:
        """The tenant's catalog window (None or 0: the deployment default): how long an
        operation id is recognised, and a debit refundable. Read by every later call."""
        if seconds is not None and seconds < 0:
            raise InvalidRequest("an idempotency window must not be negative")
        self.idempotency_ttl_s = seconds or self.idempotency_ttl_default_s

    @classmethod
    def for_tenant(
        cls,
        url: str,
        tenant: str,
        password: str,
        *,
        cluster: bool = False,
        pool_size: int = 64,
        timeout_s: float = 1.0,
        **limits: Any,
    ) -> Ledger:
        """A ledger on the tenant's own ACL user (see ``balance.tenants``)."""
        client = make_client(
            url, tenant, password, cluster=cluster, pool_size=pool_size, timeout_s=timeout_s
        )
        limits.setdefault("in_flight_max", pool_size)
        return cls(client, tenant, **limits)

    def set_balance_below(self, levels: Sequence[int]) -> None:
        """The tenant's "balance below" notification levels (micro-units), sent with each CCR
        and debit; replaced when the catalog changes (no per-request lookup)."""
        if len(levels) > BALANCE_BELOW_MAX or any(level < 0 for level in levels):
            raise InvalidRequest(f"balance_below: at most {BALANCE_BELOW_MAX} levels, each >= 0")
        self._balance_levels = sorted(int(level) for level in levels)
        self._notify_list()

    def set_bucket_below(self, percents: Sequence[int]) -> None:
        """The tenant's "bucket below N % of its size" levels (whole percents, 1-99), sent with
        each CCR and debit as the last entry of the notification list (lib_events.lua
        ``bucket_levels``); empty: none, and the scripts skip the check after one type test."""
        if len(percents) > BUCKET_BELOW_MAX or any(not 0 < p < 100 for p in percents):
            raise InvalidRequest(f"bucket_below: at most {BUCKET_BELOW_MAX} percents, 1 to 99")
        self._bucket_percents = sorted({int(p) for p in percents}, reverse=True)
        self._notify_list()

    def _notify_list(self) -> None:
        levels: list[Any] = list(self._balance_levels)
        if self._bucket_percents:
            levels.append(self._bucket_percents)
        self._balance_below = levels

    def _script(self, name: str) -> LuaScript:
        return SCRIPTS[name]

    @property
    def pool(self) -> InFlightLimit:
        """The in-flight limit in front of Redis (slots in use, waiting, waits so far)."""
        return self._in_flight

    async def aclose(self) -> None:
        self._calls.close()
        await self.client.aclose()

    def close_scripts(self) -> None:
        """Close the script connection only: for a ledger on a client someone else closes."""
        self._calls.close()

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(
        self, script: LuaScript, key_list: Sequence[str], payload: Any, context: Context = None
    ) -> Any:
        return await self._run_encoded(
            script, key_list, script_args(ENCODER.encode(payload), context)
        )

    async def _run_encoded(
        self, script: LuaScript, key_list: Sequence[str], args: list[bytes | str | int]
    ) -> Any:
        return await self._calls.run(script, key_list, args)

    def _account_keys(self, subscriber: str, op_id: str) -> tuple[str, list[str]]:
        keys.check_subscriber(subscriber)
        prefix = keys.subscriber_prefix(self.tenant, subscriber)
        return prefix, [
            keys.op_key(prefix, op_id),
            keys.account_key(prefix, subscriber),
            keys.stream_key(prefix),
        ]

    async def _admin(
        self,
        script: str,
        subscriber: str,
        op_id: str | None,
        now_s: float,
        *fields: Any,
        context: Context = None,
        digest: str | None = None,
    ) -> OpResult:
        op = op_id or new_op_id()
        _, key_list = self._account_keys(subscriber, op)
        digest = digest or content_digest(script, subscriber, *fields)
        payload = [op, digest, self.tenant, subscriber, now_s, self.idempotency_ttl_s, *fields]
        replayed, raw = await self._run(SCRIPTS[script], key_list, payload, context)
        return OpResult(SUMMARY_DECODER.decode(raw), bool(replayed))

    # -- credit control -------------------------------------------------------------------------

    async def debit_event(
        self,
        subscriber: str,
        op_id: str,
        *,
        service: str,
        rating_group: int,
        legs: Sequence[UsedLeg],
        kinds: Sequence[str] = (),
        on_exhaust: OnExhaust = OnExhaust.PAYG,
        now_s: float,
        session_id: str = "",
        digest: str | None = None,
        block_kinds: Sequence[str] = (),
        refund_ref: str = "",
        context: Context = None,
    ) -> DebitResult:
        """Direct debiting: all the units or nothing (``InsufficientCredit``), with a record.

        With ``on_exhaust`` BLOCK and ``block_kinds``, only a live bucket of those kinds stops
        money from paying. ``refund_ref`` keeps what was taken, for ``refund_debit`` to give
        back (at most that) within the idempotency window."""
        if not legs:
            raise InvalidRequest("a debit needs at least one leg")
        prefix, key_list = self._account_keys(subscriber, op_id)
        if refund_ref:
            key_list.append(keys.debit_key(prefix, subscriber, refund_ref))
        fields = [
            service,
            rating_group,
            session_id,
            legs_wire(legs),
            list(kinds),
            1 if on_exhaust is OnExhaust.PAYG else 0,
        ]
        digest = digest or content_digest(
            "debit", subscriber, *fields, *([list(block_kinds)] if block_kinds else [])
        )
        # The notification levels are configuration, not request content: outside the digest.
        payload = [op_id, digest, self.tenant, subscriber, now_s, self.idempotency_ttl_s, *fields]
        payload += [list(block_kinds), self._balance_below]
        replayed, raw = await self._run(SCRIPTS["debit"], key_list, payload, context)
        return DebitResult(DEBIT_DECODER.decode(raw), bool(replayed))

    async def debit_many(
        self,
        subscriber: str,
        op_id: str,
        items: Sequence[DebitItem],
        *,
        now_s: float,
        session_id: str = "",
        digest: str | None = None,
        refund_refs: Sequence[str] = (),
        context: Context = None,
    ) -> DebitManyResult:
        """Several direct debits in one script call (an event's MSCCs, an SMS's recipients):
        each item all or nothing, in order; one idempotency record for the whole request. The
        records' op ids are ``<op_id>:<item index>``. ``AccountBlocked`` refuses them all.
        ``refund_refs`` (one per item) let a later REFUND_ACCOUNT name an item (refund_debit)."""
        if not items or len(items) > DEBIT_ITEMS_MAX:
            raise InvalidRequest(f"a debit needs 1 to {DEBIT_ITEMS_MAX} items")
        for item in items:
            if not item.legs:
                raise InvalidRequest(f"item {item.service!r} needs at least one leg")
        _, key_list = self._account_keys(subscriber, op_id)
        wire = [
            [
                item.service,
                item.rating_group,
                legs_wire(item.legs),
                list(item.kinds),
                1 if item.on_exhaust is OnExhaust.PAYG else 0,
                list(item.block_kinds),
            ]
            for item in items
        ]
        if refund_refs:
            # Each debited item keeps what it took under its reference, for ``refund_debit``.
            if len(refund_refs) != len(items):
                raise InvalidRequest("refund_refs: one reference per item, or none")
            prefix = keys.subscriber_prefix(self.tenant, subscriber)
            key_list += [keys.debit_key(prefix, subscriber, ref) for ref in refund_refs]
        digest = digest or content_digest("debit_many", subscriber, session_id, wire)
        payload = [
            op_id,
            digest,
            self.tenant,
            subscriber,
            now_s,
            self.idempotency_ttl_s,
            session_id,
            wire,
            self._balance_below,  # configuration, outside the digest
        ]
        replayed, raw = await self._run(SCRIPTS["debit_many"], key_list, payload, context)
        return DebitManyResult(DEBIT_MANY_DECODER.decode(raw), bool(replayed))

    def offline_usage(
        self,
        subscriber: str,
        op_id: str,
        *,
        service: str,
        rating_group: int,
        legs: Sequence[UsedLeg],
        kinds: Sequence[str] = (),
        on_exhaust: OnExhaust = OnExhaust.PAYG,
        block_kinds: Sequence[str] = (),
        context: RecordContext,
        usage_at_s: float,
        now_s: float,
    ) -> asyncio.Future[OfflineResult]:
        """Commit usage already consumed (an offline xDR record), with no session: bundles
        live at ``usage_at_s`` pay, then money; the rest is leakage on the record, never a
        refusal. ``UnknownAccount`` when there is no account; ``OperationConflict`` when
        ``op_id`` was applied with other content. The digest leaves ``context`` out: the same
        record found again in another file (another file:line) is a replay, not a conflict.

        Returns a future (a task), so an importer can keep hundreds in flight: calls made in
        one event-loop turn leave as one pipeline."""
        _, key_list = self._account_keys(subscriber, op_id)
        item = OfflineItem(
            subscriber, op_id, service, rating_group, tuple(legs), tuple(kinds), on_exhaust,
            tuple(block_kinds), context, usage_at_s,
        )  # fmt: skip
        args = offline_args(self.tenant, self.idempotency_ttl_s, self._balance_below, item, now_s)
        # As credit_control: at once on the lean connection, settled from a callback (no task
        # per record), so an importer can keep hundreds in flight.
        return self._calls.lean(SCRIPTS["offline"], key_list, args, offline_result)

    def offline_usage_many(
        self, items: Sequence[OfflineItem], *, now_s: float
    ) -> asyncio.Future[list[OfflineResult | LedgerError]]:
        """``offline_usage`` for up to ``OFFLINE_MANY_MAX`` records of subscribers in one
        shard (one ``keys.vshard``), in one script call: each record keeps its own op id and
        idempotency, and they apply in order. The future gives one outcome per item: its
        result, or the ledger error that refused that item alone (``UnknownAccount``,
        ``OperationConflict``)."""
        if not 0 < len(items) <= OFFLINE_MANY_MAX:
            raise InvalidRequest(f"offline_many takes 1-{OFFLINE_MANY_MAX} records")
        shard = keys.vshard(items[0].subscriber)
        key_list: list[str] = []
        args: list[bytes | str | int] = []
        for item in items:
            if keys.vshard(item.subscriber) != shard:
                raise InvalidRequest("offline_many: every record must be of one shard")
            _, item_keys = self._account_keys(item.subscriber, item.op_id)
            key_list += item_keys[:2]
            args += offline_args(
                self.tenant, self.idempotency_ttl_s, self._balance_below, item, now_s
            )
        key_list.insert(0, keys.stream_key(keys.shard_prefix(self.tenant, shard)))
        return self._calls.lean(SCRIPTS["offline_many"], key_list, args, offline_many_result)

    async def refund(
        self,
        subscriber: str,
        op_id: str,
        *,
        amount: int = 0,
        bucket_id: str = "",
        units: int = 0,
        reason: str = "refund",
        now_s: float,
        session_id: str = "",
        service: str = "",
        rating_group: int = 0,
        context: Context = None,
    ) -> OpResult:
        """REFUND_ACCOUNT: money back to the balance and/or units back to a bucket."""
        return await self._admin(
            "refund",
            subscriber,
            op_id,
            now_s,
            amount,
            bucket_id,
            units,
            reason,
            session_id,
            service,
            rating_group,
            context=context,
        )

    async def refund_debit(
        self,
        subscriber: str,
        op_id: str,
        *,
        debit_ref: str,
        units: int,
        now_s: float,
        reason: str = "REFUND_ACCOUNT",
        session_id: str = "",
        service: str = "",
        rating_group: int = 0,
        context: Context = None,
    ) -> RefundResult:
        """REFUND_ACCOUNT of the debit made with ``refund_ref=debit_ref``: ``units`` of it back
        (capped at what is left), its money and bucket units in proportion; never more than it
        took. ``NoRefundableDebit`` when there is no such debit (or nothing left of it)."""
        if units <= 0 or not debit_ref:
            raise InvalidRequest("a refund names its debit and gives back at least one unit")
        prefix, key_list = self._account_keys(subscriber, op_id)
        key_list.append(keys.debit_key(prefix, subscriber, debit_ref))
        fields = [units, reason, session_id, service, rating_group]
        digest = content_digest("refund_debit", subscriber, debit_ref, *fields)
        payload = [op_id, digest, self.tenant, subscriber, now_s, self.idempotency_ttl_s, *fields]
        replayed, raw = await self._run(SCRIPTS["refund_debit"], key_list, payload, context)
        result = REFUND_DECODER.decode(raw)
        return msgspec.structs.replace(result, replayed=bool(replayed))

    async def query(self, subscriber: str) -> Account:
        """The stored account: balances, buckets, sessions with their open reservations."""
        keys.check_subscriber(subscriber)
        prefix = keys.subscriber_prefix(self.tenant, subscriber)
        try:
            account_key = keys.account_key(prefix, subscriber)
            raw = await self.access.run(lambda: self.client.get(account_key), idempotent=True)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise LedgerUnavailable(f"query: Redis unavailable: {exc}") from exc
        if raw is None:
            raise UnknownAccount(f"no account for subscriber {subscriber!r}")
        return _ACCOUNT_DECODER.decode(bytes(raw) if isinstance(raw, bytes) else raw.encode())

    # -- reservation expiry ---------------------------------------------------------------------

    async def expire_shard(
        self, vshard: int, now_s: float, *, limit: int = 100, context: Context = None
    ) -> list[ExpiredReservation]:
        """Release the due reservations of one shard (at most ``limit`` subscribers)."""
        if not 0 <= vshard < keys.VSHARDS or limit <= 0:
            raise InvalidRequest("vshard out of range or limit not positive")
        prefix = keys.shard_prefix(self.tenant, vshard)
        raw = await self._run(
            SCRIPTS["expire"],
            [keys.expiry_key(prefix), keys.stream_key(prefix)],
            [prefix, self.tenant, now_s, limit],
            context,
        )
        return [
            ExpiredReservation(vshard, sub, session, rg, units, money)
            for sub, session, rg, units, money in EXPIRED_DECODER.decode(raw)
        ]

    async def expire_due(
        self,
        now_s: float,
        *,
        limit: int = 100,
        vshards: Iterable[int] | None = None,
        context: Context = None,
    ) -> list[ExpiredReservation]:
        """The sweeper: every shard (or the given ones), ``limit`` subscribers per shard."""
        shards = list(range(keys.VSHARDS) if vshards is None else vshards)
        released: list[ExpiredReservation] = []
        for start in range(0, len(shards), EXPIRE_CONCURRENCY):
            batch = shards[start : start + EXPIRE_CONCURRENCY]
            results = await asyncio.gather(
                *(self.expire_shard(shard, now_s, limit=limit, context=context) for shard in batch)
            )
            for result in results:
                released.extend(result)
        return released

    # -- record streams -------------------------------------------------------------------------

    def record_reader(self, group: str, consumer: str) -> RecordReader:
        reader = self._readers.get((group, consumer))
        if reader is None:
            reader = RecordReader(self.client, self.tenant, group, consumer, guard=self.access)
            self._readers[(group, consumer)] = reader
        return reader

    async def read_usage_records(
        self,
        group: str,
        consumer: str,
        *,
        vshards: Iterable[int] | None = None,
        count: int = 100,
        pending: bool = False,
    ) -> list[StreamRecord]:
        """Records of the tenant's shard streams for a consumer group (``pending``: the ones
        delivered to this consumer and not yet acknowledged, e.g. after an exporter crash)."""
        reader = self.record_reader(group, consumer)
        return await reader.read_shards(vshards, count=count, pending=pending)

    async def ack(self, group: str, records: Sequence[StreamRecord]) -> int:
        """Acknowledge exported records (they are then never delivered to the group again)."""
        reader = RecordReader(self.client, self.tenant, group, "ack", guard=self.access)
        return await reader.ack(records)

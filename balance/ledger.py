"""The async ledger API: one ``Ledger`` per tenant, on that tenant's Redis ACL user.

Every method takes ``now_s`` (epoch seconds) from the caller: the scripts never read the Redis
clock for business decisions, so behaviour is reproducible and tests need no sleeping.
Every write is idempotent on an operation id; a replay returns the stored result with
``replayed=True``, the same id with other content raises ``OperationConflict``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from balance import keys
from balance.access import AccessGuard, Repair
from balance.errors import (
    InvalidRequest,
    LedgerError,
    LedgerOverloaded,
    LedgerUnavailable,
    UnknownAccount,
    error_from_reply,
)
from balance.in_flight import InFlightLimit, QueueFull
from balance.records import (
    Account,
    AccountSummary,
    BucketUnit,
    CcrPayload,
    CcrResult,
    DebitItem,
    DebitManyPayload,
    DebitManyResult,
    DebitPayload,
    DebitResult,
    OfflineItem,
    OfflinePayload,
    OfflineResult,
    OnExhaust,
    OpResult,
    PriceTuple,
    RatingGroupRequest,
    RecordContext,
    RefundResult,
    StreamRecord,
    UsedLeg,
    price_tuple,
)
from balance.scripts import LuaScript, ScriptCaller, ScriptSet, function_missing
from balance.streams import RecordReader
from tariffs.price import Price

IDEMPOTENCY_TTL_S_DEFAULT = 3600
SESSION_IDLE_S_DEFAULT = 86400.0
SESSIONS_MAX_DEFAULT = 32
BUCKETS_MAX_DEFAULT = 64
DEBIT_ITEMS_MAX = 32  # debit_many.lua's limit: an event's MSCCs
OFFLINE_MANY_MAX = 64  # offline_many.lua's limit: records of one shard per call
IN_FLIGHT_MAX_DEFAULT = 32  # redis-py's cluster pool default per node
ITEMS_MAX = 64
BALANCE_BELOW_MAX = 8  # "balance below" notification levels per tenant
EXPIRE_CONCURRENCY = 32

_ENCODER = msgspec.msgpack.Encoder()
_CCR_DECODER = msgspec.msgpack.Decoder(CcrPayload)
_SUMMARY_DECODER = msgspec.msgpack.Decoder(AccountSummary)
_DEBIT_DECODER = msgspec.msgpack.Decoder(DebitPayload)
_DEBIT_MANY_DECODER = msgspec.msgpack.Decoder(DebitManyPayload)
_REFUND_DECODER = msgspec.msgpack.Decoder(RefundResult)
_ACCOUNT_DECODER = msgspec.msgpack.Decoder(Account)
_OFFLINE_DECODER = msgspec.msgpack.Decoder(OfflinePayload)
_EXPIRED_DECODER = msgspec.msgpack.Decoder(list[tuple[str, str, int, int, int]])

_T = TypeVar("_T")
_SCRIPTS = ScriptSet.load()

RedisClient = aioredis.Redis | RedisCluster
Context = RecordContext | bytes | None
"""A record context for the records an operation writes: the struct, or its msgpack bytes
(encode once with ``encode_context`` and reuse, e.g. for every CCR of a session)."""


def encode_context(context: RecordContext) -> bytes:
    """The context's msgpack array, as the scripts copy it onto their records."""
    return _ENCODER.encode(context)


def _script_args(encoded: bytes, context: Context) -> list[bytes | str | int]:
    """ARGV of a record-writing script: the request, then the context if there is one. The
    context travels apart from the request and its digest, so it never makes a retransmission
    look different."""
    if context is None:
        return [encoded]
    if isinstance(context, RecordContext):
        context = _ENCODER.encode(context)
    return [encoded, context]


class ExpiredReservation(msgspec.Struct, frozen=True):
    vshard: int
    subscriber: str
    session_id: str
    rating_group: int
    units_released: int
    money_released: int


def _legs(legs: Sequence[UsedLeg]) -> list[Any]:
    for leg in legs:
        if leg.units < 0:
            raise InvalidRequest(f"leg {leg.leg_key!r}: units must not be negative")
    return [[leg.leg_key, leg.units, price_tuple(leg.price)] for leg in legs]


def _ccr_body(items: Sequence[RatingGroupRequest]) -> list[Any]:
    """``{items, prices}`` as ccr.lua reads it: each distinct price once, referred to by its
    1-based position (a CCR's legs and re-reservations usually share one or two prices, and
    the script then decodes and checks each price once)."""
    prices: list[PriceTuple] = []
    index: dict[PriceTuple, int] = {}

    def ref(price: Price) -> int:
        values = price_tuple(price)
        found = index.get(values)
        if found is None:
            prices.append(values)
            found = index[values] = len(prices)
        return found

    encoded = []
    for item in items:
        legs = []
        for leg in item.used:
            if leg.units < 0:
                raise InvalidRequest(f"leg {leg.leg_key!r}: units must not be negative")
            legs.append([leg.leg_key, leg.units, ref(leg.price)])
        encoded.append(
            [
                item.rating_group,
                item.service,
                legs,
                item.requested_units,
                item.default_units,
                list(item.kinds),
                1 if item.on_exhaust is OnExhaust.PAYG else 0,
                1 if item.terminate else 0,
                item.reserve_leg_key,
                0 if item.reserve_price is None else ref(item.reserve_price),
                *([list(item.block_kinds)] if item.block_kinds else []),
            ]
        )
    return [encoded, prices]


def content_digest(*parts: Any) -> str:
    """A digest of an operation's content, to tell a replay from a reused id."""
    return hashlib.blake2b(_ENCODER.encode(parts), digest_size=16).hexdigest()


def new_op_id() -> str:
    return uuid.uuid4().hex


def _ccr_result(reply: Any) -> CcrResult:
    replayed, raw = reply
    decoded = _CCR_DECODER.decode(raw)
    return CcrResult(decoded.items, decoded.balance, decoded.held_money, bool(replayed), raw)


def _ledger_error(script: LuaScript, exc: BaseException) -> BaseException:
    """What a failed script call raises: the script's own refusal (``OCS_*`` replies) as its
    ledger error, Redis trouble as ``LedgerUnavailable``; NOPERM and anything else as is."""
    if isinstance(exc, NoPermissionError):
        return exc
    if isinstance(exc, ResponseError):
        mapped = error_from_reply(str(exc))
        return mapped if mapped is not None else LedgerUnavailable(f"{script.name}: {exc}")
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return LedgerUnavailable(f"{script.name}: Redis unavailable: {exc}")
    return exc


def _offline_many_result(reply: Any) -> list[OfflineResult | LedgerError]:
    out: list[OfflineResult | LedgerError] = []
    for status, raw in reply:
        if status == 2:
            message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            error = error_from_reply(message)
            out.append(error if error is not None else LedgerUnavailable(message))
        else:
            out.append(OfflineResult(_OFFLINE_DECODER.decode(raw), bool(status)))
    return out


def _offline_result(reply: Any) -> OfflineResult:
    replayed, raw = reply
    return OfflineResult(_OFFLINE_DECODER.decode(raw), bool(replayed))


def _copy_outcome(target: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


class Ledger:
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
    ) -> None:
        """``repair`` re-provisions the tenant's ACL user and the Functions library on an admin
        connection (see ``balance.access``); without it a Redis that forgot them stays refused."""
        if min(idempotency_ttl_s, sessions_max, buckets_max, in_flight_max) <= 0:
            raise InvalidRequest("ledger limits must be positive")
        self.client = client
        self.tenant = keys.check_tenant(tenant)
        self.idempotency_ttl_s = idempotency_ttl_s
        self.idempotency_ttl_default_s = idempotency_ttl_s
        self.session_idle_s = session_idle_s
        self.sessions_max = sessions_max
        self.buckets_max = buckets_max
        self._balance_below: list[int] = []
        self.set_balance_below(balance_below)
        # Calls beyond the connection pool wait here instead of failing in the pool
        # (redis-py's cluster pool raises when it runs out of connections).
        # Calls beyond ``waiting_max`` waiting ones are refused at once (LedgerOverloaded): a
        # server sheds load instead of queueing requests into its Redis timeout.
        self._in_flight = InFlightLimit(in_flight_max, waiting_max)
        self.access = AccessGuard(repair)
        self._scripts = ScriptCaller(
            client,
            library=_SCRIPTS.library,
            reload_library=self.access.repair if self.access.enabled else None,
        )
        self._readers: dict[tuple[str, str], RecordReader] = {}

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
        username = tenant_username(keys.check_tenant(tenant))
        client: RedisClient
        if cluster:
            client = RedisCluster.from_url(
                url,
                username=username,
                password=password,
                socket_timeout=timeout_s,
                max_connections=pool_size,
            )
        else:
            client = aioredis.Redis.from_url(
                url,
                username=username,
                password=password,
                socket_timeout=timeout_s,
                max_connections=pool_size,
            )
        limits.setdefault("in_flight_max", pool_size)
        return cls(client, tenant, **limits)

    def set_balance_below(self, levels: Sequence[int]) -> None:
        """The tenant's "balance below" notification levels (micro-units), sent with each CCR
        and debit; replaced when the catalog changes (no per-request lookup)."""
        if len(levels) > BALANCE_BELOW_MAX or any(level < 0 for level in levels):
            raise InvalidRequest(f"balance_below: at most {BALANCE_BELOW_MAX} levels, each >= 0")
        self._balance_below = sorted(int(level) for level in levels)

    @property
    def pool(self) -> InFlightLimit:
        """The in-flight limit in front of Redis (slots in use, waiting, waits so far)."""
        return self._in_flight

    async def aclose(self) -> None:
        self._scripts.close()
        await self.client.aclose()

    # -- plumbing -------------------------------------------------------------------------------

    async def _run(
        self, script: LuaScript, key_list: Sequence[str], payload: Any, context: Context = None
    ) -> Any:
        return await self._run_encoded(
            script, key_list, _script_args(_ENCODER.encode(payload), context)
        )

    async def _run_encoded(
        self, script: LuaScript, key_list: Sequence[str], args: list[bytes | str | int]
    ) -> Any:
        try:
            await self._in_flight.enter()
        except QueueFull as exc:
            raise LedgerOverloaded(f"{script.name}: overloaded: {exc}") from exc
        call = functools.partial(self._scripts.call, script, key_list, args)
        try:
            try:
                return await self.access.run(call)
            except RedisConnectionError:
                # A pooled connection died (Redis restarted, failed over). Every script is
                # idempotent on its operation id, so one retry on a fresh connection is safe:
                # if the first attempt was applied, the retry returns its stored result. The
                # fresh connection may find the tenant's user gone: ``access`` repairs it.
                return await self.access.run(call)
        except Exception as exc:
            mapped = _ledger_error(script, exc)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            self._in_flight.leave()

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
    ) -> OpResult:
        op = op_id or new_op_id()
        _, key_list = self._account_keys(subscriber, op)
        digest = content_digest(script, subscriber, *fields)
        payload = [op, digest, self.tenant, subscriber, now_s, self.idempotency_ttl_s, *fields]
        replayed, raw = await self._run(_SCRIPTS[script], key_list, payload, context)
        return OpResult(_SUMMARY_DECODER.decode(raw), bool(replayed))

    # -- credit control -------------------------------------------------------------------------

    def credit_control(
        self,
        subscriber: str,
        session_id: str,
        op_id: str,
        items: Sequence[RatingGroupRequest],
        *,
        now_s: float,
        digest: str | None = None,
        request_kind: int = 0,
        request_number: int = -1,
        context: Context = None,
    ) -> asyncio.Future[CcrResult]:
        """Commit, release and re-reserve every rating group of one CCR in one script call.

        ``op_id`` for Diameter: ``f"{Session-Id}:{CC-Request-Number}"``. ``digest`` defaults to
        a digest of the request content (deadlines excluded, since a retransmission arrives at
        another time). ``request_kind`` 1/2/3 (INITIAL/UPDATE/TERMINATION) applies RFC 4006's
        session rules (``UnknownSession`` 5002, ``SessionAlreadyOpen`` 5004) and a growing
        ``request_number`` (``RequestOutOfOrder`` 5004); 0 applies none. ``context`` goes onto
        the usage records as is (not digested: pass the session's encoded bytes).

        Not a coroutine but a future to await, for the Diameter hot path: in steady state the
        script call is written at once and the reply settles the future from a callback, with
        no task or coroutine per request. Invalid arguments raise here, synchronously."""
        if not items or len(items) > ITEMS_MAX:
            raise InvalidRequest(f"a request carries 1-{ITEMS_MAX} rating groups")
        keys.check_subscriber(subscriber)
        prefix = keys.subscriber_prefix(self.tenant, subscriber)
        key_list = [
            keys.op_key(prefix, op_id),
            keys.account_key(prefix, subscriber),
            keys.expiry_key(prefix),
            keys.stream_key(prefix),
        ]
        # The items are encoded once: their bytes are both digested and sent (deadlines go
        # apart, since a retransmission arrives later with the same content).
        items_bytes = _ENCODER.encode(_ccr_body(items))
        if digest is None:
            digest = content_digest(subscriber, session_id, msgspec.Raw(items_bytes))
        payload = [
            op_id,
            digest,
            self.tenant,
            subscriber,
            session_id,
            now_s,
            self.idempotency_ttl_s,
            self.session_idle_s,
            self.sessions_max,
            msgspec.Raw(items_bytes),
            [float(i.valid_until_s) for i in items],
            request_kind,
            request_number,
            self._balance_below,
        ]
        args = _script_args(_ENCODER.encode(payload), context)
        return self._lean_call(_SCRIPTS["ccr"], key_list, args, _ccr_result)

    def _lean_call(
        self,
        script: LuaScript,
        key_list: list[str],
        args: list[bytes | str | int],
        decode: Callable[[Any], _T],
    ) -> asyncio.Future[_T]:
        """The hot path's script call: written at once on the lean connection and settled from
        the reply's callback (no task or coroutine per request); not connected yet, waiting for
        a slot, or not the lean connection: the full path (``_run_encoded``)."""
        loop = asyncio.get_running_loop()
        if self._in_flight.try_enter():
            try:
                reply = self._scripts.start(script, key_list, args)
            except BaseException:
                self._in_flight.leave()
                raise
            if reply is not None:
                result: asyncio.Future[_T] = loop.create_future()
                reply.add_done_callback(
                    functools.partial(self._lean_replied, result, script, key_list, args, decode)
                )
                return result
            self._in_flight.leave()
        return loop.create_task(self._slow_call(script, key_list, args, decode))

    async def _slow_call(
        self,
        script: LuaScript,
        key_list: list[str],
        args: list[bytes | str | int],
        decode: Callable[[Any], _T],
    ) -> _T:
        return decode(await self._run_encoded(script, key_list, args))

    def _lean_replied(
        self,
        result: asyncio.Future[_T],
        script: LuaScript,
        key_list: list[str],
        args: list[bytes | str | int],
        decode: Callable[[Any], _T],
        reply: asyncio.Future[Any],
    ) -> None:
        self._in_flight.leave()
        if result.done():
            return  # the caller gave up (cancelled at shutdown)
        error = reply.exception() if not reply.cancelled() else RedisConnectionError("cancelled")
        if error is None:
            try:
                result.set_result(decode(reply.result()))
            except Exception as exc:
                result.set_exception(exc)
            return
        if isinstance(error, RedisConnectionError) or (
            isinstance(error, ResponseError) and function_missing(error)
        ):
            # The full path reconnects or reloads the library, then calls again: safe, the
            # script is idempotent on the operation id.
            retry = asyncio.ensure_future(self._slow_call(script, key_list, args, decode))
            retry.add_done_callback(functools.partial(_copy_outcome, result))
            return
        result.set_exception(_ledger_error(script, error))

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
            _legs(legs),
            list(kinds),
            1 if on_exhaust is OnExhaust.PAYG else 0,
        ]
        digest = digest or content_digest(
            "debit", subscriber, *fields, *([list(block_kinds)] if block_kinds else [])
        )
        # The notification levels are configuration, not request content: outside the digest.
        payload = [op_id, digest, self.tenant, subscriber, now_s, self.idempotency_ttl_s, *fields]
        payload += [list(block_kinds), self._balance_below]
        replayed, raw = await self._run(_SCRIPTS["debit"], key_list, payload, context)
        return DebitResult(_DEBIT_DECODER.decode(raw), bool(replayed))

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
                _legs(item.legs),
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
        replayed, raw = await self._run(_SCRIPTS["debit_many"], key_list, payload, context)
        return DebitManyResult(_DEBIT_MANY_DECODER.decode(raw), bool(replayed))

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
        key_list, args = self._offline_args(
            OfflineItem(subscriber, op_id, service, rating_group, tuple(legs), tuple(kinds),
                        on_exhaust, tuple(block_kinds), context, usage_at_s),
            now_s,
        )  # fmt: skip
        return self._lean_call(_SCRIPTS["offline"], key_list, args, _offline_result)

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
            item_keys, item_args = self._offline_args(item, now_s)
            key_list += item_keys[:2]
            args += item_args
        key_list.insert(0, keys.stream_key(keys.shard_prefix(self.tenant, shard)))
        return self._lean_call(_SCRIPTS["offline_many"], key_list, args, _offline_many_result)

    def _offline_args(
        self, item: OfflineItem, now_s: float
    ) -> tuple[list[str], list[bytes | str | int]]:
        """offline.lua's keys and arguments for one record."""
        subscriber, op_id, legs = item.subscriber, item.op_id, item.legs
        if not legs:
            raise InvalidRequest("offline usage needs at least one leg")
        _, key_list = self._account_keys(subscriber, op_id)
        fields = [
            item.service,
            item.rating_group,
            _legs(legs),
            list(item.kinds),
            1 if item.on_exhaust is OnExhaust.PAYG else 0,
            list(item.block_kinds),
        ]
        digest = content_digest("offline", subscriber, item.usage_at_s, *fields)
        payload = [
            op_id,
            digest,
            self.tenant,
            subscriber,
            now_s,
            self.idempotency_ttl_s,
            *fields,
            item.usage_at_s,
            self._balance_below,  # configuration, outside the digest
        ]
        # The context travels as ARGV[2] and is copied onto the record byte for byte.
        args: list[bytes | str | int] = [_ENCODER.encode(payload), _ENCODER.encode(item.context)]
        # As credit_control: at once on the lean connection, settled from a callback (no task
        # per record), so an importer can keep hundreds in flight.
        return key_list, args

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
        replayed, raw = await self._run(_SCRIPTS["refund_debit"], key_list, payload, context)
        result = _REFUND_DECODER.decode(raw)
        return msgspec.structs.replace(result, replayed=bool(replayed))

    # -- account maintenance --------------------------------------------------------------------

    async def provision_account(
        self,
        subscriber: str,
        *,
        balance: int = 0,
        credit_limit: int = 0,
        blocked: bool = False,
        now_s: float,
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        """Create the account (``AccountExists`` if there is one); credit_limit > 0 = postpaid."""
        return await self._admin(
            "provision",
            subscriber,
            op_id,
            now_s,
            balance,
            credit_limit,
            1 if blocked else 0,
            context=context,
        )

    async def topup(
        self,
        subscriber: str,
        amount: int,
        *,
        now_s: float,
        reason: str = "topup",
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        if amount <= 0:
            raise InvalidRequest("a top-up amount must be positive")
        return await self._admin("topup", subscriber, op_id, now_s, amount, reason, context=context)

    async def adjust(
        self,
        subscriber: str,
        delta: int,
        *,
        reason: str,
        now_s: float,
        credit_limit: int | None = None,
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        """Operator correction; ``credit_limit`` also sets the postpaid limit when given."""
        if not reason:
            raise InvalidRequest("an adjustment needs a reason")
        if credit_limit is not None and credit_limit < 0:
            raise InvalidRequest("a credit limit must not be negative")
        limit = -1 if credit_limit is None else credit_limit
        return await self._admin(
            "adjust", subscriber, op_id, now_s, delta, reason, limit, context=context
        )

    async def block(
        self,
        subscriber: str,
        *,
        now_s: float,
        reason: str = "",
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        return await self._admin("state", subscriber, op_id, now_s, 1, reason, context=context)

    async def unblock(
        self,
        subscriber: str,
        *,
        now_s: float,
        reason: str = "",
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        return await self._admin("state", subscriber, op_id, now_s, 0, reason, context=context)

    async def add_bucket(
        self,
        subscriber: str,
        *,
        bucket_id: str,
        kind: str,
        unit: BucketUnit,
        amount: int,
        now_s: float,
        priority: int = 0,
        expires_at_s: float = 0.0,
        fee: int = 0,
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        """Add an allowance (bundle purchase when ``fee`` > 0, charged in the same step)."""
        return await self._admin(
            "bucket",
            subscriber,
            op_id,
            now_s,
            bucket_id,
            kind,
            unit.value,
            amount,
            priority,
            float(expires_at_s),
            fee,
            self.buckets_max,
            context=context,
        )

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
            _SCRIPTS["expire"],
            [keys.expiry_key(prefix), keys.stream_key(prefix)],
            [prefix, self.tenant, now_s, limit],
            context,
        )
        return [
            ExpiredReservation(vshard, sub, session, rg, units, money)
            for sub, session, rg, units, money in _EXPIRED_DECODER.decode(raw)
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


def tenant_username(tenant: str) -> str:
    return f"ocs-t-{tenant}"

"""Credit control in the ledger: one script call (``balance/lua/ccr.lua``) commits the usage,
releases the old holds and reserves the new grants of every rating group of one CCR.

Mixed into ``balance.ledger.Ledger``, which supplies the tenant, its limits and the script calls
declared here. The Diameter hot path calls ``credit_control_then``: no task, coroutine or
future per request, and the subscriber's keys formatted once, not per CCR.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from balance import keys
from balance.continuations import settle_future
from balance.errors import InvalidRequest
from balance.ledger_wire import (
    ENCODER,
    SCRIPTS,
    Context,
    ccr_body,
    ccr_result,
    content_digest,
    script_args,
)
from balance.records import CcrResult, RatingGroupRequest
from balance.resp import encoded_keys
from balance.script_calls import ScriptCalls

ITEMS_MAX = 64  # ccr.lua's limit: rating groups of one request
SUBSCRIBER_KEYS_MAX = 65_536  # subscribers whose keys are remembered; then it starts afresh

# The script of every CCR, looked up once (``ScriptSet[name]`` is a Python-level call).
_CCR_SCRIPT = SCRIPTS["ccr"]

SubscriberKeys = tuple[str, str, str, str, bytes]
"""A subscriber's shard prefix, account key, expiry index key and record stream key, and
those three keys as a command's bulk strings (``balance.resp.encoded_keys``)."""


class CreditControlOps:
    """``credit_control`` and its hot-path form (see the module docstring)."""

    tenant: str
    idempotency_ttl_s: int
    session_idle_s: float
    sessions_max: int
    _balance_below: list[Any]
    _calls: ScriptCalls
    _subscriber_keys: dict[str, SubscriberKeys]

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

        Not a coroutine but a future to await (``credit_control_then``: a continuation
        instead). Invalid arguments raise here, synchronously."""
        result: asyncio.Future[CcrResult] = asyncio.get_running_loop().create_future()
        self.credit_control_then(
            functools.partial(settle_future, result),
            subscriber,
            session_id,
            op_id,
            items,
            now_s=now_s,
            digest=digest,
            request_kind=request_kind,
            request_number=request_number,
            context=context,
        )
        return result

    def credit_control_then(
        self,
        then: Callable[[CcrResult | None, BaseException | None], None],
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
    ) -> None:
        """``credit_control`` for the Diameter hot path: in steady state the script call is
        written at once and its reply runs ``then(result, None)`` (or ``then(None, error)``)
        from Redis' ``data_received``, with no task, coroutine or future per request."""
        if not items or len(items) > ITEMS_MAX:
            raise InvalidRequest(f"a request carries 1-{ITEMS_MAX} rating groups")
        prefix, account, expiry, stream, encoded = self._ccr_keys(subscriber)
        key_list = [keys.op_key(prefix, op_id), account, expiry, stream]
        # The items are encoded once: their bytes are both digested and sent (deadlines go
        # apart, since a retransmission arrives later with the same content).
        body, deadlines = ccr_body(items)
        items_bytes = ENCODER.encode(body)
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
            deadlines,
            request_kind,
            request_number,
            self._balance_below,
        ]
        encoded_payload = ENCODER.encode(payload)
        # script_args' cases inline (the context is the session's bytes on the hot path).
        args: list[bytes | str | int] = (
            [encoded_payload, context]
            if type(context) is bytes
            else script_args(encoded_payload, context)
        )
        self._calls.lean_then(_CCR_SCRIPT, key_list, args, ccr_result, then, encoded)

    def _ccr_keys(self, subscriber: str) -> SubscriberKeys:
        """A subscriber's shard prefix and its account, expiry and record keys, remembered
        (formatted, checked and encoded once per subscriber instead of once per CCR)."""
        found = self._subscriber_keys.get(subscriber)
        if found is None:
            keys.check_subscriber(subscriber)
            prefix = keys.subscriber_prefix(self.tenant, subscriber)
            if len(self._subscriber_keys) >= SUBSCRIBER_KEYS_MAX:
                self._subscriber_keys.clear()
            account = keys.account_key(prefix, subscriber)
            expiry, stream = keys.expiry_key(prefix), keys.stream_key(prefix)
            encoded = encoded_keys((account, expiry, stream))
            found = self._subscriber_keys[subscriber] = (prefix, account, expiry, stream, encoded)
        return found

"""Account maintenance on the ledger: provisioning, top-ups, corrections, blocking and
allowances. Each is one admin script call on the subscriber's keys, idempotent on its
operation id (a fresh one when none is given); ``balance.ledger.Ledger`` supplies the call.
"""

from __future__ import annotations

from balance.errors import InvalidRequest
from balance.ledger_base import LedgerPlumbing
from balance.ledger_wire import Context
from balance.records import BucketUnit, OpResult


class AccountMaintenance(LedgerPlumbing):
    """The account operations of ``Ledger`` (mixed in; ``_admin`` is the ledger's)."""

    # -- account maintenance --------------------------------------------------------------------

    async def provision_account(
        self,
        subscriber: str,
        *,
        balance: int = 0,
        credit_limit: int = 0,
        blocked: bool = False,
        held: bool = False,
        now_s: float,
        op_id: str | None = None,
        context: Context = None,
    ) -> OpResult:
        """Create the account (``AccountExists`` if there is one); credit_limit > 0 = postpaid.
        ``held``: in provisioning (no grants) until ``activate`` (the host MNO confirmed)."""
        return await self._admin(
            "provision",
            subscriber,
            op_id,
            now_s,
            balance,
            credit_limit,
            1 if blocked else 2 if held else 0,
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

"""Subscriber life-cycle operations of the ledger beyond money: SIM swap, deletion, the release
of a provisioning hold, and the bucket-expiry warning sweep. Each is one script call that makes
the change and writes its event to the shard's event stream (``balance/lua/sim.lua``,
``delete.lua``, ``activate.lua``, ``expiry_warn.lua``), so there is no change without its event.

Mixed into ``balance.ledger.Ledger``, which supplies the plumbing declared here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import msgspec

from balance import keys
from balance.errors import InvalidRequest
from balance.ledger_base import LedgerPlumbing
from balance.records import OpResult

IMSI_DIGITS_MAX = 15
EXPIRY_WARN_LIMIT = 256  # index members read per shard per sweep call (the rest: next call)
EXPIRY_WARN_CONCURRENCY = 32  # shards swept at once
_SWEEP_DECODER = msgspec.msgpack.Decoder(tuple[int, int])


class ExpirySweep(msgspec.Struct):
    """What one expiry-warning pass did: events written, index members dropped without one."""

    warned: int = 0
    dropped: int = 0


class LifecycleOps(LedgerPlumbing):
    """SIM swap, delete, activate and the expiry-warning sweep (see the module docstring)."""

    async def sim_swap(
        self,
        subscriber: str,
        imsi: str,
        *,
        previous_imsi: str = "",
        hold: bool = False,
        now_s: float,
        op_id: str | None = None,
        context: Any = None,
    ) -> OpResult:
        """Record the subscriber's new IMSI and write its ``sim_swapped`` event; ``hold`` keeps
        an active account in provisioning (no grants) until the host MNO confirms."""
        for name, value in (("imsi", imsi), ("previous_imsi", previous_imsi)):
            if len(value) > IMSI_DIGITS_MAX or not (value.isdigit() or value == ""):
                raise InvalidRequest(f"{name}: at most {IMSI_DIGITS_MAX} digits")
        if not imsi:
            raise InvalidRequest("imsi: must not be empty")
        # The digest covers the request (the new IMSI) only: a retried request sees the
        # previous IMSI already replaced and must still be recognised as the same operation.
        from balance.ledger import content_digest  # here: balance.ledger imports this module

        return await self._admin(
            "sim",
            subscriber,
            op_id,
            now_s,
            imsi,
            previous_imsi,
            1 if hold else 0,
            context=context,
            digest=content_digest("sim", subscriber, imsi),
        )

    async def delete_account(
        self,
        subscriber: str,
        *,
        now_s: float,
        reason: str = "",
        op_id: str | None = None,
        context: Any = None,
    ) -> OpResult:
        """Delete the subscriber (its ``deleted`` event in the same call); the account stays,
        state deleted, for its records (``UnknownAccount`` to every later operation)."""
        return await self._admin("delete", subscriber, op_id, now_s, reason, context=context)

    async def activate(
        self,
        subscriber: str,
        *,
        now_s: float,
        reason: str = "",
        op_id: str | None = None,
        context: Any = None,
    ) -> OpResult:
        """Release a provisioning hold (``activated`` event); no change, no event, when the
        account is not held."""
        return await self._admin("activate", subscriber, op_id, now_s, reason, context=context)

    async def warn_expiring_shard(self, vshard: int, now_s: float, window_s: int) -> ExpirySweep:
        """One ``bundle_expiring`` event per bucket of the shard expiring within ``window_s``
        (0: none; only index members of expired buckets are dropped), at most
        ``EXPIRY_WARN_LIMIT`` index members per call."""
        if not 0 <= vshard < keys.VSHARDS or window_s < 0:
            raise InvalidRequest("vshard out of range or window_s negative")
        prefix = keys.shard_prefix(self.tenant, vshard)
        raw = await self._run(
            self._script("expiry_warn"),
            [keys.bucket_expiry_key(prefix), keys.stream_key(prefix)],
            [prefix, self.tenant, now_s, window_s, EXPIRY_WARN_LIMIT],
        )
        warned, dropped = _SWEEP_DECODER.decode(raw)
        return ExpirySweep(warned, dropped)

    async def warn_expiring(
        self, now_s: float, window_s: int, *, vshards: Iterable[int] | None = None
    ) -> ExpirySweep:
        """The sweep over every shard (or the given ones): safe with several processes and
        after downtime (each warning leaves the index in the call that writes it)."""
        shards = list(range(keys.VSHARDS) if vshards is None else vshards)
        total = ExpirySweep()
        for start in range(0, len(shards), EXPIRY_WARN_CONCURRENCY):
            batch = shards[start : start + EXPIRY_WARN_CONCURRENCY]
            for done in await asyncio.gather(
                *(self.warn_expiring_shard(shard, now_s, window_s) for shard in batch)
            ):
                total.warned += done.warned
                total.dropped += done.dropped
        return total

"""Releasing a provisioning hold when the host MNO confirmed the subscriber.

A tenant with ``provisioning_hold: true`` creates and SIM-swaps subscribers in state
provisioning (no grants: CCRs answered 4010). Their ``created`` / ``sim_swapped`` event carries
``state: 2``; when a plug-in marked ``confirms_provisioning`` in the dispatch file answers ok
for such an event, the dispatcher releases the hold through the ledger (``activate.lua``, op id
``activate:<event id>``) before it acknowledges the event. A crash in between redelivers the
event and repeats the release, which is idempotent: a replay, or no change when the account is
no longer held.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from balance.errors import LedgerError, UnknownAccount
from balance.events import Event
from balance.ledger import Ledger

HELD_EVENT_TYPES = frozenset({"created", "sim_swapped"})
PROVISIONING_STATE = 2  # balance/lua/lib.lua PROVISIONING
TENANTS_MAX = 10_000  # ledgers kept (one per tenant seen)


def holds(event: Event) -> bool:
    """The event left its subscriber held until the host MNO confirms it."""
    return event.type in HELD_EVENT_TYPES and event.payload.get("state") == PROVISIONING_STATE


class HoldReleaser:
    """Releases holds on the dispatcher's Redis connection, one ledger per tenant."""

    def __init__(self, client: Any, clock: Callable[[], float]) -> None:
        self.client = client
        self.clock = clock
        self._ledgers: dict[str, Ledger] = {}

    def _ledger(self, tenant: str) -> Ledger:
        ledger = self._ledgers.get(tenant)
        if ledger is None:
            if len(self._ledgers) >= TENANTS_MAX:
                self.close()
            ledger = self._ledgers[tenant] = Ledger(self.client, tenant)
        return ledger

    async def release(self, event: Event, confirmed_by: str) -> str:
        """ "" when released (or nothing to release), else the error (the event is retried)."""
        try:
            await self._ledger(event.tenant).activate(
                event.subscriber,
                now_s=self.clock(),
                reason=f"confirmed by {confirmed_by}",
                op_id=f"activate:{event.id}",
            )
        except UnknownAccount:
            return ""  # deleted meanwhile: nothing is held
        except (LedgerError, RedisError) as exc:
            return f"releasing the provisioning hold: {type(exc).__name__}: {exc}"
        return ""

    def close(self) -> None:
        """Drop the ledgers' own script connections (the Redis client is the caller's)."""
        for ledger in self._ledgers.values():
            ledger.close_scripts()
        self._ledgers.clear()

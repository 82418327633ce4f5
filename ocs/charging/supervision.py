"""Tcc supervision (RFC 4006 §7, DESIGN C8): reservations of sessions that went silent.

Every grant carries a deadline (its Validity-Time plus ``tcc_grace_s``) in the ledger's expiry
index. This task asks the ledger, every ``sweep_interval_s``, to void what is due; the ledger
releases each expired reservation exactly once and writes an expiry record for it, so funds of a
gateway that died are never locked for ever. Several server processes may sweep at once: the
script's index makes a second sweep of the same reservation a no-op.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ocs.background import PeriodicTask
from ocs.charging.directory import TenantDirectory
from ocs.charging.sessions import SessionRegistry

Log = structlog.typing.FilteringBoundLogger


class TccSupervisor:
    def __init__(
        self,
        directory: TenantDirectory,
        sessions: SessionRegistry,
        *,
        interval_s: float,
        log: Log,
        clock: Callable[[], float],
        on_released: Callable[[str, int], None] | None = None,
    ) -> None:
        self.directory = directory
        self.sessions = sessions
        self.interval_s = interval_s
        self.log = log
        self.clock = clock
        self.on_released = on_released
        self._task = PeriodicTask("tcc_sweep", self.sweep_once, interval_s, log)

    async def sweep_once(self) -> int:
        """Release everything due now, for every tenant; returns how many reservations."""
        released = 0
        now = self.clock()
        for tenant in self.directory.tenant_ids:
            ledger = await self.directory.ledger(tenant)
            expired = await ledger.expire_due(now)
            for reservation in expired:
                self.sessions.ended(reservation.session_id)
                self.log.info(
                    "reservation_expired",
                    tenant=tenant,
                    subscriber=reservation.subscriber,
                    session=reservation.session_id,
                    rating_group=reservation.rating_group,
                    units=reservation.units_released,
                    money=reservation.money_released,
                )
            if expired and self.on_released is not None:
                self.on_released(tenant, len(expired))
            released += len(expired)
        return released

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

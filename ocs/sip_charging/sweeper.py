"""The auto-end sweeper: commits calls whose end event never came.

Every ``interval_s`` it reads each tenant's due index (calls past granted time + grace, and
changes that stalled half-way) and lets ``CallAccounting`` finish them. It must run before Tcc
supervision voids the same reservations, which is why reservations carry a ``valid_until_s``
``CallPolicy.expiry_margin_s`` past the auto-end deadline. Several server processes may sweep
at once: the call record's compare-and-set and the ledger's operation ids make a second sweep
of the same call a no-op.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from balance.errors import LedgerError
from ocs.background import PeriodicTask
from ocs.charging.directory import TenantDirectory
from ocs.sip_charging.accounting import CallAccounting

Log = structlog.typing.FilteringBoundLogger


class AutoEndSweeper:
    def __init__(
        self,
        directory: TenantDirectory,
        accounting: CallAccounting,
        *,
        interval_s: float,
        clock: Callable[[], float],
        log: Log,
        on_ended: Callable[[str, int], None] | None = None,
    ) -> None:
        self.on_ended = on_ended  # (tenant, calls): the exception counter of /metrics
        self.directory = directory
        self.accounting = accounting
        self.interval_s = interval_s
        self.clock = clock
        self.log = log
        self._task = PeriodicTask("sip_auto_end_sweep", self.sweep_once, self.interval_s, log)

    async def sweep_once(self) -> int:
        """Auto-end everything due now, for every tenant; returns how many calls."""
        now = self.clock()
        ended = 0
        for tenant in self.directory.tenant_ids:
            try:
                count = await self.accounting.sweep_tenant(tenant, now)
                ended += count
                if count and self.on_ended is not None:
                    self.on_ended(tenant, count)
            except LedgerError as exc:
                self.log.warning("sip_auto_end_failed", tenant=tenant, error=str(exc))
        return ended

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

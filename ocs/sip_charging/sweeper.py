"""The auto-end sweeper: commits calls whose end event never came.

Every ``interval_s`` it reads each tenant's due index (calls past granted time + grace, and
changes that stalled half-way) and lets ``CallAccounting`` finish them. It must run before Tcc
supervision voids the same reservations, which is why reservations carry a ``valid_until_s``
``CallPolicy.expiry_margin_s`` past the auto-end deadline. Several server processes may sweep
at once: the call record's compare-and-set and the ledger's operation ids make a second sweep
of the same call a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from balance.errors import LedgerError
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
    ) -> None:
        self.directory = directory
        self.accounting = accounting
        self.interval_s = interval_s
        self.clock = clock
        self.log = log
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        """Auto-end everything due now, for every tenant; returns how many calls."""
        now = self.clock()
        ended = 0
        for tenant in self.directory.tenant_ids:
            try:
                ended += await self.accounting.sweep_tenant(tenant, now)
            except LedgerError as exc:
                self.log.warning("sip_auto_end_failed", tenant=tenant, error=str(exc))
        return ended

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception as exc:  # the sweeper must outlive one bad sweep
                self.log.error("sip_auto_end_crashed", error=repr(exc))
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

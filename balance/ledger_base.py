"""What the ledger's mixed-in operation groups (``balance.account_ops``, ``balance.lifecycle``)
need of ``balance.ledger.Ledger``: declared once here, supplied by the ledger."""

from __future__ import annotations

from typing import Any

from balance.ledger_wire import Context
from balance.records import OpResult
from balance.scripts import LuaScript


class LedgerPlumbing:
    """The ledger's tenant, limits and script calls, as the operation groups see them."""

    tenant: str
    buckets_max: int

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
        """One admin script call on the subscriber's keys, idempotent on ``op_id``."""
        raise NotImplementedError  # balance.ledger.Ledger

    async def _run(
        self, script: LuaScript, key_list: list[str], payload: Any, context: Context = None
    ) -> Any:
        raise NotImplementedError  # balance.ledger.Ledger

    def _script(self, name: str) -> LuaScript:
        raise NotImplementedError  # balance.ledger.Ledger

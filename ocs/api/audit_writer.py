"""Audit rows written in groups: every write request waits until its row is committed, but the
rows of requests that arrive while one insert is in flight go together in the next transaction.

Why: a transaction costs several round trips and a commit whatever it holds (about 0.4 ms of
this process's CPU through psycopg, and a WAL flush when ``api.audit_sync_commit`` is on); at
hundreds of writes a second one transaction per request was most of a top-up's cost. Grouping
keeps the guarantee (the answer comes after the row is committed) and pays the transaction once
per group. A group holds at most ``GROUP_ROWS_MAX`` rows."""

from __future__ import annotations

import asyncio
from typing import Any

from psycopg.types.json import Jsonb

from ocs.api import sql as q
from usage.store import UsageStore

GROUP_ROWS_MAX = 256


def _params(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **entry,
        "before": None if entry["before"] is None else Jsonb(entry["before"]),
        "after": None if entry["after"] is None else Jsonb(entry["after"]),
    }


async def insert_rows(store: UsageStore, entries: list[dict[str, Any]], *, sync: bool) -> None:
    """Insert ``entries`` (the columns of ``sql.INSERT_AUDIT_ROW``) in one transaction as the
    store's owner; ``sync``: wait for the commit's WAL flush."""
    async with store.as_owner() as conn, conn.cursor() as cur:
        if not sync:
            await cur.execute(q.AUDIT_ASYNC_COMMIT)
        await cur.executemany(q.INSERT_AUDIT_ROW, [_params(entry) for entry in entries])


class AuditWriter:
    """``await write(entry)`` returns once the entry is committed (or raises what the insert
    raised). One per process (``ApiState.audit``)."""

    def __init__(self, store: UsageStore, *, sync: bool) -> None:
        self._store = store
        self._sync = sync
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, entry: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((entry, done))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="audit-writer")
        await done

    async def _drain(self) -> None:
        """Insert what is pending, group after group, until nothing is (then end: the next
        write starts a new drain)."""
        while self._pending:
            group = self._pending[:GROUP_ROWS_MAX]
            del self._pending[:GROUP_ROWS_MAX]
            try:
                await insert_rows(self._store, [entry for entry, _ in group], sync=self._sync)
            except Exception as exc:  # every waiter gets the failure (503 for a lost store)
                for _, done in group:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in group:
                    if not done.done():
                        done.set_result(None)

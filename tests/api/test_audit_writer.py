"""Audit rows of concurrent writes are committed in groups, each request answered only after its
own row is committed; a failed insert fails every waiter of its group."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ocs.api import audit, audit_writer
from tests.api.conftest import Api


async def test_concurrent_rows_share_transactions_and_all_land(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    real = audit_writer.insert_rows

    async def counted(store: Any, entries: list[dict[str, Any]], *, sync: bool) -> None:
        groups.append(len(entries))
        await real(store, entries, sync=sync)

    monkeypatch.setattr(audit_writer, "insert_rows", counted)
    await asyncio.gather(
        *(
            audit.record(
                api.state,
                tenant="acme",
                actor="k",
                source="s",
                action="a",
                target=str(n),
                status=200,
                after={"n": n},
            )
            for n in range(40)
        )
    )
    assert sum(groups) == 40 and len(groups) < 40  # grouped, none lost
    page = await audit.read(api.state, "acme", None, 100)
    assert sorted(int(e.target) for e in page.entries) == list(range(40))
    # A later write after the drain ended starts a new one.
    await audit.record(api.state, tenant="acme", actor="k", source="s", action="a",
                       target="late", status=200)  # fmt: skip
    assert (await audit.read(api.state, "acme", None, 1)).entries[0].target == "late"


async def test_a_failed_insert_fails_each_waiter(api: Api) -> None:
    bad = {"tenant": "acme", "actor": "k", "source": "s", "action": "a", "target": "t",
           "status": "not a number", "before": None, "after": None}  # fmt: skip
    good = {**bad, "status": 200}
    results = await asyncio.gather(
        api.state.audit.write(bad), api.state.audit.write(good), return_exceptions=True
    )
    assert all(isinstance(r, Exception) for r in results)  # one transaction: neither landed
    assert (await audit.read(api.state, "acme", None, 10)).entries == []
    await api.state.audit.write(good)  # the writer goes on after a failure
    assert len((await audit.read(api.state, "acme", None, 10)).entries) == 1

"""Bulk subscriber import as an asynchronous job: accepted (202) at once, worked in the
background of an ``ocs api`` process, durable in the store (``api_jobs``).

Why a job and not one long request: ten thousand rows are minutes of ledger calls on a loaded
machine, longer than a proxy or client will hold a request open. The upload is checked as a
file (``csv_import.parse``: header, limits) before it is accepted; each row is checked when it
runs and becomes either a subscriber or a reject with its line number and reason.

Why it is safe to kill the process at any point: the CSV is stored with the job; progress
(rows done, counts, the batch's rejects) is committed per batch in one transaction; a row's
ledger operation has the op id ``api:import:<job>:<line>``, so a row run again after a restart
replays rather than creating twice. A claimed job carries a lease; a process that dies leaves
the lease to run out and another (or the restarted) process takes the job over.

Each job runs as its tenant: the job's rows are read and written through the tenant's own store
role, its ledger calls on the tenant's Redis ACL user. Only claiming the next job (across
tenants) is the owner's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import structlog

from balance.errors import (
    AccountExists,
    LedgerError,
    LedgerUnavailable,
    OperationConflict,
)
from ocs.api import audit
from ocs.api import jobs_sql as q
from ocs.api.csv_import import FileRefused, ImportRow, parse
from ocs.api.errors import Conflict, FieldError, NotFound
from ocs.api.models import ImportJob, ImportReject
from ocs.api.operator import _account, _amount, _imsi, _target, _tenant
from ocs.api.state import ApiState
from ocs.subscriber_directory import DirectoryEntry, ImsiTaken, put_entry
from usage.store import StoreUnavailable

KIND = "subscriber_import"
REJECTS_SHOWN = 100  # in the job's JSON; the CSV report has every one
LIST_MAX = 100
log = structlog.get_logger("ocs.api.imports")


def new_job_id() -> str:
    return "imp-" + secrets.token_hex(8)


def _chunks(rows: list[ImportRow], size: int) -> Iterator[list[ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _job(row: tuple[Any, ...], rejects: list[ImportReject]) -> ImportJob:
    (job_id, tenant, _kind, actor, state, created, started, finished, total, done, created_n,
     rejected_n, error) = row  # fmt: skip
    return ImportJob(
        job_id=job_id,
        tenant=tenant,
        state=state,
        actor=actor,
        created_at=created,
        started_at=started,
        finished_at=finished,
        rows_total=total,
        rows_done=done,
        created=created_n,
        rejected=rejected_n,
        error=error,
        rejects=rejects,
        rejects_url=f"/api/v1/tenants/{tenant}/imports/{job_id}/rejects",
    )


async def create_job(
    state: ApiState, tenant: str, data: bytes, *, actor: str, source: str
) -> ImportJob:
    """Check the upload and store it as a queued job (as the tenant's role). FieldError
    (field ``file``) for a file refused as a whole; Conflict when the tenant has too many
    imports open already."""
    limits = state.config.api
    if len(data) > limits.import_bytes_max:
        raise FieldError(
            "file", f"{len(data)} bytes: at most {limits.import_bytes_max} (api.import_bytes_max)"
        )
    await _tenant(state, tenant)
    try:
        rows = parse(data, rows_max=limits.import_rows_max)
    except FileRefused as exc:
        raise FieldError("file", str(exc)) from None
    job_id = new_job_id()
    async with await state.tenant_store(tenant) as conn:
        (open_jobs,) = await (await conn.execute(q.OPEN_JOBS, (tenant,))).fetchone()
        if open_jobs >= limits.imports_open_max:
            raise Conflict(
                f"tenant {tenant!r} has {open_jobs} imports queued or running: at most "
                f"{limits.imports_open_max} (api.imports_open_max); wait for one to finish"
            )
        await conn.execute(
            q.INSERT_JOB,
            {"job_id": job_id, "tenant": tenant, "kind": KIND, "actor": actor,
             "source": source, "input": data, "rows_total": len(rows)},
        )  # fmt: skip
    job = await read_job(state, tenant, job_id)
    assert job is not None
    return job


async def read_job(state: ApiState, tenant: str, job_id: str) -> ImportJob | None:
    async with await state.tenant_store(tenant) as conn:
        row = await (await conn.execute(q.READ_JOB, (tenant, job_id))).fetchone()
        if row is None:
            return None
        rejects = await (await conn.execute(q.READ_REJECTS, (tenant, job_id))).fetchmany(
            REJECTS_SHOWN
        )
    return _job(row, [ImportReject(line, reason) for line, reason in rejects])


async def list_jobs(state: ApiState, tenant: str) -> list[ImportJob]:
    async with await state.tenant_store(tenant) as conn:
        rows = await (await conn.execute(q.LIST_JOBS, (tenant, LIST_MAX))).fetchall()
    return [_job(row, []) for row in rows]


async def read_rejects(state: ApiState, tenant: str, job_id: str) -> list[tuple[int, str]]:
    async with await state.tenant_store(tenant) as conn:
        if await (await conn.execute(q.READ_JOB, (tenant, job_id))).fetchone() is None:
            raise NotFound(f"unknown import job {job_id!r} in tenant {tenant!r}")
        rows = await (await conn.execute(q.READ_REJECTS, (tenant, job_id))).fetchall()
    return [(line, reason) for line, reason in rows]


class RowOutcome:
    __slots__ = ("audit_after", "reason", "subscriber")

    def __init__(self, subscriber: str, reason: str = "", audit_after: Any = None) -> None:
        self.subscriber = subscriber
        self.reason = reason  # '' when the subscriber was created (or its creation replayed)
        self.audit_after = audit_after


class ImportRunner:
    """Works queued imports, one at a time per process, in batches of ``import_batch_rows``.

    ``run_once`` takes the next due job and works it (tests call it directly, with
    ``batches_max`` standing in for a process killed mid-job); ``run_forever`` is the background
    loop of ``ocs api``, woken at once by a new upload and otherwise polling every
    ``import_poll_s`` for jobs another process left."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                worked = await self.run_once()
            except (StoreUnavailable, LedgerUnavailable) as exc:
                log.warning("import_paused", error=str(exc))  # the lease brings it back
                worked = False
            except Exception:  # the worker outlives any one failure; the next poll retries
                log.exception("import_worker_error")
                worked = False
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.state.config.api.import_poll_s)

    def _lease_until(self) -> datetime:
        return self.state.now() + timedelta(seconds=self.state.config.api.import_lease_s)

    async def run_once(self, *, batches_max: int | None = None) -> bool:
        """Work the next due job (False: none due). ``batches_max``: stop after that many
        batches, leaving the job running under its lease, as a dying process would."""
        now = self.state.now()
        async with self.state.store.as_owner() as conn:
            claimed = await (
                await conn.execute(q.CLAIM_JOB, {"now": now, "lease_until": self._lease_until()})
            ).fetchone()
        if claimed is None:
            return False
        job_id, tenant = claimed
        try:
            await self._work(tenant, job_id, batches_max)
        except (StoreUnavailable, LedgerUnavailable):
            raise  # transient: the lease runs out and the job is taken up again
        except Exception as exc:  # a bug must not stop every other tenant's imports
            log.exception("import_failed", tenant=tenant, job=job_id)
            await self._finish(tenant, job_id, "failed", f"{type(exc).__name__}: {exc}")
        return True

    async def _finish(self, tenant: str, job_id: str, outcome: str, error: str = "") -> None:
        async with await self.state.tenant_store(tenant) as conn:
            await conn.execute(
                q.FINISH,
                {"state": outcome, "now": self.state.now(), "error": error[:500],
                 "tenant": tenant, "job_id": job_id},
            )  # fmt: skip

    async def _work(self, tenant: str, job_id: str, batches_max: int | None) -> None:
        state = self.state
        async with await state.tenant_store(tenant) as conn:
            work = await (await conn.execute(q.READ_WORK, (tenant, job_id))).fetchone()
        _kind, actor, source, data, done, created, rejected = work
        try:
            rows = parse(bytes(data), rows_max=state.config.api.import_rows_max)
        except FileRefused as exc:  # checked at upload; only a changed limit gets here
            await self._finish(tenant, job_id, "failed", str(exc))
            return
        for batches, batch in enumerate(_chunks(rows[done:], state.config.api.import_batch_rows)):
            if batches_max is not None and batches >= batches_max:
                return
            outcomes = [await self._row(tenant, job_id, actor, row) for row in batch]
            done += len(batch)
            created += sum(1 for o in outcomes if not o.reason)
            rejected += sum(1 for o in outcomes if o.reason)
            async with await state.tenant_store(tenant) as conn:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        q.INSERT_REJECT,
                        [(job_id, tenant, row.line, o.reason)
                         for row, o in zip(batch, outcomes, strict=True) if o.reason],
                    )  # fmt: skip
                await conn.execute(
                    q.PROGRESS,
                    {"rows_done": done, "created": created, "rejected": rejected,
                     "lease_until": self._lease_until(), "tenant": tenant, "job_id": job_id},
                )  # fmt: skip
            await audit.record_many(
                state,
                [
                    {"tenant": tenant, "actor": actor, "source": source,
                     "action": "subscriber.create", "target": o.subscriber, "status": 201,
                     "before": None, "after": o.audit_after}
                    for o in outcomes if not o.reason
                ],
            )  # fmt: skip
        await self._finish(tenant, job_id, "done")
        await audit.record(
            state, tenant=tenant, actor=actor, source=source, action="subscriber.import.done",
            target=job_id, status=200,
            after={"rows": done, "created": created, "rejected": rejected},
        )  # fmt: skip

    async def _row(self, tenant: str, job_id: str, actor: str, row: ImportRow) -> RowOutcome:
        """Create one row's subscriber, or say why not (the reject's reason)."""
        if row.problem:
            return RowOutcome(row.subscriber, row.problem)
        state = self.state
        try:
            balance = _amount("balance", row.balance, signed=True)
            limit = _amount("credit_limit", row.credit_limit, signed=True)
            if limit < 0:
                raise FieldError("credit_limit", "must not be negative")
            await state.catalog()
            imsi = None if row.imsi is None else _imsi(state.resolver, row.imsi)
            target = await _target(state, tenant, row.subscriber, create=True)
            if target.in_catalog and imsi is not None and imsi != target.imsi:
                raise FieldError("imsi", "the catalog range fixes this subscriber's IMSI")
            ledger = await state.ledger(tenant)
            op_id = f"api:import:{job_id}:{row.line}"
            exists = await _account(state, target) is not None
            if not exists and not target.in_catalog:
                await put_entry(state.admin, target.subscriber, DirectoryEntry(tenant, imsi))
            # On an existing account only a replay of this very row (a resumed job) succeeds.
            await ledger.provision_account(
                target.subscriber,
                balance=balance,
                credit_limit=limit,
                now_s=state.clock(),
                op_id=op_id,
            )
        except (FieldError, Conflict, NotFound, ImsiTaken) as exc:
            return RowOutcome(row.subscriber, str(exc))
        except (AccountExists, OperationConflict):
            return RowOutcome(row.subscriber, f"subscriber {target.subscriber} already exists")
        except LedgerUnavailable:
            raise
        except LedgerError as exc:
            return RowOutcome(row.subscriber, f"{type(exc).__name__}: {exc}")
        return RowOutcome(
            target.subscriber,
            audit_after={"job": job_id, "line": row.line, "imsi": imsi,
                         "balance_micro": balance, "credit_limit_micro": limit},
        )  # fmt: skip

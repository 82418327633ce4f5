"""Settlement in the usage store: periods, invoice and detail import, reconciliation in SQL,
disputes, approval. The arithmetic and the state machines are ``settlement``'s (pure); this
module moves figures between them and PostgreSQL.

Every step runs in one transaction as ``ocs_settlement`` (its own pool, its own statement
timeout: a month's reconciliation is longer than any exporter query). Reports that show a
tenant's figures run as that tenant's role (``usage.settle_reports``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from settlement.disputes import DisputeEvent, DisputeState, check_accepted, dispute_step
from settlement.errors import InputFileError, NotBalancedError, SettlementError
from settlement.invoice import Invoice, InvoiceLine
from settlement.model import HostMno
from settlement.periods import PeriodEvent, PeriodState, step
from settlement.reconcile import (
    Identity,
    OurCell,
    TheirCell,
    check_rates,
    compute_identity,
    reconcile_cells,
)
from tariffs.errors import Problem
from tariffs.model import Catalog
from usage import settle_sql as q
from usage.settle_rows import (
    Clock,
    PeriodRow,
    ReconcileResult,
    copy_problem,
    identity_json,
    identity_of,
    imsi_owners,
    month_bounds,
    records_call,
    with_records,
)

DETAIL_BYTES_MAX = 16 * 1024**3
DETAIL_PROBLEMS_MAX = 100
COPY_CHUNK_BYTES = 1024 * 1024
MATCH_ROUNDS_MAX = 10_000


class SettlementStore:
    """Build with ``await SettlementStore.open(url)``."""

    def __init__(
        self, pool: AsyncConnectionPool[Any], statement_timeout_s: float, work_mem_mb: int
    ) -> None:
        self._pool = pool
        self._timeout_ms = int(statement_timeout_s * 1000)
        self._work_mem_kb = int(work_mem_mb) * 1024

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        statement_timeout_s: float = 900.0,
        connect_timeout_s: float = 10.0,
        work_mem_mb: int = 512,
    ) -> SettlementStore:
        """``work_mem_mb``: per sort/hash of a settlement query; a month's GROUP BY and the
        matching joins stay in memory instead of spilling to disk (a batch job, one at a time)."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo=url,
            min_size=1,
            max_size=4,
            open=False,
            timeout=connect_timeout_s,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(connect_timeout_s)),
                "application_name": "ocs-settle",
                "options": "-c client_min_messages=warning -c timezone=UTC",
            },
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout_s)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise SettlementError(f"cannot connect to the usage store: {exc}") from exc
        return cls(pool, statement_timeout_s, work_mem_mb)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> SettlementStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def as_role(
        self, role: str, *, repeatable: bool = False
    ) -> AsyncIterator[AsyncConnection[Any]]:
        """One transaction as ``role`` (reverted at its end), with the settlement timeout;
        ``repeatable``: every query of it sees the same rows (REPEATABLE READ)."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                if repeatable:
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
                await conn.execute(
                    sql.SQL("SET LOCAL statement_timeout = {}").format(
                        sql.Literal(self._timeout_ms)
                    )
                )
                await conn.execute(
                    sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(f"{self._work_mem_kb}kB"))
                )
                yield conn
        except PoolTimeout as exc:
            raise SettlementError(f"no usage store connection: {exc}") from exc
        except psycopg.OperationalError as exc:
            raise SettlementError(f"usage store: {exc}") from exc

    # -- periods -------------------------------------------------------------------------------

    async def open_period(self, mno: HostMno, month: str, actor: str, now_s: float) -> PeriodRow:
        start, end = month_bounds(month, mno.timezone)
        default = next((z.name for z in mno.zones if z.default), mno.home_zone)
        plmns = [(p, z.name) for z in mno.zones for p in z.plmns]
        mccs = [(m, z.name) for z in mno.zones for m in z.mccs]
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            row = await (
                await conn.execute(
                    q.OPEN_PERIOD,
                    {
                        "mno": mno.id,
                        "month": month,
                        "tz": mno.timezone,
                        "start": start,
                        "end": end,
                        "currency": mno.currency,
                        "home": mno.home_zone,
                        "default": default,
                        "plmns": [p for p, _ in plmns],
                        "plmn_zones": [z for _, z in plmns],
                        "mccs": [m for m, _ in mccs],
                        "mcc_zones": [z for _, z in mccs],
                    },
                )
            ).fetchone()
            if row is None:
                raise SettlementError(f"the period {mno.id} {month} is already open")
            await self._record(
                conn, row[0], PeriodState.OPEN, PeriodState.OPEN, "open", actor, now_s
            )
            return await self._period(conn, mno.id, month)

    async def period(self, mno_id: str, month: str) -> PeriodRow:
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            return await self._period(conn, mno_id, month, lock=False)

    async def transitions(self, period_id: int) -> list[tuple[Any, ...]]:
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            return await (await conn.execute(q.TRANSITIONS, (period_id,))).fetchall()

    async def _period(
        self, conn: AsyncConnection[Any], mno_id: str, month: str, lock: bool = True
    ) -> PeriodRow:
        row = await (
            await conn.execute(q.PERIOD if lock else q.PERIOD_READ, (mno_id, month))
        ).fetchone()
        if row is None:
            raise SettlementError(
                f"no settlement period {mno_id} {month} (open it: ocs settle open {mno_id} {month})"
            )
        pid, state, invoice_file, services, cutoff, identity = row
        return PeriodRow(
            pid, mno_id, month, PeriodState(state), invoice_file, tuple(services), cutoff,
            identity_of(identity),
        )  # fmt: skip

    async def _vacuum(self, table: str) -> None:
        """Fresh statistics after a bulk load, so the matching joins are planned as hash joins
        (autovacuum may be minutes behind), and the new rows' hint bits set now, at import,
        rather than by the first reconciliation that reads them (VACUUM skips the pages of
        earlier periods: they are all-visible). Run as the pool's login: the tables' owner."""
        async with self._pool.connection() as conn:
            await conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))

    @staticmethod
    async def _facts(conn: AsyncConnection[Any], pid: int) -> tuple[Any, ...]:
        row = await (await conn.execute(q.PERIOD_FACTS + " WHERE id = %s", (pid,))).fetchone()
        if row is None:
            raise SettlementError(f"no settlement period with id {pid}")
        return tuple(row)

    async def _record(
        self,
        conn: AsyncConnection[Any],
        pid: int,
        old: PeriodState,
        new: PeriodState,
        event: str,
        actor: str,
        now_s: float,
        note: str = "",
    ) -> None:
        await conn.execute(q.SET_STATE, (new.value, pid))
        await conn.execute(
            q.ADD_TRANSITION,
            {
                "pid": pid,
                "from": old.value,
                "to": new.value,
                "event": event,
                "actor": actor,
                "at": datetime.fromtimestamp(now_s).astimezone(),
                "note": note,
            },
        )

    async def _step(
        self,
        conn: AsyncConnection[Any],
        period: PeriodRow,
        event: PeriodEvent,
        actor: str,
        now_s: float,
        note: str = "",
    ) -> PeriodState:
        move = step(period.state, event, actor, now_s)
        await self._record(
            conn, period.id, move.from_state, move.to_state, event.value, move.actor, now_s, note
        )
        return move.to_state

    # -- imports -------------------------------------------------------------------------------

    async def import_invoice(
        self, mno: HostMno, month: str, invoice: Invoice, actor: str, now_s: float
    ) -> PeriodRow:
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno.id, month)
            step(period.state, PeriodEvent.IMPORT_INVOICE, actor, now_s)  # refuse before work
            await conn.execute(q.DELETE_INVOICE, (period.id,))
            async with conn.cursor() as cur, cur.copy(q.COPY_INVOICE) as copy:
                for line in invoice.lines:
                    await copy.write_row(
                        (period.id, line.line, line.day, line.service, line.zone,
                         line.quantity, line.amount)
                    )  # fmt: skip
            await conn.execute(q.SET_INVOICE_FILE, (invoice.file, period.id))
            note = f"{invoice.file}: {len(invoice.lines)} lines, total {invoice.total}"
            await self._step(conn, period, PeriodEvent.IMPORT_INVOICE, actor, now_s, note)
            return await self._period(conn, mno.id, month)

    async def import_detail(
        self, mno: HostMno, month: str, path: str | Path, actor: str, now_s: float
    ) -> int:
        """Load the MNO's record-level detail file by COPY, checked field by field in SQL;
        a bad file is refused whole with ``file:line`` problems. Returns the record count."""
        file = str(path)
        source = Path(path)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise InputFileError([Problem(file, 0, "(file)", f"cannot read: {exc}")]) from None
        if size > DETAIL_BYTES_MAX:
            raise InputFileError([Problem(file, 0, "(file)", f"larger than {DETAIL_BYTES_MAX}")])
        with source.open("rb") as handle:
            header = handle.readline().decode("utf-8", "replace").strip().split(",")
        if [h.strip() for h in header] != list(q.DETAIL_COLUMNS):
            raise InputFileError(
                [Problem(file, 1, "(header)", f"expected {','.join(q.DETAIL_COLUMNS)}")]
            )
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno.id, month)
            step(period.state, PeriodEvent.IMPORT_DETAIL, actor, now_s)
            await conn.execute(q.CREATE_DETAIL_STAGE)
            try:
                async with conn.cursor() as cur, cur.copy(q.COPY_DETAIL) as copy:
                    with source.open("rb") as handle:
                        while chunk := handle.read(COPY_CHUNK_BYTES):
                            await copy.write(chunk)
            except psycopg.errors.DataError as exc:  # a row COPY itself cannot split
                raise InputFileError([copy_problem(file, exc)]) from None
            bad = await (
                await conn.execute(
                    q.DETAIL_PROBLEMS,
                    {
                        "services": list(mno.services),
                        "units": list(mno.services.values()),
                        "zones": [z.name for z in mno.zones],
                        "currency": mno.currency,
                        "limit": DETAIL_PROBLEMS_MAX,
                    },
                )
            ).fetchall()
            dupes = await (
                await conn.execute(q.DETAIL_DUPLICATE_IDS, {"limit": DETAIL_PROBLEMS_MAX})
            ).fetchall()
            problems = [Problem(file, int(line), field, msg) for line, field, msg in bad]
            problems += [
                Problem(file, int(last), "record_id", f"{ref!r} is also at line {first}")
                for first, last, ref in dupes
            ]
            if problems:
                problems.sort(key=lambda p: (p.line, p.field))
                raise InputFileError(problems[:DETAIL_PROBLEMS_MAX])
            await conn.execute(q.DELETE_DETAIL, (period.id,))
            cur = await conn.execute(q.INSERT_DETAIL, {"pid": period.id, "tz": mno.timezone})
            count = max(cur.rowcount, 0)
            services = await (
                await conn.execute(q.SET_DETAIL_SERVICES, {"pid": period.id})
            ).fetchone()
            covered = ",".join(services[0]) if services else ""
            note = f"{file}: {count} records ({covered})"
            await self._step(conn, period, PeriodEvent.IMPORT_DETAIL, actor, now_s, note)
        await self._vacuum("settlement_detail_records")
        return count

    # -- reconciliation ------------------------------------------------------------------------

    async def reconcile(
        self, mno: HostMno, month: str, tenants: Catalog, actor: str, now_s: float
    ) -> ReconcileResult:
        # one snapshot for every scan below: the cells and the matched records are the same rows
        async with self.as_role(q.SETTLEMENT_ROLE, repeatable=True) as conn:
            period = await self._period(conn, mno.id, month)
            step(period.state, PeriodEvent.RECONCILE, actor, now_s)
            pid = period.id
            covered = list(period.detail_services)
            steps: dict[str, float] = {}
            clock = Clock(steps)
            await conn.execute(q.SET_CUTOFF, (pid,))
            await self._run(conn, q.CLEAR_RESULTS, {"pid": pid})
            clock.lap("clear")
            records_sql = records_call(await self._facts(conn, pid))
            await conn.execute(with_records(q.SNAPSHOT, records_sql), {"covered": covered})
            clock.lap("snapshot")
            await conn.execute(q.CREATE_CELLS)
            clock.lap("cells_sql")
            await conn.execute(q.ALLOCATE, {"pid": pid})
            counted = await (await conn.execute(q.RECORD_COUNT)).fetchone()
            records = int(counted[0]) if counted else 0
            clock.lap("allocate")
            ours = [
                OurCell(t, d, s, z, int(qty), int(amt))
                for t, d, s, z, qty, amt in await (
                    await conn.execute(q.OUR_CELLS, {"covered": covered})
                ).fetchall()
            ]
            invoice = await self._invoice(conn, period)
            theirs = [
                TheirCell(d, s, z, int(qty), int(amt))
                for d, s, z, qty, amt in await (
                    await conn.execute(q.DETAIL_CELLS, {"pid": pid})
                ).fetchall()
            ]
            cells = reconcile_cells(mno, ours, invoice, frozenset(covered), theirs)
            rates = check_rates(mno, invoice)
            rows = [
                (pid, d.level, d.kind.value, d.owner, d.day, d.service, d.zone, d.our_quantity,
                 d.their_quantity, d.our_amount, d.their_amount, d.delta, d.disputable, d.evidence)
                for d in cells
            ] + [
                (pid, "rate", "price_mismatch", "", r.day, r.service, r.zone, r.quantity,
                 r.quantity, r.expected, r.invoiced, 0, False,
                 f"{invoice.file}:{r.line} invoiced {r.invoiced}, price list gives {r.expected}")
                for r in rates
            ]  # fmt: skip
            async with conn.cursor() as c:
                await c.executemany(q.INSERT_DISCREPANCY, rows)
            clock.lap("cells")
            rounds = 0
            if covered:
                rounds = await self._match(conn, pid, mno, tenants, clock)
            identity = await self._identity(conn, pid)
            clock.lap("identity")
            await conn.execute(q.SET_IDENTITY, (identity_json(identity), pid))
            await self._step(conn, period, PeriodEvent.RECONCILE, actor, now_s, identity.describe())
            summary = [
                (o, lvl, k, bool(over), int(n), int(total))
                for o, lvl, k, over, n, total in await (
                    await conn.execute(q.EXCEPTIONS_SUMMARY, (pid,))
                ).fetchall()
            ]
            return ReconcileResult(
                await self._period(conn, mno.id, month), identity, records, len(rates), rounds,
                summary, steps,
            )  # fmt: skip

    @staticmethod
    async def _run(
        conn: AsyncConnection[Any], statements: tuple[str, ...], params: dict[str, Any]
    ) -> None:
        for statement in statements:
            names = set(re.findall(r"%\((\w+)\)s", statement))
            values = {k: v for k, v in params.items() if k in names}
            if "{records}" in statement:
                await conn.execute(with_records(statement, params["records"]), values)
            else:
                await conn.execute(statement, values)

    async def _invoice(self, conn: AsyncConnection[Any], period: PeriodRow) -> Invoice:
        lines = await (await conn.execute(q.INVOICE_LINES, (period.id,))).fetchall()
        return Invoice(
            period.invoice_file,
            tuple(InvoiceLine(int(n), d, s, z, int(qty), int(a)) for n, d, s, z, qty, a in lines),
        )

    async def _match(
        self, conn: AsyncConnection[Any], pid: int, mno: HostMno, tenants: Catalog, clock: Clock
    ) -> int:
        tol = {s: mno.tolerance(s) for s in mno.services}
        await self._run(
            conn,
            q.MATCH_SETUP,
            {
                "tol_services": list(tol),
                "tol_qa": [t.quantity_absolute for t in tol.values()],
                "tol_qp": [t.quantity_relative_ppm for t in tol.values()],
                "tol_ma": [t.money_absolute for t in tol.values()],
                "tol_mp": [t.money_relative_ppm for t in tol.values()],
            },
        )
        clock.lap("match_setup")
        await conn.execute(q.MATCH_KEYS, {"pid": pid})
        clock.lap("match_keys")
        await self._run(conn, q.MATCH_LEFTOVERS, {"pid": pid})
        clock.lap("match_leftovers")
        rounds = 0
        while True:
            row = await (
                await conn.execute(q.MATCH_ROUND, {"window": mno.matching.start_s})
            ).fetchone()
            rounds += 1
            if row is None or int(row[0]) == 0:
                break
            if rounds >= MATCH_ROUNDS_MAX:
                raise SettlementError(f"record matching did not settle in {rounds} rounds")
        clock.lap("match_rounds")
        await self._run(conn, q.MATCH_RESULTS, {"pid": pid, **imsi_owners(tenants)})
        clock.lap("match_results")
        return rounds

    async def _identity(self, conn: AsyncConnection[Any], pid: int) -> Identity:
        total = await (await conn.execute(q.INVOICE_TOTAL, (pid,))).fetchone()
        allocated = await (await conn.execute(q.ALLOCATED, (pid,))).fetchall()
        differences = await (await conn.execute(q.DIFFERENCES, (pid,))).fetchall()
        return compute_identity(
            int(total[0]) if total else 0,
            {t: int(a) for t, a in allocated},
            [(o, bool(over), int(d)) for o, over, d in differences],
        )

    async def exceptions(
        self, mno_id: str, month: str, owner: str | None = None, kind: str | None = None,
        every: bool = False, limit: int = 50,
    ) -> tuple[PeriodRow, list[tuple[Any, ...]], list[tuple[Any, ...]]]:  # fmt: skip
        """The period, its discrepancy summary, and the largest discrepancies (over tolerance
        unless ``every``), optionally of one owner ("" = unallocated) and kind."""
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno_id, month, lock=False)
            summary = await (await conn.execute(q.EXCEPTIONS_SUMMARY, (period.id,))).fetchall()
            rows = await (
                await conn.execute(
                    q.EXCEPTIONS_LIST,
                    {"pid": period.id, "owner": owner, "kind": kind, "all": every, "limit": limit},
                )
            ).fetchall()
            return period, summary, rows

    # -- disputes ------------------------------------------------------------------------------

    async def raise_disputes(
        self, mno_id: str, month: str, actor: str, now_s: float
    ) -> list[tuple[int, str, str, int, int]]:
        """One dispute per (owner, kind) whose over-tolerance differences the MNO invoiced
        above our records; returns (id, owner, kind, records, claimed) of those created."""
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno_id, month)
            step(period.state, PeriodEvent.RAISE_DISPUTE, actor, now_s)
            groups = await (await conn.execute(q.DISPUTABLE_GROUPS, (period.id,))).fetchall()
            at = datetime.fromtimestamp(now_s).astimezone()
            created: list[tuple[int, str, str, int, int]] = []
            for owner, kind, count, claimed in sorted(groups):
                if int(claimed) <= 0:
                    continue  # the MNO invoiced less: reported, not disputed
                params = {
                    "pid": period.id, "owner": owner, "kind": kind, "records": int(count),
                    "claimed": int(claimed), "at": at,
                }  # fmt: skip
                row = await (await conn.execute(q.INSERT_DISPUTE, params)).fetchone()
                if row is None:
                    continue
                await conn.execute(q.LINK_DISPUTE, {**params, "id": row[0]})
                await conn.execute(
                    q.ADD_DISPUTE_EVENT,
                    {"id": row[0], "from": "", "to": "open", "actor": actor, "at": at, "note": ""},
                )
                created.append((int(row[0]), owner, kind, int(count), int(claimed)))
            if not created:
                raise SettlementError(
                    "nothing to dispute: no difference over tolerance where the MNO invoiced "
                    "more than our records (or every one is disputed already)"
                )
            await self._step(
                conn, period, PeriodEvent.RAISE_DISPUTE, actor, now_s, f"{len(created)} disputes"
            )
            return created

    async def dispute(
        self, dispute_id: int, event: DisputeEvent, actor: str, now_s: float,
        accepted: int | None = None, note: str = "",
    ) -> DisputeState:  # fmt: skip
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            row = await (await conn.execute(q.DISPUTE, (dispute_id,))).fetchone()
            if row is None:
                raise SettlementError(f"no dispute {dispute_id}")
            _id, _pid, _owner, _kind, _records, claimed, was_accepted, state, _mno, _month = row
            new = dispute_step(DisputeState(state), event)
            amount = was_accepted
            if event is DisputeEvent.ACCEPT:
                try:
                    amount = check_accepted(
                        int(claimed), int(claimed if accepted is None else accepted)
                    )
                except ValueError as exc:
                    raise SettlementError(str(exc)) from None
            elif accepted is not None:
                raise SettlementError("an amount goes with accept only")
            await conn.execute(q.SET_DISPUTE, (new.value, amount, dispute_id))
            await conn.execute(
                q.ADD_DISPUTE_EVENT,
                {
                    "id": dispute_id, "from": state, "to": new.value, "actor": actor,
                    "at": datetime.fromtimestamp(now_s).astimezone(), "note": note,
                },
            )  # fmt: skip
            return new

    async def disputes(self, mno_id: str, month: str) -> list[tuple[Any, ...]]:
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno_id, month, lock=False)
            return await (await conn.execute(q.DISPUTES_OF_PERIOD, (period.id,))).fetchall()

    async def dispute_evidence(self, dispute_id: int) -> list[tuple[Any, ...]]:
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            return await (await conn.execute(q.DISPUTE_EVIDENCE, (dispute_id,))).fetchall()

    # -- approval and close --------------------------------------------------------------------

    async def approve(self, mno_id: str, month: str, actor: str, now_s: float) -> Identity:
        """Refused unless the identity holds to the micro-unit on the stored figures and the
        period's records are still exactly those reconciled."""
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno_id, month)
            step(period.state, PeriodEvent.APPROVE, actor, now_s)
            identity = await self._identity(conn, period.id)
            if not identity.balanced:
                raise NotBalancedError(
                    f"{mno_id} {month} does not add up, approval refused: {identity.describe()}"
                )
            records_sql = records_call(await self._facts(conn, period.id))
            now = await (
                await conn.execute(with_records(q.RECHECK_ALLOCATION, records_sql))
            ).fetchall()
            stored = await (await conn.execute(q.STORED_ALLOCATION, (period.id,))).fetchall()
            if [tuple(r) for r in now] != [tuple(r) for r in stored]:
                raise NotBalancedError(
                    f"{mno_id} {month}: the period's records changed since reconciliation "
                    "(a late commit); reconcile again before approving"
                )
            await self._step(conn, period, PeriodEvent.APPROVE, actor, now_s, identity.describe())
            return identity

    async def close_period(self, mno_id: str, month: str, actor: str, now_s: float) -> PeriodRow:
        async with self.as_role(q.SETTLEMENT_ROLE) as conn:
            period = await self._period(conn, mno_id, month)
            await self._step(conn, period, PeriodEvent.CLOSE, actor, now_s)
            return await self._period(conn, mno_id, month)

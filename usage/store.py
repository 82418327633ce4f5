"""The async API of the usage store (PostgreSQL through psycopg 3 and psycopg_pool).

The pool's login is the schema owner. Every data query runs inside a transaction that first does
``SET LOCAL ROLE`` to the narrowest role for the job: ``ocs_writer`` for batches (insert-only),
``ocs_t_<tenant>`` for a tenant's reads (row-level security shows it its own rows only),
``ocs_portfolio`` for cross-tenant reads. The role reverts at the end of the transaction, so a
pooled connection never carries one caller's role into the next. A query that forgets its
``WHERE tenant =`` still cannot see a sibling's rows: the database filters them.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from usage import sql as q
from usage.row import UsageRow

WRITER_ROLE = "ocs_writer"
PORTFOLIO_ROLE = "ocs_portfolio"
TENANT_GROUP_ROLE = "ocs_tenant"
TENANT_ROLE_PREFIX = "ocs_t_"
# The catalog's tenant ids (tariffs/loader.py); anything else is refused before any SQL.
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ROLE_NAME_BYTES_MAX = 63  # PostgreSQL's NAMEDATALEN - 1
BATCH_ROWS_MAX = 100_000
EXPORT_CHUNK_ROWS = 5_000
TIME_MIN = datetime(1, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9999, 12, 31, tzinfo=UTC)


class StoreError(RuntimeError):
    """The store refused or failed an operation; the message says which and why."""


class StoreUnavailable(StoreError):
    """PostgreSQL cannot be reached (down, wrong URL, refused login)."""


class UnknownTenant(StoreError):
    """No role exists for this tenant: nothing was ever stored for it (or it is misspelt)."""


class UsageTotals(msgspec.Struct, frozen=True):
    """Counts and sums of a tenant's records in a period (money in micro-units)."""

    count: int
    retail: int
    wholesale: int
    leakage_money: int
    money_delta: int
    units: int


class TenantInfo(msgspec.Struct, frozen=True):
    tenant: str
    role: str
    retention_months: int | None  # None: the deployment's default


def check_tenant(tenant: str) -> str:
    if not TENANT_ID.fullmatch(tenant):
        raise StoreError(f"tenant {tenant!r}: expected 1-63 of [a-z0-9_-], starting [a-z0-9]")
    return tenant


def tenant_role(tenant: str) -> str:
    """``ocs_t_<tenant>``; a tenant id too long for a role name is cut and given a hash suffix
    (still one role per tenant, still recognisable)."""
    role = TENANT_ROLE_PREFIX + check_tenant(tenant)
    if len(role) <= ROLE_NAME_BYTES_MAX:
        return role
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:8]
    return role[: ROLE_NAME_BYTES_MAX - 9] + "_" + digest


def _aware(value: datetime | None, default: datetime, what: str) -> datetime:
    if value is None:
        return default
    if value.tzinfo is None:
        raise StoreError(f"{what}: a time zone is required (e.g. 2026-12-01T00:00:00+00:00)")
    return value


def _lost_server(exc: psycopg.Error) -> bool:
    """A connection-level failure (server down, restarted, unreachable), not a query's error
    (lock timeout, cancelled statement) that the caller may want to handle itself."""
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def copy_values_by_month(rows: Sequence[UsageRow]) -> dict[date, list[tuple[Any, ...]]]:
    """The rows as COPY tuples (``usage.sql.BATCH_COLUMNS``), grouped by the month (UTC) of
    their end. The epoch floats become datetimes here, once, for both write paths."""
    out: dict[tuple[int, int], list[tuple[Any, ...]]] = {}
    astuple = msgspec.structs.astuple
    fromtimestamp = datetime.fromtimestamp
    int4, int2 = q.INT4_RANGE, q.INT2_RANGE
    for row in rows:
        if row.vshard not in int4 or row.role_of_node not in int2:
            raise StoreError(
                f"row {row.tenant}/{row.entry_id}: vshard {row.vshard} or role_of_node "
                f"{row.role_of_node} out of range for its column"
            )
        values = astuple(row)
        # The month of the datetime stored (rounded to microseconds), not of the float.
        ended = fromtimestamp(row.ended_at_s, UTC)
        started = fromtimestamp(row.started_at_s, UTC) if row.started_at_s > 0 else None
        out.setdefault((ended.year, ended.month), []).append(
            (*values[:13], started, ended, *values[15:])
        )
    return {date(year, month, 1): values for (year, month), values in out.items()}


async def _copy(
    conn: AsyncConnection[Any], statement: str | sql.Composed, values: Iterable[tuple[Any, ...]]
) -> None:
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(q.BATCH_TYPES)
        for value in values:
            await copy.write_row(value)


class UsageStore:
    """One pool of connections to the store. Build with ``await UsageStore.open(url)``."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._months: dict[date, str] = {}  # month -> its partition, known to exist
        self._months_lock = asyncio.Lock()
        self._tenants: set[str] = set()  # tenant roles known to exist

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_min: int = 1,
        pool_max: int = 8,
        statement_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        application_name: str = "ocs-usage",
        configure: Callable[[AsyncConnection[Any]], Awaitable[None]] | None = None,
    ) -> UsageStore:
        """``configure``: run on every new connection of the pool (the exporter renices its
        local backends)."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo=url,
            configure=configure,
            min_size=pool_min,
            max_size=pool_max,
            open=False,
            timeout=connect_timeout_s,
            check=AsyncConnectionPool.check_connection,  # a restarted server's dead sockets
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, int(connect_timeout_s)),
                "application_name": application_name,
                "options": (
                    f"-c statement_timeout={int(statement_timeout_s * 1000)}"
                    " -c client_min_messages=warning -c timezone=UTC"
                ),
            },
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout_s)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise StoreUnavailable(f"cannot connect to the usage store: {exc}") from exc
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> UsageStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- roles ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection; a lost or unreachable server becomes ``StoreUnavailable``."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(f"no usage store connection: {exc}") from exc
        except psycopg.OperationalError as exc:
            if _lost_server(exc):
                raise StoreUnavailable(f"usage store: {exc}") from exc
            raise

    @asynccontextmanager
    async def _transaction(
        self, role: str | None, *, snapshot: bool = False
    ) -> AsyncIterator[AsyncConnection[Any]]:
        async with self._connection() as conn, conn.transaction():
            if snapshot:
                await conn.execute(q.READ_ONLY_SNAPSHOT)
            if role is None:
                await conn.execute(q.NO_STATEMENT_TIMEOUT)
            else:
                await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            yield conn

    def _as_role(self, role: str, *, snapshot: bool = False) -> Any:
        return self._transaction(role, snapshot=snapshot)

    def as_owner(self) -> Any:
        """A transaction as the pool's login, the schema owner: maintenance (retention) that
        works on partitions directly. No statement timeout: a month may take a while."""
        return self._transaction(None)

    def as_writer(self) -> Any:
        """A transaction as ``ocs_writer`` (insert and read every tenant; no update/delete)."""
        return self._as_role(WRITER_ROLE)

    def as_portfolio(self) -> Any:
        """A read transaction as ``ocs_portfolio`` (every tenant's rows)."""
        return self._as_role(PORTFOLIO_ROLE)

    @asynccontextmanager
    async def as_tenant(
        self, tenant: str, *, snapshot: bool = False
    ) -> AsyncIterator[AsyncConnection[Any]]:
        """A transaction as the tenant's own role: the database shows it that tenant's rows
        only. ``UnknownTenant`` if the tenant has no role (nothing stored for it yet).
        ``snapshot``: REPEATABLE READ, READ ONLY — every query sees the same data (an export
        file and its manifest's totals agree even while the exporter inserts)."""
        check_tenant(tenant)
        if tenant not in self._tenants:
            async with self._connection() as conn:
                found = await (await conn.execute(q.TENANT_ROLE_OF, (tenant,))).fetchone()
            if found is None:
                raise UnknownTenant(f"unknown tenant {tenant!r}: no usage stored for it")
            self._tenants.add(tenant)
        async with self._as_role(tenant_role(tenant), snapshot=snapshot) as conn:
            yield conn

    async def ensure_tenant(self, tenant: str) -> str:
        """Create (or refresh) the tenant's role and its registration; idempotent. Returns the
        role name. Needs the pool's login to have CREATEROLE (the store's owner does)."""
        role = tenant_role(tenant)
        ident = sql.Identifier(role)
        async with self._connection() as conn:
            for _attempt in range(2):
                try:
                    async with conn.transaction():
                        facts = await (await conn.execute(q.ROLE_FACTS, (role,))).fetchone()
                        if facts is None:
                            await conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident))
                        elif facts[0] or facts[1]:
                            raise StoreError(
                                f"role {role} is SUPERUSER or BYPASSRLS: it would see every "
                                "tenant; fix it by hand (ALTER ROLE ... NOSUPERUSER NOBYPASSRLS)"
                            )
                        else:
                            await conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
                        await conn.execute(
                            sql.SQL("GRANT {} TO {}").format(
                                sql.Identifier(TENANT_GROUP_ROLE), ident
                            )
                        )
                        # Membership of the owner: what lets it SET ROLE to the tenant.
                        await conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))
                        await conn.execute(q.UPSERT_TENANT, (tenant, role))
                    break
                except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                    continue  # another process created the role at the same moment: refresh
        self._tenants.add(tenant)
        return role

    async def tenants(self) -> list[TenantInfo]:
        async with self._connection() as conn:
            rows = await (await conn.execute(q.LIST_TENANTS)).fetchall()
        return [TenantInfo(tenant=t, role=r, retention_months=m) for t, r, m in rows]

    async def set_retention(self, tenant: str, months: int | None) -> None:
        """The tenant's retention in months (None: back to the deployment's default)."""
        if months is not None and months < 1:
            raise StoreError(f"retention of {tenant}: at least 1 month, got {months}")
        async with self._connection() as conn:
            cur = await conn.execute(q.SET_RETENTION, (months, check_tenant(tenant)))
            if cur.rowcount == 0:
                raise UnknownTenant(f"unknown tenant {tenant!r}: no usage stored for it")

    # -- writing -------------------------------------------------------------------------------

    async def ensure_months(self, months: set[date]) -> None:
        """Create the month partitions missing among ``months`` (each in a short transaction
        of its own, so no batch waits on the DDL lock). One caller at a time per process: two
        batches reaching a new month together would otherwise both try to create it."""
        if not months - self._months.keys():
            return
        async with self._months_lock:
            for month in sorted(months - self._months.keys()):
                async with self.as_writer() as conn:
                    found = await (await conn.execute(q.ENSURE_MONTH, (month,))).fetchone()
                assert found is not None
                self._months[month] = found[0]

    async def store_batch(self, rows: Sequence[UsageRow]) -> int:
        """Store rows of one or more tenants in ONE transaction, idempotently on the row's
        identity; returns how many rows were new (a re-delivered row counts 0). All or nothing:
        on an exception nothing is stored."""
        if not rows:
            return 0
        if len(rows) > BATCH_ROWS_MAX:
            raise StoreError(f"batch of {len(rows)} rows: at most {BATCH_ROWS_MAX}")
        tenants = {row.tenant for row in rows}
        for tenant in tenants - self._tenants:
            await self.ensure_tenant(tenant)
        return await self.store_values(copy_values_by_month(rows), tenants)

    async def store_values(
        self, by_month: Mapping[date, Sequence[tuple[Any, ...]]], tenants: Iterable[str]
    ) -> int:
        """``store_batch`` for rows already in COPY form (``usage.sql.BATCH_COLUMNS``, grouped
        by the UTC month of ``ended_at``, values within their columns' ranges): the exporter
        builds them straight from the stream records.

        Fast path: a binary COPY per month straight into the month's partition. If any row is
        already stored (a unique violation: re-delivery after a crash), that is rolled back to
        a savepoint and the idempotent path runs: binary COPY into a staging table, then
        INSERT ... ON CONFLICT DO NOTHING."""
        count = sum(len(values) for values in by_month.values())
        if not count:
            return 0
        if count > BATCH_ROWS_MAX:
            raise StoreError(f"batch of {count} rows: at most {BATCH_ROWS_MAX}")
        for tenant in set(tenants) - self._tenants:
            await self.ensure_tenant(tenant)
        await self.ensure_months(set(by_month))
        async with self.as_writer() as conn:
            try:
                async with conn.transaction():  # a savepoint
                    for month, values in by_month.items():
                        table = sql.Identifier(self._months[month])
                        await _copy(conn, sql.SQL(q.COPY_PARTITION).format(table), values)
                return count
            except psycopg.errors.UniqueViolation:
                pass  # some rows are stored already: skip them below
            except psycopg.errors.UndefinedTable:
                self._months.clear()  # a month was pruned meanwhile: the parent routes rows
            await conn.execute(q.CREATE_STAGE)
            await _copy(conn, q.COPY_STAGE, (v for values in by_month.values() for v in values))
            stored: int = (await conn.execute(q.INSERT_FROM_STAGE)).rowcount
        return max(stored, 0)

    # -- reading -------------------------------------------------------------------------------

    async def exists_op(self, tenant: str, op_id: str) -> bool:
        """Whether any record of this operation id is stored for the tenant (xDR import)."""
        async with self.as_writer() as conn:
            found = await (
                await conn.execute(q.EXISTS_OP, (check_tenant(tenant), op_id))
            ).fetchone()
        return bool(found and found[0])

    async def count_and_totals(
        self,
        tenant: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        kinds: Sequence[str] | None = None,
    ) -> UsageTotals:
        """Count and money sums of the tenant's records with ``start <= ended_at < end``
        (None: unbounded), read as the tenant's role; optionally only these ``kinds``."""
        params: dict[str, Any] = {
            "tenant": tenant,
            "start": _aware(start, TIME_MIN, "start"),
            "end": _aware(end, TIME_MAX, "end"),
        }
        query = q.TOTALS
        if kinds is not None:
            query, params["kinds"] = q.TOTALS_KINDS, list(kinds)
        async with self.as_tenant(tenant) as conn:
            row = await (await conn.execute(query, params)).fetchone()
        assert row is not None  # an aggregate always answers one row
        return UsageTotals(*(int(v) for v in row))

    async def iter_export(
        self,
        tenant: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        chunk_rows: int = EXPORT_CHUNK_ROWS,
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The tenant's records in ``[start, end)``, oldest first, in chunks of ``chunk_rows``
        tuples (columns ``usage.sql.EXPORT_COLUMNS``), through a server-side cursor as the
        tenant's role: memory stays one chunk whatever the period holds."""
        params = {
            "tenant": tenant,
            "start": _aware(start, TIME_MIN, "start"),
            "end": _aware(end, TIME_MAX, "end"),
        }
        async with (
            self.as_tenant(tenant) as conn,
            conn.cursor(name="usage_export", binary=True) as cur,
        ):
            await cur.execute(q.EXPORT_QUERY, params)
            while chunk := await cur.fetchmany(chunk_rows):
                yield chunk

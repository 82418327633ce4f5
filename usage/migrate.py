"""Versioned schema migrations of the usage store, run by yoyo-migrations.

The migrations are SQL files in ``usage/migrations`` (``NNNN_name.sql`` with a ``-- depends:``
header, and ``NNNN_name.rollback.sql``). yoyo records what it applied in its own tables and takes
a lock, so two processes applying at once do not both run a step; applying again is a no-op.
The URL's role becomes the owner of everything created, and needs CREATEROLE (0001 creates the
group roles, ``UsageStore.ensure_tenant`` the tenant roles).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yoyo import get_backend, read_migrations

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
LOCK_TIMEOUT_S = 60


class MigrationError(RuntimeError):
    """A migration failed or the store is unreachable; the message says which."""


def yoyo_url(url: str) -> str:
    """yoyo picks its driver from the scheme: psycopg 3 is ``postgresql+psycopg``."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise MigrationError(f"store URL must start with postgresql://, got {url.split(':', 1)[0]!r}")


@contextmanager
def _backend(url: str) -> Iterator[Any]:
    try:
        backend = get_backend(yoyo_url(url))
    except MigrationError:
        raise
    except Exception as exc:  # yoyo passes the driver's errors through unchanged
        raise MigrationError(f"cannot open the usage store: {exc}") from exc
    try:
        yield backend
    finally:
        backend.connection.close()


def apply(url: str) -> list[str]:
    """Apply every pending migration (in one lock); returns the ids applied (empty: none due)."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(url) as backend, backend.lock(timeout=LOCK_TIMEOUT_S):
        pending = backend.to_apply(migrations)
        try:
            backend.apply_migrations(pending)
        except Exception as exc:
            raise MigrationError(f"migration failed: {exc}") from exc
        return [m.id for m in pending]


def rollback(url: str, count: int = 1) -> list[str]:
    """Roll back the last ``count`` applied migrations (newest first); returns their ids."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(url) as backend, backend.lock(timeout=LOCK_TIMEOUT_S):
        undo = backend.to_rollback(migrations)[:count]
        try:
            backend.rollback_migrations(undo)
        except Exception as exc:
            raise MigrationError(f"rollback failed: {exc}") from exc
        return [m.id for m in undo]


def status(url: str) -> list[tuple[str, bool]]:
    """Every known migration in order, with whether it is applied."""
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(url) as backend:
        applied = {m.id for m in migrations if backend.is_applied(m)}
    return [(m.id, m.id in applied) for m in migrations]

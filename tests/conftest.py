"""Shared fixtures: a private redis-server and a private PostgreSQL per test session, on free
loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ocs.embedded_postgres import EmbeddedPostgres
from ocs.embedded_redis import EmbeddedRedis
from tests.support.postgres import fresh_database, session_postgres

# Every `ocs export` (and `ocs up`) the tests start runs at normal priority: the suite must pass
# on a machine whose cores are kept busy (CI runs it beside `stress-ng --cpu 2`), and an exporter
# under SCHED_IDLE gets no CPU at all while they are, so a crash-recovery test would wait on the
# scheduler instead of on the exporter. tests/usage/test_exporter_process.py checks the policy
# itself (its default without this variable, and that it is applied).
os.environ.setdefault("OCS_EXPORT_SCHED_IDLE", "false")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One redis-server for the whole run (AOF on, noeviction), stopped at the end."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="everysec")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The shared server's URL, flushed before each test so tests never see each other's keys."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, for tests that kill, restart or reconfigure it."""
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """One private PostgreSQL for the whole run (fsync off: tests only), stopped at the end."""
    with session_postgres() as server:
        yield server


@pytest.fixture
def store_url(postgres_server: EmbeddedPostgres) -> Iterator[str]:
    """A fresh, migrated database of the shared server for this test alone (its URL)."""
    with fresh_database(postgres_server) as url:
        yield url

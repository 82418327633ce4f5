"""The embedded PostgreSQL helper, the store URL lookup order and the [store] config section."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ocs.config import ConfigError, load_config
from ocs.embedded_postgres import (
    STORE_URL_FILE,
    EmbeddedPostgres,
    StoreSetupError,
    resolve_store_url,
)


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    base = tempfile.mkdtemp(prefix="ocs-test-pg-")
    os.chmod(base, 0o755)  # the server may run as `postgres`: it must reach its directory
    yield Path(base) / "pg"
    shutil.rmtree(base, ignore_errors=True)


def test_resolve_store_url_order(tmp_path: Path) -> None:
    (tmp_path / STORE_URL_FILE).write_text("postgresql://file/db\n")
    env = {"OCS_STORE_URL": "postgresql://env/db"}
    assert resolve_store_url("postgresql://cli/db", data_dir=tmp_path, environ=env) == (
        "postgresql://cli/db"
    )
    assert resolve_store_url(
        None, data_dir=tmp_path, config_url="postgresql://conf/db", environ=env
    ) == ("postgresql://env/db")
    assert resolve_store_url(
        None, data_dir=tmp_path, config_url="postgresql://conf/db", environ={}
    ) == ("postgresql://conf/db")
    assert resolve_store_url(None, data_dir=tmp_path, environ={}) == "postgresql://file/db"
    with pytest.raises(StoreSetupError, match="--store-url"):
        resolve_store_url(None, data_dir=tmp_path / "none", environ={})


def test_store_config_section() -> None:
    config = load_config(environ={"OCS_STORE_URL": "postgresql://h/db", "OCS_STORE_POOL_MAX": "3"})
    assert config.store.url == "postgresql://h/db"
    assert config.store.pool_max == 3
    assert config.store.data_dir == "var/pg"
    with pytest.raises(ConfigError, match="pool_min"):
        load_config(overrides={"store": {"pool_min": 5, "pool_max": 2}})
    with pytest.raises(ConfigError, match="retention_months"):
        load_config(overrides={"store": {"retention_months": 0}})


def test_start_stop_kill_restart_keep_the_data(pg_dir: Path) -> None:
    server = EmbeddedPostgres(pg_dir, fsync=False)
    url = server.start()
    try:
        assert (pg_dir / STORE_URL_FILE).read_text().strip() == url
        assert (pg_dir / STORE_URL_FILE).stat().st_mode & 0o077 == 0  # it holds a password
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == (
                "ocs",
                "ocs",
            )
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        # The product role is no superuser, and the superuser cannot log in over TCP.
        with psycopg.connect(url) as conn:
            assert conn.execute(
                "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = 'ocs'"
            ).fetchone() == (False, True)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres").close()
        server.kill()
        assert not server.running
        assert server.start() == url  # crash recovery; the same URL
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchone() == (1,)
        server.stop()
        assert not (pg_dir / STORE_URL_FILE).exists()
        url = server.start()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchone() == (1,)
    finally:
        server.stop()


def test_fsync_is_on_unless_asked_off(pg_dir: Path) -> None:
    with EmbeddedPostgres(pg_dir) as server, psycopg.connect(server.url) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)


def test_store_start_command_runs_until_sigterm(pg_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocs.cli", "store", "start", "--data-dir", str(pg_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url_file = pg_dir / STORE_URL_FILE
        deadline = time.monotonic() + 60
        while not url_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert url_file.exists(), proc.stderr.read() if proc.poll() is not None else "timeout"
        status = subprocess.run(
            [sys.executable, "-m", "ocs.cli", "store", "status", "--data-dir", str(pg_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert "migration 0004_writer_partitions: applied" in status.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("usage store ready:")
    assert not (pg_dir / STORE_URL_FILE).exists()

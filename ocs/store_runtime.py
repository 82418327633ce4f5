"""Wiring of the usage store into ``ocs`` processes: the embedded store (started and migrated)
and a ``UsageStore`` opened with the ``[store]`` settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocs.config import StoreConfig
from ocs.embedded_postgres import EmbeddedPostgres, resolve_store_url
from usage import migrate
from usage.store import UsageStore


def start_embedded_store(config: StoreConfig, *, fsync: bool = True) -> EmbeddedPostgres:
    """Start the private PostgreSQL under ``config.data_dir`` and bring its schema up to date;
    its URL is then in ``<data_dir>/store.url``. The caller stops it (it also stops at exit)."""
    server = EmbeddedPostgres(config.data_dir, port=config.embedded_port, fsync=fsync)
    server.start()
    try:
        migrate.apply(server.url)
    except Exception:
        server.stop()
        raise
    return server


def store_url(
    config: StoreConfig, cli_url: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """The one lookup order: ``--store-url``, ``OCS_STORE_URL``, ``[store] url``, the URL file."""
    return resolve_store_url(
        cli_url, data_dir=config.data_dir, config_url=config.url, environ=environ
    )


async def open_usage_store(
    url: str, config: StoreConfig, application_name: str, configure: Any = None
) -> UsageStore:
    return await UsageStore.open(
        url,
        pool_min=config.pool_min,
        pool_max=config.pool_max,
        statement_timeout_s=config.statement_timeout_s,
        connect_timeout_s=config.connect_timeout_s,
        application_name=application_name,
        configure=configure,
    )

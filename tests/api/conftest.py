"""An ``ocs api`` application on a private Redis (examples/catalog loaded) and a fresh migrated
store, driven in-process through Litestar's test client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from ocs.api.app import build_app
from ocs.api.keys import Role, create_key
from ocs.api.state import ApiState
from ocs.cli import main
from ocs.config import Config, LogConfig, RedisConfig
from ocs.ledger_runtime import LedgerRuntime
from usage.store import UsageStore

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"
ACME_SUB = "4917099000042"
GLOBEX_SUB = "4917199000042"
ACME_FREE = "4917099000099"  # in acme's range, not created by the catalog load? (see fixture)


class Api:
    """The app, its state and a way to make keys."""

    def __init__(self, state: ApiState, client: httpx.AsyncClient) -> None:
        self.state = state
        self.client = client

    async def key(self, *tenants: str, role: Role = "read") -> str:
        _, secret = await create_key(self.state.store, tenants=tenants, role=role, expires_days=1)
        return secret

    @staticmethod
    def auth(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def api(redis_url: str, store_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    argv = ["catalog", "load", str(CATALOG), "--redis-url", redis_url,
            "--data-dir", str(tmp_path / "none")]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0
    config = Config(
        redis=RedisConfig(url=redis_url, data_dir=str(tmp_path / "redis")),
        log=LogConfig(level="debug"),
    )
    runtime = LedgerRuntime(config.redis, config.ledger)
    await runtime.start()
    store = await UsageStore.open(store_url, pool_max=4)
    state = ApiState(config, store, runtime)
    try:
        transport = httpx.ASGITransport(app=build_app(state), client=("203.0.113.7", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield Api(state, client)
    finally:
        await store.close()
        await runtime.stop()


def body(response: Any) -> Any:
    return msgspec.json.decode(response.content)

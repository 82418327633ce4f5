"""The provisioning hold end to end: a tenant with ``provisioning_hold: true`` creates a
subscriber through the API; its CCR is refused (4010) until the dispatcher's HLR plug-in,
marked ``confirms_provisioning``, has provisioned it at the host MNO's gateway; then the next
CCR is granted. A SIM swap holds it again until the swap is provisioned."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from balance.ledger import Ledger
from ocs.api.app import build_app
from ocs.api.keys import create_key
from ocs.api.state import ApiState
from ocs.catalog_store import stored_catalog
from ocs.charging.credit_control import CreditControlHandler
from ocs.charging.directory import TenantDirectory
from ocs.charging.sessions import SessionRegistry
from ocs.cli import main
from ocs.config import ChargingConfig, Config, LogConfig, RedisConfig
from ocs.dispatch_config import DispatchConfig, DispatchConfigError, PluginSpec, parse_dispatch
from ocs.dispatch_core import Policy
from ocs.dispatcher import Dispatcher
from ocs.ledger_runtime import LedgerRuntime
from ocs.logging_setup import make_logger
from ocs.plugins.hlr import HlrPlugin
from ocs.subscriber_directory import DirectoryEntry, DynamicDirectory, read_all
from tests.balance.test_events import events_of
from tests.charging.conftest import Charging
from tests.events.receivers import HlrGateway, Server
from tests.support.charging import Clock
from tests.support.gy import INITIAL, Mscc, ccr, msccs_of, result_code
from usage.store import UsageStore

ROOT = Path(__file__).resolve().parents[2]
MSISDN = "4915550000077"
IMSI, NEW_IMSI = "262015550000077", "262015550000078"
MIB = 1_048_576


@dataclass
class Setup:
    http: httpx.AsyncClient
    key: str
    client: aioredis.Redis
    charging: Charging
    dynamic: DynamicDirectory


@pytest.fixture
async def setup(redis_url: str, store_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    catalog_dir = tmp_path / "catalog"
    shutil.copytree(ROOT / "examples" / "catalog", catalog_dir)
    acme = catalog_dir / "acme.yaml"
    acme.write_text(acme.read_text() + "\nprovisioning_hold: true\n")
    argv = ["catalog", "load", str(catalog_dir), "--redis-url", redis_url,
            "--data-dir", str(tmp_path / "none")]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0
    config = Config(
        redis=RedisConfig(url=redis_url, data_dir=str(tmp_path / "redis")),
        log=LogConfig(level="warning"),
    )
    runtime = LedgerRuntime(config.redis, config.ledger)
    await runtime.start()
    store = await UsageStore.open(store_url, pool_max=4)
    state = ApiState(config, store, runtime)
    client = aioredis.Redis.from_url(redis_url)
    catalog = await stored_catalog(client)
    assert catalog is not None and catalog.tenant("acme").provisioning_hold  # type: ignore[union-attr]
    ledgers: dict[str, Ledger] = {}

    async def ledger_for(tenant: str) -> Ledger:
        return ledgers.setdefault(tenant, Ledger(client, tenant))

    dynamic = DynamicDirectory()
    directory = TenantDirectory(catalog, ledger_for, dynamic)
    sessions = SessionRegistry()
    clock = Clock()  # within the demo rate cards' validity
    handler = CreditControlHandler(
        directory, ChargingConfig(), origin_host="ocs.test.local", origin_realm="test.local",
        sessions=sessions, log=make_logger("warning"), clock=clock,
    )  # fmt: skip
    _, key = await create_key(store, tenants=("acme",), role="admin", expires_days=1)
    try:
        transport = httpx.ASGITransport(app=build_app(state), client=("203.0.113.7", 4711))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield Setup(http, key, client, Charging(handler, directory, clock, client, sessions),
                        dynamic)  # fmt: skip
    finally:
        await client.aclose()
        await store.close()
        await runtime.stop()


async def _ccr_i(setup: Setup, session: str) -> tuple[int, int | None]:
    # What every server does on the directory notice: its in-memory copy of the directory.
    setup.dynamic.replace_all(await read_all(setup.client))
    cca = await setup.charging.send(ccr(session, INITIAL, 0, msisdn=MSISDN, msccs=[Mscc(10)]))
    return result_code(cca), msccs_of(cca).get(10, {}).get("octets")


def _ours(gateway: HlrGateway) -> list[tuple[str, dict[str, str]]]:
    """The gateway's requests for our subscriber (the catalog load's are there too)."""
    return [(op, fields) for op, fields in gateway.requests if fields["Msisdn"] == MSISDN]


async def _confirm(setup: Setup, gateway: HlrGateway, url: str, operations: int) -> None:
    spec = PluginSpec("mno-hlr", "hlr", frozenset({"acme"}), confirms_provisioning=True)
    policy = Policy(attempts_max=5, backoff_base_s=0.0, backoff_max_s=0.0)
    config = DispatchConfig(
        plugins=(spec,), policy=policy, claim_idle_s=3600.0, scan_every_s=0.0, trim=False
    )
    plugin = HlrPlugin(url, "MNO-A")
    dispatcher = Dispatcher(setup.client, config, {"mno-hlr": plugin}, consumer="hold")
    try:
        for _ in range(2000):  # a bounded number of steps, no timing
            await dispatcher.step()
            if len(_ours(gateway)) >= operations:
                break
        await dispatcher.step()  # the hold is released before the event is acknowledged
    finally:
        dispatcher.close()
        await plugin.aclose()


async def test_create_refused_until_the_hlr_confirms_then_granted(setup: Setup) -> None:
    gateway = HlrGateway()
    server = Server(gateway)
    try:
        auth = {"Authorization": f"Bearer {setup.key}"}
        created = await setup.http.post(
            "/api/v1/tenants/acme/subscribers",
            json={"subscriber": f"+{MSISDN}", "balance": "10.00", "imsi": IMSI},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        assert msgspec.json.decode(created.content)["state"] == "provisioning"
        assert await _ccr_i(setup, "pgw;hold;1") == (4010, None)

        await _confirm(setup, gateway, server.url, 1)
        assert [op for op, _ in _ours(gateway)] == ["CreateSubscriber"]
        code, octets = await _ccr_i(setup, "pgw;hold;2")
        assert code == 2001 and octets is not None and octets > 0

        swapped = await setup.http.post(
            f"/api/v1/tenants/acme/subscribers/{MSISDN}/sim", json={"imsi": NEW_IMSI}, headers=auth
        )
        assert swapped.status_code == 201, swapped.text
        assert msgspec.json.decode(swapped.content)["state"] == "provisioning"
        assert (await _ccr_i(setup, "pgw;hold;3"))[0] == 4010
        await _confirm(setup, gateway, server.url, 2)
        operation, fields = _ours(gateway)[1]
        assert operation == "SwapSubscriberSim" and fields["Imsi"] == NEW_IMSI
        assert (await _ccr_i(setup, "pgw;hold;4"))[0] == 2001

        ledger = Ledger(setup.client, "acme")
        types = [e.type for e in await events_of(ledger, MSISDN)]
        assert types == ["created", "activated", "sim_swapped", "activated"]
        ledger.close_scripts()
    finally:
        server.close()


async def test_sim_swap_and_delete_through_the_api_are_events(setup: Setup) -> None:
    auth = {"Authorization": f"Bearer {setup.key}"}
    base = "/api/v1/tenants/acme/subscribers"
    other = "4915550000088"
    for number, imsi in ((MSISDN, IMSI), (other, "262015550000088")):
        r = await setup.http.post(base, json={"subscriber": number, "imsi": imsi}, headers=auth)
        assert r.status_code == 201, r.text
    # Another subscriber's IMSI: refused before any change, no event.
    taken = await setup.http.post(f"{base}/{MSISDN}/sim", json={"imsi": "262015550000088"},
                                  headers=auth)  # fmt: skip
    assert taken.status_code == 409
    swap = {**auth, "Idempotency-Key": "swap-1"}
    for _ in range(2):  # retried by the client: one change, one event
        r = await setup.http.post(f"{base}/{MSISDN}/sim", json={"imsi": NEW_IMSI}, headers=swap)
        assert r.status_code == 201, r.text
    gone = await setup.http.delete(f"{base}/{MSISDN}", headers=auth)
    assert gone.status_code == 200 and msgspec.json.decode(gone.content)["state"] == "deleted"
    assert await read_all(setup.client) == [(other, DirectoryEntry("acme", "262015550000088"))]
    ledger = Ledger(setup.client, "acme")
    events = await events_of(ledger, MSISDN)
    assert [e.type for e in events] == ["created", "sim_swapped", "deleted"]
    assert events[1].payload == {"imsi": NEW_IMSI, "previous_imsi": IMSI, "state": 2}
    ledger.close_scripts()


def test_confirms_provisioning_in_the_dispatch_file() -> None:
    plugin = {"name": "hlr", "kind": "hlr", "confirms_provisioning": True}
    assert parse_dispatch({"plugins": [plugin]}, "d.yaml").plugins[0].confirms_provisioning
    plain = parse_dispatch({"plugins": [{"name": "w", "kind": "webhook"}]})
    assert plain.plugins[0].confirms_provisioning is False
    with pytest.raises(DispatchConfigError, match=r"plugins\[0\]\.confirms_provisioning"):
        parse_dispatch({"plugins": [{**plugin, "confirms_provisioning": "yes"}]}, "d.yaml")

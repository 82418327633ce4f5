"""Simulator runs against real servers, ending in the ledger verification: a clean run and one
with injected duplicates PASS against ``ocs serve``; a server whose ledger charges one
micro-unit too much, or loses a usage record, FAILs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from balance.ledger import Ledger
from ocs.app import OcsApp
from ocs.config import load_config
from ocs.embedded_redis import free_tcp_port
from sim.plots import is_self_contained
from sim.scenario import Scenario, load_scenario
from sim.simulate import SimOutcome, simulate
from tests.support.proxy_keys import make_proxy_key_sync
from tests.support.server_process import ServerProcess

CATALOG = str(Path(__file__).resolve().parents[2] / "examples" / "catalog")


def short_scenario(diameter_port: int, **sections: Any) -> Scenario:
    """A ~2 s run: every session kind, fast clocks, a few faults."""
    overrides: dict[str, Any] = {
        "load": {"rate": 40, "duration_s": 1.5, "drain_s": 15},
        "data": {"update_interval_s": 0.1},
        "voice": {"time_scale": 3000, "mean_duration_s": 200},
        "target": {"diameter_port": diameter_port},
        "catalog": CATALOG,
        "workers": 2,
        "seed": 11,
    }
    for name, values in sections.items():
        if isinstance(overrides.get(name), dict):
            overrides[name] = {**overrides[name], **values}
        else:
            overrides[name] = values
    return load_scenario(None, overrides)


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "ocs", redis_url=redis_url, catalog=CATALOG)
    process.start()
    yield process
    process.stop()


def test_run_against_ocs_serve_passes(
    server: ServerProcess, redis_url: str, tmp_path: Path
) -> None:
    scenario = short_scenario(
        server.diameter_port,
        mix={"data": 0.5, "voice": 0.2, "sms": 0.15, "sip": 0.15},
        target={
            "diameter_port": server.diameter_port,
            "sip_port": server.sip_port,
            "http_url": f"http://127.0.0.1:{server.http_port}",
            "http_key": make_proxy_key_sync(redis_url, "acme", "globex"),
        },
        faults={"abandon_share": 0.1, "malformed_share": 0.05},
        roaming_share=0.2,
    )
    outcome = simulate(
        scenario,
        redis_url=redis_url,
        progress=False,
        json_path=tmp_path / "r.json",
        html_path=tmp_path / "r.html",
        quiet=True,
    )
    report = outcome.report
    assert outcome.passed, json.dumps(report["verification"], indent=1)
    assert report["errors"] == {}
    assert {"I", "U", "T", "E", "INVITE", "malformed"} <= set(report["sent"])
    assert report["sessions"].get("sip_completed", 0) > 0
    assert report["sessions"]["malformed_rejected"] == report["sent"]["malformed"]
    assert set(report["tenants"]) == {"acme", "globex"}
    for check in report["verification"]["tenants"]:
        assert check["record_retail"] > 0 and check["charge_records"] > 0
    assert json.loads((tmp_path / "r.json").read_text())["run_id"] == outcome.result.run_id
    page = (tmp_path / "r.html").read_text()
    assert page.count("<svg") == 2 and is_self_contained(page)
    assert f"seed {report['seed']}" in page and report["seed"] != 0
    assert " EUR</td>" in page  # money in the tenant currency


def test_injected_duplicates_are_charged_once(server: ServerProcess, redis_url: str) -> None:
    scenario = short_scenario(
        server.diameter_port,
        mix={"data": 0.7, "voice": 0.1, "sms": 0.2, "sip": 0},
        faults={"duplicate_share": 0.3, "retransmit_share": 0.3},
    )
    outcome = simulate(scenario, redis_url=redis_url, progress=False, quiet=True)
    report = outcome.report
    assert report["sent"]["duplicate"] > 10 and report["sent"]["retransmit"] > 10
    assert outcome.passed, json.dumps(report["verification"], indent=1)
    assert all(t["duplicate_charges"] == 0 for t in report["verification"]["tenants"])
    assert report["errors"] == {}


def test_a_coarser_session_timer_grid_still_verifies(server: ServerProcess, redis_url: str) -> None:
    scenario = short_scenario(
        server.diameter_port,
        load={"session_timer_slot_ms": 5},
        mix={"data": 0.7, "voice": 0.2, "sms": 0.1, "sip": 0},
    )
    outcome = simulate(scenario, redis_url=redis_url, progress=False, quiet=True)
    assert outcome.passed, json.dumps(outcome.report["verification"], indent=1)
    assert outcome.report["errors"] == {}


class _WrappedLedger:
    """A ledger double: its own ``credit_control``, everything else from the real ledger."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def credit_control_then(
        self, then: Callable[[Any, BaseException | None], None], *args: Any, **kwargs: Any
    ) -> None:
        """The server's hot-path form, through this double's own ``credit_control``."""

        def settled(done: asyncio.Future[Any]) -> None:
            error = done.exception()
            if error is not None:
                then(None, error)
            else:
                then(done.result(), None)

        self.credit_control(*args, **kwargs).add_done_callback(settled)


class _ExtraMicroUnit(_WrappedLedger):
    """A ledger that, after every charging CCR, takes one more micro-unit (a wrong server)."""

    def credit_control(self, subscriber: str, *args: Any, **kwargs: Any) -> Any:
        # The server takes the ledger's answer as a future (it adds a done-callback).
        return asyncio.ensure_future(self._charge(subscriber, *args, **kwargs))

    async def _charge(self, subscriber: str, *args: Any, **kwargs: Any) -> Any:
        result = await self.inner.credit_control(subscriber, *args, **kwargs)
        if any(item.retail for item in result.items) and not result.replayed:
            await self.inner.adjust(subscriber, -1, reason="test double", now_s=kwargs["now_s"])
        return result


class _LosesRecords(_WrappedLedger):
    """A ledger that answers as usual but deletes the usage record it just wrote."""

    def credit_control(self, subscriber: str, *args: Any, **kwargs: Any) -> Any:
        return asyncio.ensure_future(self._charge(subscriber, *args, **kwargs))

    async def _charge(self, subscriber: str, *args: Any, **kwargs: Any) -> Any:
        from balance import keys

        result = await self.inner.credit_control(subscriber, *args, **kwargs)
        if any(item.used_units for item in result.items):
            stream = keys.stream_key(keys.subscriber_prefix(self.inner.tenant, subscriber))
            last = await self.inner.client.xrevrange(stream, count=1)
            if last:
                record_id = last[0][0]
                assert record_id is not None
                await self.inner.client.xdel(stream, record_id)
        return result


class _WrongApp(OcsApp):
    def __init__(self, config: Any, wrapper: type) -> None:
        super().__init__(config)
        self.wrapper = wrapper
        self.wrapped: dict[str, Any] = {}

    async def _ledger_for(self, tenant: str) -> Any:
        if tenant not in self.wrapped:
            self.wrapped[tenant] = self.wrapper(await self.ledger.ledger_for(tenant))
        return self.wrapped[tenant]


async def _wrong_server(tmp_path: Path, redis_url: str, wrapper: type) -> AsyncGenerator[int, None]:
    port = free_tcp_port()
    config = load_config(
        None,
        environ={},
        overrides={
            "diameter": {"listen_port": port, "origin_realm": "test.local"},
            "http": {"listen_port": free_tcp_port()},
            "sip": {"enabled": False},
            "redis": {"url": redis_url, "data_dir": str(tmp_path / "redis")},
            "catalog": {"path": CATALOG},
            "log": {"level": "error"},
        },
    )
    app = _WrongApp(config, wrapper)
    await app.start()
    try:
        yield port
    finally:
        await app.stop()


@pytest.mark.parametrize("wrapper", [_ExtraMicroUnit, _LosesRecords])
async def test_wrong_charging_fails_verification(
    tmp_path: Path, redis_url: str, wrapper: type
) -> None:
    servers = _wrong_server(tmp_path, redis_url, wrapper)
    port = await servers.__anext__()
    try:
        scenario = short_scenario(port, mix={"data": 1, "voice": 0, "sms": 0, "sip": 0})
        outcome: SimOutcome = await asyncio.to_thread(
            simulate, scenario, redis_url=redis_url, progress=False, in_process=True, quiet=True
        )
    finally:
        await servers.aclose()
    assert outcome.report["errors"] == {}
    assert outcome.verification is not None and not outcome.passed
    problems = " ".join(p for t in outcome.report["verification"]["tenants"] for p in t["problems"])
    expected = "balances fell" if wrapper is _ExtraMicroUnit else "usage records say"
    assert expected in problems


def test_the_simulator_reconnects_after_a_server_restart(
    server: ServerProcess, redis_url: str, tmp_path: Path
) -> None:
    """Issue #11: a server restarted mid-run (SIGTERM, then started again on the same ports)
    closes every connection; the simulator opens them again, retransmits what was unanswered,
    and the run still verifies PASS (it used to record ``no_connection`` and give up)."""
    import threading

    scenario = short_scenario(
        server.diameter_port,
        load={"rate": 40, "duration_s": 5.0, "drain_s": 30},
        mix={"data": 0.6, "voice": 0.2, "sms": 0.2, "sip": 0.0},
        workers=1,
    )
    outcomes: list[SimOutcome] = []
    run = threading.Thread(
        target=lambda: outcomes.append(
            simulate(
                scenario,
                redis_url=redis_url,
                progress=False,
                quiet=True,
                json_path=tmp_path / "r.json",
                html_path=tmp_path / "r.html",
            )
        )
    )
    run.start()
    deadline = time.monotonic() + 60
    # Restart once the simulator is connected and sessions are flowing.
    while not server.health().get("diameter_peers") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the run (5 s of arrivals); not a speed assumption: any moment works
    assert server.stop() == 0
    server.start()
    run.join(180)
    assert outcomes, "the run did not finish"
    report = outcomes[0].report
    assert outcomes[0].passed, json.dumps(report["verification"], indent=1)
    assert "no_connection" not in report["errors"], report["errors"]
    assert report["sent"].get("reconnect", 0) >= 1

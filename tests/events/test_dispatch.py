"""The dispatcher against a real Redis and real HTTP receivers on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from ocs.dispatch_config import DispatchConfig, PluginSpec
from ocs.dispatch_core import Policy
from ocs.dispatcher import Dispatcher
from ocs.plugins import Plugin
from ocs.plugins.webhook import WebhookPlugin
from tests.events.receivers import SECRET, HlrGateway, Server, WebhookReceiver

NOW = 1_700_000_000.0
WAIT_S = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def webhook() -> Iterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    server = Server(receiver)
    yield receiver, server.url
    server.close()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


def config(*specs: PluginSpec, attempts_max: int = 50) -> DispatchConfig:
    policy = Policy(attempts_max=attempts_max, backoff_base_s=1.0, backoff_max_s=8.0)
    return DispatchConfig(plugins=specs, policy=policy, claim_idle_s=3600.0, scan_every_s=0.0)


async def drive(dispatcher: Dispatcher, clock: FakeClock, until: Callable[[], bool]) -> None:
    """Steps with the fake clock moving 1 s per step, up to a bounded number of steps."""
    for _ in range(2000):
        await dispatcher.step()
        if until():
            return
        clock.now += 1.0
    raise AssertionError("condition not reached")


async def test_receiver_down_then_up_gets_every_event_in_order_per_subscriber(
    client: aioredis.Redis, webhook: tuple[WebhookReceiver, str]
) -> None:
    receiver, url = webhook
    ledger = Ledger(client, "down")
    subs = [f"49170990100{n:02d}" for n in range(5)]
    for s in subs:
        await ledger.provision_account(s, balance=1000, now_s=NOW)
    receiver.down = True
    for s in subs:
        await ledger.block(s, now_s=NOW + 1)
        await ledger.topup(s, 5, now_s=NOW + 2)
        await ledger.unblock(s, now_s=NOW + 3)
    clock = FakeClock()
    plugins: dict[str, Plugin] = {"hook": WebhookPlugin(url, SECRET.encode())}
    spec = PluginSpec("hook", "webhook", frozenset({"down"}))
    dispatcher = Dispatcher(client, config(spec), plugins, consumer="c1", clock=clock)
    for _ in range(30):  # the receiver is down for 30 (fake) seconds
        await dispatcher.step()
        clock.now += 1.0
    assert receiver.delivered == [] and receiver.posts >= 5
    assert dispatcher.metrics.failed.labels("hook", "down")._value.get() >= 5
    receiver.down = False
    await drive(dispatcher, clock, lambda: len(receiver.delivered) == 20)
    for s in subs:
        types = [r.event["type"] for r in receiver.delivered if r.event["subscriber"] == s]
        assert types == ["created", "blocked", "topped_up", "unblocked"]
    assert all(r.signed for r in receiver.delivered)
    # Delivered everywhere: the streams are trimmed below what every group still needs.
    clock.now += 10
    await dispatcher.step()
    prefix = keys.subscriber_prefix("down", subs[0])
    assert await client.xlen(keys.event_key(prefix)) <= 1
    await plugins["hook"].aclose()


async def test_one_failing_subscriber_does_not_hold_back_others_then_dead_letter_and_retry(
    client: aioredis.Redis, webhook: tuple[WebhookReceiver, str], tmp_path: Path, redis_url: str
) -> None:
    receiver, url = webhook
    ledger = Ledger(client, "dl")
    bad, good = "4917099020001", "4917099020002"
    for s in (bad, good):
        await ledger.provision_account(s, balance=0, now_s=NOW)
        await ledger.topup(s, 10, now_s=NOW + 1)
    receiver.refuse_subscriber = bad
    clock = FakeClock()
    plugins: dict[str, Plugin] = {"hook": WebhookPlugin(url, SECRET.encode())}
    dispatcher = Dispatcher(
        client, config(PluginSpec("hook", "webhook"), attempts_max=3), plugins,
        consumer="c1", clock=clock,
    )  # fmt: skip
    await drive(dispatcher, clock, lambda: len(receiver.delivered) == 2)
    assert {r.event["subscriber"] for r in receiver.delivered} == {good}
    # bad's first event is dead-lettered after 3 attempts, then its second goes the same way.
    await drive(
        dispatcher, clock, lambda: dispatcher.metrics.dead.labels("hook", "dl")._value.get() == 2
    )
    ocs = [sys.executable, "-m", "ocs", "events"]
    listed = subprocess.run(
        [*ocs, "list", "--tenant", "dl", "--dead", "--redis-url", redis_url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert listed.stdout.count(bad) == 2 and "topped_up" in listed.stdout
    first_id = listed.stdout.splitlines()[-1].split()[0]  # oldest: the "created" event
    receiver.refuse_subscriber = ""
    retried = subprocess.run(
        [*ocs, "retry", first_id, "--plugin", "hook", "--redis-url", redis_url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert retried.returncode == 0, retried.stderr
    await drive(dispatcher, clock, lambda: len(receiver.delivered) == 3)
    assert receiver.delivered[-1].key == first_id
    shown = subprocess.run(
        [*ocs, "show", first_id, "--redis-url", redis_url], capture_output=True, text=True
    )
    assert "dispatch:hook: dead letter after 3 attempts" in shown.stdout
    bad_id = subprocess.run(
        [*ocs, "show", "dl:9999:1-0", "--redis-url", redis_url], capture_output=True, text=True
    )
    assert bad_id.returncode == 2 and "shard must be 0-1023" in bad_id.stderr
    await plugins["hook"].aclose()


async def test_block_via_cli_reaches_webhook_and_hlr_with_valid_signature(
    client: aioredis.Redis, webhook: tuple[WebhookReceiver, str], redis_url: str, tmp_path: Path
) -> None:
    receiver, url = webhook
    gateway = HlrGateway()
    hlr_server = Server(gateway)
    sub = "4917099030003"
    await Ledger(client, "blk").provision_account(sub, balance=100, now_s=NOW)
    dispatch_file = tmp_path / "dispatch.yaml"
    dispatch_file.write_text(
        "settings: {poll_s: 0.05, scan_every_s: 0.2}\n"
        "plugins:\n"
        f"  - {{name: hook, kind: webhook, tenants: [blk],\n"
        f"      options: {{url: '{url}', secret: '{SECRET}'}}}}\n"
        f"  - {{name: hlr, kind: hlr, tenants: [blk],\n"
        f"      options: {{url: '{hlr_server.url}', host_mno: MNO-A}}}}\n"
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocs", "dispatch", "--plugins", str(dispatch_file),
         "--redis-url", redis_url], stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        blocked = subprocess.run(
            [sys.executable, "-m", "ocs", "account", "block", sub, "--tenant", "blk",
             "--reason", "lost SIM", "--redis-url", redis_url],
            capture_output=True, text=True,
        )  # fmt: skip
        assert blocked.returncode == 0, blocked.stderr
        for _ in range(int(WAIT_S / 0.1)):
            if any(r.event["type"] == "blocked" for r in receiver.delivered) and any(
                op == "BarSubscriber" for op, _ in gateway.requests
            ):
                break
            await asyncio.sleep(0.1)
        hit = [r for r in receiver.delivered if r.event["type"] == "blocked"]
        assert len(hit) == 1 and hit[0].signed and hit[0].event["payload"]["reason"] == "lost SIM"
        ops = [(op, f["Msisdn"], f["HostMno"], f["RequestId"]) for op, f in gateway.requests]
        assert ("CreateSubscriber", sub, "MNO-A", receiver.delivered[0].key) in ops
        assert ("BarSubscriber", sub, "MNO-A", hit[0].key) in ops
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        hlr_server.close()


async def test_bad_dispatch_file_names_the_key(tmp_path: Path, redis_url: str) -> None:
    bad = tmp_path / "d.yaml"
    bad.write_text("plugins:\n  - {name: x, kind: webhook, types: [blockd]}\n")
    out = subprocess.run(
        [sys.executable, "-m", "ocs", "dispatch", "--plugins", str(bad), "--redis-url", redis_url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "plugins[0].types: unknown 'blockd'" in out.stderr
    bad.write_text("plugins:\n  - {name: x, kind: webhook, options: {url: 'http://x'}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "ocs", "dispatch", "--plugins", str(bad), "--redis-url", redis_url],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "plugin x: option 'secret' is required" in out.stderr


def test_hlr_soap_faults_map_to_verdicts() -> None:
    from ocs.dispatch_core import Verdict
    from ocs.plugins.hlr import verdict_of

    fault = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        "<faultcode>{}</faultcode></s:Fault></s:Body></s:Envelope>"
    )
    assert verdict_of(500, fault.format("s:Server").encode()) is Verdict.RETRY
    assert verdict_of(500, fault.format("s:Client").encode()) is Verdict.FAIL
    assert verdict_of(503, b"") is Verdict.RETRY
    assert verdict_of(200, b"<ok/>") is Verdict.OK

"""SMS notifications over SMPP (smpplib) to a test message centre on loopback: one SMS per
crossing, a throttled submit retried, a rejected one dead-lettered, templates checked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from balance.events import Event
from balance.ledger import Ledger
from balance.records import BucketUnit
from ocs.dispatch_config import DispatchConfig, PluginSpec
from ocs.dispatch_core import Policy, Verdict
from ocs.dispatcher import Dispatcher
from ocs.plugins import PluginConfigError
from ocs.plugins.smpp import SmppPlugin
from tests.balance.scenarios import NOW, rg
from tests.events.smsc import Smsc

MIB = 1 << 20
TEXTS = {
    "en": {
        "balance_below": "Your balance is {balance}, below {level}. Top up now!",
        "bucket_below": "{percent}% of your {kind} left: {remaining} of {size}.",
        "bundle_expiring": "Your {kind} bundle ends {expires} ({days} days).",
    }
}


@pytest.fixture
def smsc() -> Iterator[Smsc]:
    server = Smsc()
    yield server
    server.close()


def plugin_for(smsc: Smsc) -> SmppPlugin:
    return SmppPlugin(
        {"host": "127.0.0.1", "port": smsc.port, "system_id": "ocs", "password": "pw",
         "source_addr": "MVNO", "currency": "EUR", "templates": TEXTS}
    )  # fmt: skip


async def test_one_sms_per_crossing_and_a_throttled_submit_is_retried(
    redis_url: str, smsc: Smsc
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "sms", balance_below=[5_000_000])
    ledger.set_bucket_below([20])
    sub = "4917099060006"
    await ledger.provision_account(sub, balance=8_000_000, now_s=NOW)
    await ledger.add_bucket(sub, bucket_id="d", kind="data", unit=BucketUnit.BYTES,
                            amount=10 * MIB, now_s=NOW)  # fmt: skip
    commit = [rg(used=4_000_000, terminate=True)]
    data = [rg(20, used=9 * MIB, kinds=("data",), terminate=True)]
    for _ in range(3):  # retransmitted: one crossing each
        await ledger.credit_control(sub, "x", "x:0", commit, now_s=NOW + 1)
        await ledger.credit_control(sub, "y", "y:0", data, now_s=NOW + 2)
    smsc.statuses.append(0x58)  # the first submit is throttled
    plugin = plugin_for(smsc)
    config = DispatchConfig(
        plugins=(PluginSpec("sms-en", "smpp", frozenset({"sms"})),),
        policy=Policy(backoff_base_s=0.0, backoff_max_s=0.0),
        scan_every_s=0.0,
    )
    dispatcher = Dispatcher(client, config, {"sms-en": plugin}, consumer="s")
    try:
        for _ in range(300):
            await dispatcher.step()
            if len(smsc.submitted) >= 2 and not smsc.statuses:
                break
            await asyncio.sleep(0.02)
        for _ in range(5):  # nothing more arrives
            await dispatcher.step()
    finally:
        dispatcher.close()
        await plugin.aclose()
        await client.aclose()
    texts = sorted(s.message.decode() for s in smsc.submitted)
    assert texts == [
        "20% of your data left: 1.00 MiB of 10.00 MiB.",
        "Your balance is 4.00 EUR, below 5.00 EUR. Top up now!",
    ], texts
    assert all(s.destination == sub and s.source == "MVNO" for s in smsc.submitted)
    assert smsc.binds == ["ocs"]  # one bound connection for every message


def _event(event_type: str, **payload: object) -> Event:
    return Event(
        tenant="sms", shard=7, entry_id="1-0", type=event_type, subscriber="4917099060007",
        op_id="op", at_s=NOW, payload=dict(payload),
    )  # fmt: skip


async def test_a_rejected_submit_fails_and_a_lost_smsc_is_retried(smsc: Smsc) -> None:
    plugin = plugin_for(smsc)
    smsc.statuses.append(0x0B)  # invalid destination address: retrying will not help
    event = _event("balance_below", balance=1, level=2, before=3)
    assert await plugin.handle(event) is Verdict.FAIL
    assert await plugin.handle(_event("created")) is Verdict.OK  # no template: not for SMS
    expiring = _event("bundle_expiring", kind="data", unit="bytes", remaining=5,
                      expires_at=NOW + 2 * 86_400 + 60)  # fmt: skip
    assert plugin.text(expiring) == (
        "4917099060007", "Your data bundle ends 2023-11-16 22:14 UTC (3 days).",
    )  # fmt: skip
    smsc.close()
    await plugin.aclose()
    assert await plugin.handle(event) is Verdict.RETRY


def test_texts_are_checked_when_the_plug_in_is_created() -> None:
    base = {"host": "h", "system_id": "s", "source_addr": "M", "language": "de"}
    with pytest.raises(PluginConfigError, match=r"unknown placeholder.*percnt"):
        SmppPlugin({**base, "templates": {"de": {"bucket_below": "{percnt}"}}})
    with pytest.raises(PluginConfigError, match="language 'de'"):
        SmppPlugin({**base, "templates": {"en": {}}})
    with pytest.raises(PluginConfigError, match="non-empty text"):
        SmppPlugin({**base, "templates": {"de": {"depleted": {"subject": "x"}}}})

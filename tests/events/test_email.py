"""A subscriber whose balance crosses a level gets exactly one e-mail, through a real SMTP
server (aiosmtpd) on loopback, even when the crossing CCR is retransmitted by two server
processes; a top-up re-arms the level."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller

from balance.ledger import Ledger
from ocs.dispatch_config import DispatchConfig, PluginSpec
from ocs.dispatch_core import Policy
from ocs.dispatcher import Dispatcher
from ocs.embedded_redis import free_tcp_port
from ocs.plugins import PluginConfigError
from ocs.plugins.email import EmailPlugin
from tests.balance.scenarios import NOW, rg

TEMPLATES = {
    "de": {
        "balance_below": {
            "subject": "Guthaben unter {level}",
            "body": "Ihr Guthaben ist {balance} (vorher {before}). Jetzt aufladen!",
        },
        "depleted": {"subject": "Guthaben aufgebraucht", "body": "Guthaben: {balance}"},
    }
}


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_tcp_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_one_email_per_crossing_across_processes_and_retransmissions(
    redis_url: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    servers = [Ledger(c, "mail", balance_below=[5_000_000]) for c in clients]
    sub = "4917099050005"
    await servers[0].provision_account(sub, balance=8_000_000, now_s=NOW)
    commit = [rg(used=4_000_000, terminate=True)]
    # the crossing CCR, sent 20 times by each of two "server processes" at once
    await asyncio.gather(
        *(s.credit_control(sub, "x", "x:0", commit, now_s=NOW + 1) for s in servers * 20)
    )
    plugin = EmailPlugin(
        {"host": "127.0.0.1", "port": port, "from": "care@mvno.example", "language": "de",
         "to": "{subscriber}@sms.mvno.example", "currency": "EUR", "templates": TEMPLATES}
    )  # fmt: skip
    config = DispatchConfig(
        plugins=(PluginSpec("mail-de", "email", frozenset({"mail"})),),
        policy=Policy(backoff_base_s=0.0, backoff_max_s=0.0),
        scan_every_s=0.0,
    )
    dispatcher = Dispatcher(clients[0], config, {"mail-de": plugin}, consumer="m")

    async def settle(count: int) -> None:
        for _ in range(300):
            await dispatcher.step()
            lanes = dispatcher._lanes.values()
            if len(inbox.messages) >= count and all(len(lane.queue) == 0 for lane in lanes):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} messages, got {len(inbox.messages)}")

    await settle(1)
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["To"] == f"{sub}@sms.mvno.example"
    assert msg["Subject"] == "Guthaben unter 5.00 EUR"
    assert "Ihr Guthaben ist 4.00 EUR (vorher 8.00 EUR)" in msg.get_payload()
    # Still below: more usage sends nothing; a top-up above the level re-arms it.
    await servers[1].credit_control(sub, "y", "y:0", [rg(used=1_000_000, terminate=True)],
                                    now_s=NOW + 2)  # fmt: skip
    await servers[0].topup(sub, 10_000_000, now_s=NOW + 3)
    await servers[1].credit_control(sub, "z", "z:0", [rg(used=9_000_000, terminate=True)],
                                    now_s=NOW + 4)  # fmt: skip
    await settle(2)
    assert [m["Subject"] for m in inbox.messages] == ["Guthaben unter 5.00 EUR"] * 2
    for c in clients:
        await c.aclose()


def test_templates_are_checked_when_the_plug_in_is_created() -> None:
    base = {"host": "h", "from": "a@b", "to": "{subscriber}@x", "language": "de"}
    with pytest.raises(PluginConfigError, match=r"unknown placeholder.*balanse"):
        EmailPlugin(
            {**base, "templates": {"de": {"depleted": {"subject": "{balanse}", "body": ""}}}}
        )
    with pytest.raises(PluginConfigError, match="language 'de'"):
        EmailPlugin({**base, "templates": {"en": {}}})

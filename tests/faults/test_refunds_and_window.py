"""Idempotency beyond the TTL (issue #11): a tenant sets how long a retransmission is
recognised (catalog ``idempotency_window``, default ``[ledger] idempotency_ttl_s``), and a
REFUND_ACCOUNT must refer to a prior debit (the Session-Id of the DIRECT_DEBITING event) and
never gives back more than that debit took."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from balance import keys
from balance.errors import NoRefundableDebit
from balance.ledger import Ledger
from balance.records import BucketUnit, UsedLeg
from ocs.charging.directory import TenantDirectory
from tariffs.loader import load_texts
from tests.balance.scenarios import NOW, PER_UNIT, SUB
from tests.charging.conftest import Charging
from tests.support.charging import DEMO_CATALOG
from tests.support.gy import (
    DIRECT_DEBITING,
    EVENT,
    REFUND_ACCOUNT,
    SMS_CONTEXT,
    Mscc,
    ccr,
    msccs_of,
    result_code,
)

EUR = 1_000_000


def _sms(sid: str, number: int, action: int, msisdn: str, units: int = 1) -> object:
    return ccr(sid, EVENT, number, msisdn=msisdn, context=SMS_CONTEXT, requested_action=action,
               msccs=[Mscc(None, {"cc_service_specific_units": units})])  # fmt: skip


async def test_a_refund_refers_to_its_debit_and_never_exceeds_it(charging: Charging) -> None:
    subscriber = "4917099000060"
    before = (await charging.account("acme", subscriber)).balance
    debit = await charging.send(_sms("sms;1", 0, DIRECT_DEBITING, subscriber, units=3))
    assert result_code(debit) == 2001
    charged = before - (await charging.account("acme", subscriber)).balance
    assert charged > 0
    refund = await charging.send(_sms("sms;1", 1, REFUND_ACCOUNT, subscriber, units=2))
    assert result_code(refund) == 2001
    refund = await charging.send(_sms("sms;1", 2, REFUND_ACCOUNT, subscriber, units=5))
    assert result_code(refund) == 2001  # capped at the one unit left of the debit
    assert msccs_of(refund)[None]["units"] == 1
    assert (await charging.account("acme", subscriber)).balance == before
    # Nothing left to give back; and a refund naming no debit gives nothing.
    again = await charging.send(_sms("sms;1", 3, REFUND_ACCOUNT, subscriber))
    stranger = await charging.send(_sms("sms;never-debited", 0, REFUND_ACCOUNT, subscriber))
    assert result_code(again) == result_code(stranger) == 5002
    assert (await charging.account("acme", subscriber)).balance == before


async def test_a_refund_retransmitted_is_applied_once(charging: Charging) -> None:
    subscriber = "4917099000061"
    before = (await charging.account("acme", subscriber)).balance
    await charging.send(_sms("sms;2", 0, DIRECT_DEBITING, subscriber, units=2))
    for _ in range(3):
        assert (
            result_code(await charging.send(_sms("sms;2", 1, REFUND_ACCOUNT, subscriber))) == 2001
        )
    after = (await charging.account("acme", subscriber)).balance
    assert before > after  # one of the two SMS refunded, once
    await charging.send(_sms("sms;2", 2, REFUND_ACCOUNT, subscriber))
    assert (await charging.account("acme", subscriber)).balance == before


async def test_a_refund_gives_bucket_units_back_not_money(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    ledger = Ledger(client, "acme")
    try:
        await ledger.provision_account(SUB, balance=1_000, now_s=NOW)
        await ledger.add_bucket(SUB, bucket_id="sms", kind="sms", unit=BucketUnit.EVENTS,
                                amount=1, now_s=NOW)  # fmt: skip
        await ledger.debit_event(SUB, "d1", service="sms", rating_group=0, kinds=("sms",),
                                 legs=(UsedLeg("sms", 3, PER_UNIT),), now_s=NOW,
                                 refund_ref="e1:0")  # fmt: skip
        account = await ledger.query(SUB)
        spent = 1_000 - account.balance
        refunded = await ledger.refund_debit(SUB, "r1", debit_ref="e1:0", units=3, now_s=NOW)
        assert refunded.units == 3 and refunded.money == spent
        account = await ledger.query(SUB)
        assert account.balance == 1_000 and account.buckets[0].remaining == 1
        with pytest.raises(NoRefundableDebit):
            await ledger.refund_debit(SUB, "r2", debit_ref="e1:0", units=1, now_s=NOW)
        with pytest.raises(NoRefundableDebit):
            await ledger.refund_debit(SUB, "r3", debit_ref="other:0", units=1, now_s=NOW)
    finally:
        await client.aclose()


async def test_the_idempotency_window_is_set_per_tenant(redis_url: str) -> None:
    text = (DEMO_CATALOG / "acme.yaml").read_text()
    assert "\ntimezone:" in text
    text = text.replace("\ntimezone:", "\nidempotency_window: P7D\ntimezone:", 1)
    globex = (DEMO_CATALOG / "globex.yaml").read_text()
    catalog = load_texts([("acme.yaml", text), ("globex.yaml", globex)])
    assert catalog.tenant("acme").idempotency_ttl_s == 7 * 86400  # type: ignore[union-attr]
    client = aioredis.Redis.from_url(redis_url)
    try:
        ledgers = {t: Ledger(client, t, idempotency_ttl_s=3600) for t in ("acme", "globex")}

        async def ledger_for(tenant: str) -> Ledger:
            return ledgers[tenant]

        directory = TenantDirectory(catalog, ledger_for)
        acme, globex_ledger = await directory.ledger("acme"), await directory.ledger("globex")
        assert acme.idempotency_ttl_s == 7 * 86400
        assert globex_ledger.idempotency_ttl_s == 3600  # the [ledger] default
        await acme.provision_account(SUB, balance=10, now_s=NOW, op_id="p1")
        prefix = keys.subscriber_prefix("acme", SUB)
        assert await client.ttl(keys.op_key(prefix, "p1")) > 3600  # recognised for a week
        # A reload without the field goes back to the default.
        plain = (DEMO_CATALOG / "acme.yaml").read_text()
        directory.replace_catalog(load_texts([("acme.yaml", plain), ("globex.yaml", globex)]))
        assert acme.idempotency_ttl_s == 3600
    finally:
        await client.aclose()


def test_an_idempotency_window_out_of_bounds_is_a_file_line_problem() -> None:
    from tariffs.errors import CatalogError

    text = (DEMO_CATALOG / "acme.yaml").read_text()
    for window in ("PT30S", "P1M", "P400D", "soon"):
        bad = text.replace("\ntimezone:", f"\nidempotency_window: {window}\ntimezone:", 1)
        with pytest.raises(CatalogError) as caught:
            load_texts([("acme.yaml", bad)])
        assert str(caught.value.problems[0]).startswith("acme.yaml:"), window

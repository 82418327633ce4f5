"""The exporter into a real PostgreSQL: CCR records stored once with their enriched fields, the
streams trimmed, and the store equal to the ledger after a PostgreSQL crash and restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from diameter.message.avp.grouped import RecipientAddress, RecipientInfo, SmsInformation
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from balance.ledger import Ledger
from ocs.config import ExportConfig
from ocs.embedded_postgres import OWNER_ROLE, EmbeddedPostgres
from ocs.embedded_redis import free_tcp_port
from ocs.exporter import Exporter
from ocs.logging_setup import make_logger
from tests.charging.conftest import Charging
from tests.support.export import (
    install_catalog_texts,
    stream_lengths,
    tenant_client_factory,
    wait_for,
    write_records,
)
from tests.support.gy import (
    EVENT,
    INITIAL,
    MMTEL_CONTEXT,
    SMS_CONTEXT,
    TERMINATION,
    UPDATE,
    Mscc,
    ccr,
    result_code,
)
from tests.support.ledger_truth import ledger_totals, store_totals
from usage import migrate
from usage import sql as q
from usage.store import UsageStore

CONFIG = ExportConfig(
    block_ms=100, linger_ms=20, claim_idle_ms=500, tenants_refresh_s=0.2, lag_interval_s=0.2,
    batch_size=200, read_count=32, retry_max_s=0.5,
)  # fmt: skip
MIB = 1_048_576
ACME_1, ACME_2, ACME_3 = "4917099000001", "4917099000002", "4917099000003"
DATA10 = "4917099500001"  # acme's data10 plan
ACME_IMSI_2 = "262019900000002"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[UsageStore]:
    opened = await UsageStore.open(store_url, pool_max=4)
    yield opened
    await opened.close()


def _exporter(redis_url: str, admin: Any, store: Any, **overrides: Any) -> Exporter:
    config = msgspec.structs.replace(CONFIG, **overrides)
    return Exporter(
        admin, tenant_client_factory(redis_url, admin), store, config, make_logger("warning")
    )


async def _run_until(exporter: Exporter, condition: Any, what: str) -> None:
    task = asyncio.create_task(exporter.run())
    try:
        await wait_for(condition, what=what)
    finally:
        exporter.stop_event.set()
        await asyncio.wait_for(task, 30)


async def _rows(store: UsageStore, tenant: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async for chunk in store.iter_export(tenant):
        out.extend(dict(zip(q.EXPORT_COLUMNS, row, strict=True)) for row in chunk)
    return out


async def _call(charging: Charging, msisdn: str, sid: str, seconds: int) -> None:
    called = "tel:+4915112345678"
    await charging.send(
        ccr(sid, INITIAL, 0, msisdn=msisdn, context=MMTEL_CONTEXT, called=called,
            msccs=[Mscc(None, {"cc_time": 120})])
    )  # fmt: skip
    charging.clock.now += seconds
    await charging.send(
        ccr(sid, TERMINATION, 1, msisdn=msisdn, context=MMTEL_CONTEXT, called=called,
            msccs=[Mscc(None, None, [{"cc_time": seconds}])])
    )  # fmt: skip


async def _ccr_traffic(charging: Charging) -> None:
    """A Gy data session (APN, charging id, visited network), a Ro voice call, an SMS event."""
    sid = "pgw;store;data"

    def data(kind: int, number: int, used: int | None) -> Any:
        msccs = [Mscc(10, {} if kind != TERMINATION else None, [{"cc_total_octets": used}])]
        message = ccr(
            sid, kind, number, imsi=ACME_IMSI_2, visited_plmn="310260",
            msccs=msccs if used else [Mscc(10)],
        )  # fmt: skip
        ps = message.service_information.ps_information
        ps.called_station_id = "internet.acme"
        ps.tgpp_charging_id = (77).to_bytes(4, "big")
        return message

    assert result_code(await charging.send(data(INITIAL, 0, None))) == 2001
    for number in range(1, 6):
        charging.clock.now += 10
        await charging.send(data(UPDATE, number, MIB))
    await charging.send(data(TERMINATION, 6, MIB))
    voice = "cscf;store;voice"
    await charging.send(
        ccr(voice, INITIAL, 0, msisdn=ACME_1, context=MMTEL_CONTEXT, called="tel:+4915112345678",
            msccs=[Mscc(None, {"cc_time": 120})])
    )  # fmt: skip
    charging.clock.now += 95
    await charging.send(
        ccr(voice, TERMINATION, 1, msisdn=ACME_1, context=MMTEL_CONTEXT,
            called="tel:+4915112345678", msccs=[Mscc(None, None, [{"cc_time": 95}])])
    )  # fmt: skip
    sms = ccr(
        "smsc;store;1", EVENT, 0, msisdn=ACME_3, context=SMS_CONTEXT, requested_action=0,
        msccs=[Mscc(None, {"cc_service_specific_units": 1})], sms_recipient="+447700900123",
    )  # fmt: skip
    sms.service_information.sms_information = SmsInformation(
        recipient_info=[
            RecipientInfo(recipient_address=[RecipientAddress(address_data="+447700900123")])
        ]
    )
    assert result_code(await charging.send(sms)) == 2001


async def test_ccr_records_are_stored_once_with_their_enriched_fields(
    charging: Charging, redis_url: str, store: UsageStore
) -> None:
    admin = charging.client
    await install_catalog_texts(admin)
    await _ccr_traffic(charging)
    await _call(charging, DATA10, "cscf;store;plan", 30)
    expected = {t: await ledger_totals(admin, t) for t in ("acme", "globex")}
    assert expected["acme"][0] > 8  # provision + bucket records, 6 usage, voice, sms
    exporter = _exporter(redis_url, admin, store)

    async def exported() -> bool:
        return all([await store_totals(store, t) == expected[t] for t in expected])

    await _run_until(exporter, exported, "store equals ledger")
    assert await stream_lengths(admin, "acme") == 0
    assert await stream_lengths(admin, "globex") == 0
    rows = await _rows(store, "acme")
    assert len(rows) == expected["acme"][0]
    data = [r for r in rows if r["source"] == "gy"]
    assert len(data) == 6 and {r["units"] for r in data} == {MIB}
    first = data[0]
    assert (first["msisdn"], first["imsi"], first["apn"], first["charging_id"]) == (
        ACME_2, ACME_IMSI_2, "internet.acme", "77",
    )  # fmt: skip
    assert first["visited_plmn"] == "310260" and first["unit"] == "bytes"
    assert first["currency"] == "EUR" and first["rate_card_version"]
    assert first["rate_row"].startswith(f"acme:{first['rate_card_version']}:")
    assert first["started_at"] is not None and first["kind"] == "usage"
    (voice,) = [r for r in rows if r["source"] == "ro" and r["msisdn"] == ACME_1]
    (planned,) = [r for r in rows if r["source"] == "ro" and r["msisdn"] == DATA10]
    # The subscriber's plan, resolved at ingestion, stored on its row.
    assert (voice["plan"], planned["plan"], planned["rate_card_version"]) == (
        "", "data10", "acme-2026-01@data10",
    )  # fmt: skip
    assert (voice["called"], voice["calling"], voice["role_of_node"]) == (
        "4915112345678", ACME_1, 0,
    )  # fmt: skip
    assert voice["units"] == 95 and voice["unit"] == "seconds" and voice["retail"] > 0
    (sms,) = [r for r in rows if r["source"] == "sms"]
    assert (sms["kind"], sms["called"], sms["unit"], sms["units"]) == (
        "debit", "447700900123", "events", 1,
    )  # fmt: skip
    # Delivered again (as after a crash between COMMIT and XACK): nothing is inserted twice.
    assert await store.store_batch([]) == 0


@pytest.fixture
def private_postgres() -> Iterator[EmbeddedPostgres]:
    base = tempfile.mkdtemp(prefix="ocs-test-pg-down-")
    os.chmod(base, 0o755)
    server = EmbeddedPostgres(Path(base) / "pg", port=free_tcp_port(), fsync=False)
    try:
        server.start()
        migrate.apply(server.url)
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _restart_keeping_password(server: EmbeddedPostgres, url: str) -> None:
    """Start the killed server again with the same port and the URL's password (the embedded
    server renews its password on start; a running exporter keeps the URL it was given)."""
    server.stop()
    server.start()
    password = conninfo_to_dict(url)["password"]
    with server.superuser_connect() as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(OWNER_ROLE), sql.Literal(password)
            )
        )


async def test_postgres_down_then_back_loses_and_doubles_nothing(
    redis_url: str, private_postgres: EmbeddedPostgres
) -> None:
    url = private_postgres.url
    admin = aioredis.Redis.from_url(redis_url)
    store = await UsageStore.open(url, pool_max=2, connect_timeout_s=2.0)
    try:
        await install_catalog_texts(admin, only=["acme"])
        exporter = _exporter(redis_url, admin, store)
        task = asyncio.create_task(exporter.run())
        ledger = Ledger(admin, "acme")
        written = await write_records(ledger, 100)

        async def some_stored() -> bool:
            return (await store_totals(store, "acme"))[0] == written

        await wait_for(some_stored, what="first records stored")
        private_postgres.kill()
        # Charging goes on (the ledger never touches the store); the streams keep the records.
        more = 0
        for index in range(150):
            subscriber = f"49170991{index:05d}"
            await ledger.provision_account(subscriber, balance=7, now_s=1.0)
            more += 1
        await wait_for(
            lambda: _at_least(exporter.metrics.failures.labels("acme", "store"), 2),
            what="store failures counted",
        )
        assert not exporter.metrics.store_ok
        assert await stream_lengths(admin, "acme") >= more
        await asyncio.to_thread(_restart_keeping_password, private_postgres, url)
        expected = await _ledger_after(admin, written + more)

        async def caught_up() -> bool:
            try:
                return await store_totals(store, "acme") == expected
            except Exception:
                return False

        await wait_for(caught_up, timeout_s=60, what="caught up after the restart")
        await wait_for(lambda: _zero(stream_lengths(admin, "acme")), what="trimmed")
        assert exporter.metrics.store_ok
        exporter.stop_event.set()
        await asyncio.wait_for(task, 30)
    finally:
        await store.close()
        await admin.aclose()


async def _ledger_after(admin: Any, count: int) -> tuple[int, int, int, int]:
    """The ledger's figures for what this test wrote: provisions of 1000 and 7, top-ups of 10."""
    first = count - 150
    subscribers = first // 2
    return (count, 0, 0, subscribers * (1000 + 10) + 150 * 7)


async def _at_least(counter: Any, value: int) -> bool:
    return bool(counter._value.get() >= value)


async def _zero(length: Any) -> bool:
    return bool(await length == 0)

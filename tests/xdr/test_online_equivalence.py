"""Offline and online usage of the same subscriber in one period cost the same: the same
tariff rows, legs split at the same boundaries, the same retail and wholesale."""

from __future__ import annotations

from balance.records import LedgerRecord
from tests.charging.conftest import Charging
from tests.support.charging import DEMO_CATALOG, TUESDAY_10_BERLIN
from tests.support.gy import (
    DIRECT_DEBITING,
    EVENT,
    INITIAL,
    MMTEL_CONTEXT,
    SMS_CONTEXT,
    TERMINATION,
    Mscc,
    ccr,
)
from tests.xdr.conftest import ACME_1, HEADER, MIB, OPENING, line
from usage.xdr.importer import FileImport, ImportOptions
from usage.xdr.mapping import load_mapping, mapping_path
from usage.xdr.rate import XdrRater

MOBILE = "+4915112345678"
UK = "sip:+447700900123@ims.example;user=phone"


def priced(record: LedgerRecord) -> tuple[object, ...]:
    return (
        record.service,
        record.units,
        record.retail,
        record.wholesale,
        [(leg.leg_key, leg.units, leg.retail, leg.wholesale) for leg in record.legs],
        [b.units for b in record.buckets],
    )


async def online_call(
    charging: Charging, sid: str, start: float, seconds: int, called: str
) -> None:
    charging.clock.now = start
    await charging.send(
        ccr(sid, INITIAL, 0, msisdn=ACME_1, context=MMTEL_CONTEXT, called=called,
            msccs=[Mscc(None, {"cc_time": 300})])
    )  # fmt: skip
    charging.clock.now = start + seconds
    await charging.send(
        ccr(sid, TERMINATION, 1, msisdn=ACME_1, context=MMTEL_CONTEXT, called=called,
            msccs=[Mscc(None, None, [{"cc_time": seconds}])])
    )  # fmt: skip


async def test_offline_and_online_usage_cost_the_same(charging: Charging, tmp_path) -> None:  # type: ignore[no-untyped-def]
    peak_end = TUESDAY_10_BERLIN + 9 * 3600 - 60  # Tuesday 18:59 Berlin
    # Online: a call across the peak/off-peak boundary, an international call with a connect
    # fee, EU roaming data drawn from the bundle, an SMS by direct debiting.
    await online_call(charging, "cscf;1", peak_end, 150, MOBILE)
    await online_call(charging, "cscf;2", TUESDAY_10_BERLIN + 3600, 61, UK)
    charging.clock.now = TUESDAY_10_BERLIN + 7200
    await charging.send(
        ccr("pgw;1", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10)], visited_plmn="20801")
    )
    charging.clock.now += 60
    await charging.send(
        ccr("pgw;1", TERMINATION, 1, msisdn=ACME_1, visited_plmn="20801",
            msccs=[Mscc(10, None, [{"cc_total_octets": MIB}])])
    )  # fmt: skip
    await charging.send(
        ccr("smsc;1", EVENT, 0, msisdn=ACME_1, context=SMS_CONTEXT,
            requested_action=DIRECT_DEBITING, msccs=[Mscc(None, {"cc_service_specific_units": 1})])
    )  # fmt: skip
    online = [
        *await charging.records("acme", ACME_1, "usage"),
        *await charging.records("acme", ACME_1, "debit"),
    ]
    assert len(online) == 4
    spent_online = OPENING - (await charging.account("acme", ACME_1)).balance

    # Offline: the same usage of the same subscriber, the same week day, other hours for the
    # data and SMS (the same tariff period), from the MNO's file.
    path = tmp_path / "same.csv"
    path.write_text(
        HEADER
        + "\n".join(
            [
                line("c1", "MOC", "2026-11-17 18:59:00", "150", called="015112345678"),
                line("c2", "MOC", "2026-11-17 11:00:00", "61", called="0044 7700 900123"),
                line("d1", "GPRS", "2026-11-17 12:30:00", str(MIB), vplmn="20801"),
                line("s1", "SMS-MO", "2026-11-17 13:00:00", "1"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    mapping = load_mapping(mapping_path(DEMO_CATALOG, "telco_de"))
    result = await FileImport(
        path,
        mapping,
        XdrRater(charging.directory.snapshot.catalog),
        ImportOptions(mno="telco_de"),
        ledger_for=charging.directory.ledger,
        manifests=None,
        now=charging.clock,
    ).run()
    assert result.tenants["acme"].charged == 4
    offline = [
        r for r in await charging.records("acme", ACME_1, "usage") if r.op_id.startswith("xdr:")
    ]
    assert sorted(map(priced, offline)) == sorted(map(priced, online))
    spent_both = OPENING - (await charging.account("acme", ACME_1)).balance
    assert spent_both == 2 * spent_online == 2 * (165_000 + 394_834 + 90_000)

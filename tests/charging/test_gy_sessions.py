"""Gy/Ro sessions charged end to end through the real handler, ledger scripts and catalog."""

from __future__ import annotations

from diameter.message import Message as PdMessage

from tests.charging.conftest import Charging
from tests.support.gy import (
    INITIAL,
    MMTEL_CONTEXT,
    TERMINATION,
    UPDATE,
    Mscc,
    ccr,
    msccs_of,
    result_code,
    tariff_time_changes,
)

MIB = 1_048_576
ACME_1 = "4917099000001"
ACME_IMSI_2 = "262019900000002"
ACME_2 = "4917099000002"
GLOBEX_1 = "4917199000001"
OPENING = 10_000_000
BUNDLE = 1_073_741_824


async def test_home_data_session_draws_the_bundle_and_costs_wholesale(charging: Charging) -> None:
    sid = "pgw.test.local;1;data-home"
    cca = await charging.send(ccr(sid, INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10)]))
    assert result_code(cca) == 2001
    assert msccs_of(cca)[10]["octets"] == 10 * MIB  # acme default grant
    assert msccs_of(cca)[10]["validity"] == 3600
    cca = await charging.send(
        ccr(sid, UPDATE, 1, msisdn=ACME_1, msccs=[Mscc(10, used=[{"cc_total_octets": 5 * MIB}])])
    )
    assert msccs_of(cca)[10]["result_code"] == 2001
    cca = await charging.send(
        ccr(sid, TERMINATION, 2, msisdn=ACME_1, msccs=[Mscc(10, None, [{"cc_total_octets": MIB}])])
    )
    assert result_code(cca) == 2001

    account = await charging.account("acme", ACME_1)
    assert account.balance == OPENING and account.held_money == 0
    (bucket,) = account.buckets
    assert bucket.remaining == BUNDLE - 6 * MIB and bucket.held == 0
    usage = await charging.records("acme", ACME_1)
    assert [(r.units, r.retail, r.wholesale, r.tenant) for r in usage] == [
        (5 * MIB, 0, 10_000, "acme"),  # 0.002 EUR/MiB wholesale even when the bundle pays
        (MIB, 0, 2_000, "acme"),
    ]


async def test_roaming_data_is_priced_by_the_world_zone(charging: Charging) -> None:
    sid = "pgw.test.local;1;data-roam"
    used = [{"cc_total_octets": MIB}]
    await charging.send(
        ccr(sid, INITIAL, 0, imsi=ACME_IMSI_2, msccs=[Mscc(10)], visited_plmn="310260")
    )
    await charging.send(
        ccr(
            sid,
            TERMINATION,
            1,
            imsi=ACME_IMSI_2,
            msccs=[Mscc(10, None, used)],
            visited_plmn="310260",
        )
    )
    account = await charging.account("acme", ACME_2)
    assert account.balance == OPENING - 5_000_000 and account.held_money == 0
    assert account.buckets[0].remaining == BUNDLE  # the bundle covers home and eu only
    (record,) = await charging.records("acme", ACME_2)
    assert (record.retail, record.wholesale, record.leakage_units) == (5_000_000, 1_800_000, 0)


async def test_unknown_rating_group_fails_only_its_mscc(charging: Charging) -> None:
    cca = await charging.send(
        ccr("s;unknown-rg", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10), Mscc(99)])
    )
    assert result_code(cca) == 2001
    answers = msccs_of(cca)
    assert answers[99]["result_code"] == 5031 and answers[99]["octets"] is None
    assert answers[10]["result_code"] == 2001 and answers[10]["octets"] == 10 * MIB


async def test_unknown_subscriber_is_5030(charging: Charging) -> None:
    cca = await charging.send(ccr("s;nobody", INITIAL, 0, msisdn="4930123456", msccs=[Mscc(10)]))
    assert result_code(cca) == 5030
    assert msccs_of(cca) == {}


async def test_tenants_charge_their_own_prices(charging: Charging) -> None:
    used = [{"cc_total_octets": MIB}]
    for msisdn in (ACME_1, GLOBEX_1):
        sid = f"s;tenants;{msisdn}"
        await charging.send(
            ccr(sid, INITIAL, 0, msisdn=msisdn, msccs=[Mscc(10)], visited_plmn="310260")
        )
        await charging.send(
            ccr(
                sid,
                TERMINATION,
                1,
                msisdn=msisdn,
                msccs=[Mscc(10, None, used)],
                visited_plmn="310260",
            )
        )
    (acme,) = await charging.records("acme", ACME_1)
    (globex,) = await charging.records("globex", GLOBEX_1)
    assert (acme.tenant, acme.retail, acme.wholesale) == ("acme", 5_000_000, 1_800_000)
    # globex bills world data in 10 KiB increments: 1 MiB is 103 of them (1,054,720 bytes) at
    # 7.50 EUR/MiB = 7.5439453 EUR, rounded up to the micro-unit; wholesale is on raw units.
    assert (globex.tenant, globex.retail, globex.wholesale) == ("globex", 7_543_946, 2_500_000)


async def test_voice_call_crossing_peak_end_is_split_at_the_boundary(charging: Charging) -> None:
    # Tuesday 18:59:00 Berlin; peak (0.09/min) ends at 19:00, then off-peak (0.05/min).
    charging.clock.now = 1_794_906_000 + 9 * 3600 - 60
    sid = "cscf;voice;1"
    raw = await charging.send_raw(
        ccr(
            sid,
            INITIAL,
            0,
            msisdn=ACME_1,
            context=MMTEL_CONTEXT,
            called="tel:+4915112345678",
            msccs=[Mscc(None, {"cc_time": 300})],
        )
    )
    answer = msccs_of(PdMessage.from_bytes(raw))[None]
    # The grant keeps its Validity-Time and announces the band change (Tariff-Time-Change);
    # the next change (08:00 tomorrow) is beyond it.
    assert answer["time"] == 300 and answer["validity"] == 3600
    assert tariff_time_changes(raw) == {None: charging.clock.now + 60}
    charging.clock.now += 150  # 90 s after the boundary
    await charging.send(
        ccr(
            sid,
            TERMINATION,
            1,
            msisdn=ACME_1,
            context=MMTEL_CONTEXT,
            called="tel:+4915112345678",
            msccs=[Mscc(None, None, [{"cc_time": 150}])],
        )
    )
    (record,) = await charging.records("acme", ACME_1)
    # 60 s at peak (first increment 60 s): 0.09; 90 s off-peak (60 + 30 x 1 s): 0.075.
    assert [(leg.units, leg.retail) for leg in record.legs] == [(60, 90_000), (90, 75_000)]
    assert record.retail == 165_000
    assert (await charging.account("acme", ACME_1)).balance == OPENING - 165_000


async def test_exhaustion_gives_final_unit_then_4012(charging: Charging) -> None:
    sid = "s;exhaust"
    roam = {"visited_plmn": "310260", "msisdn": ACME_1}
    cca = await charging.send(
        ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": 10 * MIB})], **roam)
    )
    answer = msccs_of(cca)[10]
    # 10.00 EUR at 5.00 EUR/MiB buys 2 MiB: the last grant, with the tenant's REDIRECT.
    assert answer["octets"] == 2 * MIB
    fui = answer["fui"]
    assert fui is not None and fui.final_unit_action == 1
    assert fui.redirect_server.redirect_server_address == "https://topup.acme.example/"
    cca = await charging.send(
        ccr(sid, UPDATE, 1, msccs=[Mscc(10, {}, [{"cc_total_octets": 2 * MIB}])], **roam)
    )
    assert msccs_of(cca)[10]["result_code"] == 4012
    account = await charging.account("acme", ACME_1)
    assert account.balance == 0 and account.held_money == 0
    assert charging.sessions.get(sid) is not None and charging.sessions.get(sid).waiting_for_credit


async def test_international_call_with_connect_fee(charging: Charging) -> None:
    sid = "cscf;intl;1"
    called = "sip:+447700900123@ims.example;user=phone"  # UK: acme intl_eu
    cca = await charging.send(
        ccr(sid, INITIAL, 0, msisdn=ACME_1, context=MMTEL_CONTEXT, called=called,
            msccs=[Mscc(None, {"cc_time": 120})])
    )  # fmt: skip
    assert msccs_of(cca)[None]["time"] == 120
    charging.clock.now += 61
    await charging.send(
        ccr(sid, TERMINATION, 1, msisdn=ACME_1, context=MMTEL_CONTEXT, called=called,
            msccs=[Mscc(None, None, [{"cc_time": 61}])])
    )  # fmt: skip
    (record,) = await charging.records("acme", ACME_1)
    # 0.10 connect fee + 61 s at 0.29/min (60 s then per second) = 0.394834 after rounding up;
    # wholesale 61 s at 0.05/min = 0.050834.
    assert (record.units, record.retail, record.wholesale) == (61, 394_834, 50_834)
    assert record.legs[0].leg_key.startswith("acme:acme-2026-01:")
    assert (await charging.account("acme", ACME_1)).balance == OPENING - 394_834

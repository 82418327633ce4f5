"""The usage records of a Gy data session, a Ro voice call and an SMS event carry what parsing
and rating knew (balance/records.py RecordContext), built once per session."""

from __future__ import annotations

import msgspec
from diameter.message import Message
from diameter.message.avp.grouped import RecipientAddress, RecipientInfo, SmsInformation

from balance.records import RecordContext
from ocs.charging.context import sip_context
from tests.charging.conftest import Charging
from tests.support.charging import ledger_records
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

MIB = 1_048_576
ACME_1 = "4917099000001"
ACME_IMSI_2 = "262019900000002"
ACME_2 = "4917099000002"
ACME_3 = "4917099000003"


async def test_gy_data_session_records_carry_the_session_context(charging: Charging) -> None:
    sid = "pgw.test.local;1;ctx-data"
    start = charging.clock.now

    def data(kind: int, number: int, used: int | None) -> Message:
        message = ccr(
            sid,
            kind,
            number,
            imsi=ACME_IMSI_2,
            visited_plmn="26201",
            msccs=[Mscc(10, {} if kind != TERMINATION else None, [{"cc_total_octets": used}])]
            if used
            else [Mscc(10)],
        )
        ps = message.service_information.ps_information
        ps.called_station_id = "internet.acme"
        ps.tgpp_charging_id = (0x1234ABCD).to_bytes(4, "big")
        return message

    assert result_code(await charging.send(data(INITIAL, 0, None))) == 2001
    charging.clock.now += 30
    await charging.send(data(UPDATE, 1, MIB))
    charging.clock.now += 30
    await charging.send(data(TERMINATION, 2, 2 * MIB))
    records = await charging.records("acme", ACME_2)
    assert [r.units for r in records] == [MIB, 2 * MIB]
    for record in records:
        ctx = record.context
        assert ctx is not None
        assert ctx.source == "gy"
        assert ctx.msisdn == ACME_2 and ctx.imsi == ACME_IMSI_2
        assert ctx.visited_plmn == "26201" and ctx.apn == "internet.acme"
        assert ctx.charging_id == str(0x1234ABCD)
        assert ctx.started_at_s == start
        assert ctx.currency == "EUR" and ctx.rate_card_version
        assert record.legs[0].leg_key.split(":")[1] == ctx.rate_card_version
    # One context per session: the CCR-U and CCR-T records share the CCR-I's.
    assert records[0].context == records[1].context
    assert charging.sessions.get(sid) is None  # ended: nothing kept


async def test_ro_voice_call_records_called_calling_and_role(charging: Charging) -> None:
    sid = "cscf;ctx-voice;1"
    message = ccr(
        sid,
        INITIAL,
        0,
        msisdn=ACME_1,
        context=MMTEL_CONTEXT,
        called="tel:+4915112345678",
        msccs=[Mscc(None, {"cc_time": 120})],
    )
    message.service_information.ims_information.ims_charging_identifier = "icid-42"
    await charging.send(message)
    charging.clock.now += 61
    await charging.send(
        ccr(
            sid,
            TERMINATION,
            1,
            msisdn=ACME_1,
            context=MMTEL_CONTEXT,
            called="tel:+4915112345678",
            msccs=[Mscc(None, None, [{"cc_time": 61}])],
        )
    )
    (record,) = await charging.records("acme", ACME_1)
    ctx = record.context
    assert ctx is not None
    assert ctx.source == "ro" and ctx.role_of_node == 0
    assert ctx.called == "4915112345678" and ctx.calling == ACME_1
    assert ctx.charging_id == "icid-42" and ctx.msisdn == ACME_1


async def test_sms_event_record_carries_source_and_recipient(charging: Charging) -> None:
    message = ccr(
        "smsc;ctx-sms;1",
        EVENT,
        0,
        msisdn=ACME_3,
        context=SMS_CONTEXT,
        requested_action=0,
        msccs=[Mscc(None, {"cc_service_specific_units": 1})],
        sms_recipient="+447700900123",
    )
    message.service_information.sms_information = SmsInformation(
        recipient_info=[
            RecipientInfo(recipient_address=[RecipientAddress(address_data="+447700900123")])
        ]
    )
    assert result_code(await charging.send(message)) == 2001
    (record,) = await ledger_records(charging.client, "acme", ACME_3, "debit")
    ctx = record.context
    assert ctx is not None
    assert ctx.source == "sms" and ctx.msisdn == ACME_3
    assert ctx.called == "447700900123"
    assert ctx.started_at_s == charging.clock.now


def test_sip_context_normalises_numbers(charging: Charging) -> None:
    tenant = charging.directory.snapshot.tenants["acme"]
    raw = sip_context(
        tenant,
        subscriber=ACME_1,
        caller="+4917099000001",
        callee="sip:+4930123456@pbx",
        started_at_s=5,
        call_key="k",
        rate_card_version="v1",
    )
    ctx = msgspec.msgpack.decode(raw, type=RecordContext)
    assert (ctx.source, ctx.called, ctx.calling, ctx.charging_id) == (
        "sip",
        "4930123456",
        ACME_1,
        "k",
    )

"""parse_ccr with a SubscriptionMemo: the same parse as without it, faults still raised (never
remembered), and a bounded memo."""

from __future__ import annotations

import pytest

from diameter_apps.codec import decode_message
from diameter_apps.credit_control import CreditControlRequest, SubscriptionMemo, parse_ccr
from diameter_apps.errors import InvalidAvpValue
from sim import messages as m

PEER = m.PeerIdentity("gw.test.local", "test.local")


def ccr(msisdn: str, imsi: str | None = "262011234567890", number: int = 0) -> CreditControlRequest:
    spec = m.CcrSpec(
        session_id=f"memo;{msisdn}",
        request_type=1 if number == 0 else 2,
        request_number=number,
        context="32251@3gpp.org",
        msisdn=msisdn,
        imsi=imsi,
        msccs=(m.MsccRequest(rating_group=10, unit=m.Unit.BYTES, requested=1000),),
    )
    raw = m.CcrEncoder(PEER, "ocs.test.local").encode(spec, hop_by_hop=1, end_to_end=1)
    return parse_ccr(decode_message(raw))


def parsed_with(memo: SubscriptionMemo, msisdn: str, number: int = 0) -> CreditControlRequest:
    spec_ccr = ccr(msisdn, number=number)
    return parse_ccr(spec_ccr.message, subscriptions=memo)


def test_same_subscription_ids_as_without_the_memo_and_reused_within_a_session() -> None:
    memo = SubscriptionMemo()
    first = parsed_with(memo, "491701234567")
    update = parsed_with(memo, "491701234567", number=1)
    assert first.subscription_ids == ccr("491701234567").subscription_ids
    assert update.subscription_ids is first.subscription_ids  # taken from the memo
    other = parsed_with(memo, "491709999999")
    assert other.subscription_ids == ccr("491709999999").subscription_ids
    assert other.subscription_ids != first.subscription_ids


def test_a_faulty_subscription_id_is_refused_every_time() -> None:
    memo = SubscriptionMemo()
    spec = m.CcrSpec(
        session_id="memo;empty",
        request_type=1,
        request_number=0,
        context="32251@3gpp.org",
        msisdn=" ",
        imsi=None,
    )
    raw = m.CcrEncoder(PEER, "ocs.test.local").encode(spec, hop_by_hop=1, end_to_end=1)
    for _ in range(2):
        with pytest.raises(InvalidAvpValue, match="Subscription-Id-Data is empty"):
            parse_ccr(decode_message(raw), subscriptions=memo)


def test_the_memo_is_bounded() -> None:
    memo = SubscriptionMemo(entries_max=2)
    numbers = [f"49170123456{i}" for i in range(5)]
    for number in numbers:
        assert parsed_with(memo, number).subscription_ids == ccr(number).subscription_ids
    assert len(memo) <= 2

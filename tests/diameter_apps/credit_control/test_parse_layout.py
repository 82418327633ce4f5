"""parse_ccr with the layout memo (SubscriptionMemo.layouts): requests of one shape share the
layout of their top-level AVPs, and parse exactly as without it; a message whose AVPs changed
after decoding, or of another shape, gets its own; faults are never remembered."""

from __future__ import annotations

import pytest

from diameter_apps.avp import Avp
from diameter_apps.codes import AvpCode
from diameter_apps.credit_control import CreditControlRequest, SubscriptionMemo, parse_ccr
from diameter_apps.dictionary import default_dictionary
from diameter_apps.errors import AvpOccursTooManyTimes
from diameter_apps.limits import DEFAULT_LIMITS
from diameter_apps.message import Message
from diameter_apps.validation import Profile, RequestChecker
from sim import messages as m

PEER = m.PeerIdentity("gw.test.local", "test.local")
ENCODER = m.CcrEncoder(PEER, "ocs.test.local")


def frame(session: str, number: int, used: int, rgs: tuple[int, ...] = (10, 20)) -> bytes:
    msccs = tuple(m.MsccRequest(rg, m.Unit.BYTES, requested=0, used=used) for rg in rgs)
    spec = m.CcrSpec(session, 2, number, m.GY_CONTEXT, "491701234567", "262011234567890", msccs)
    return ENCODER.encode(spec, hop_by_hop=number + 1, end_to_end=number + 1)


def without_message(ccr: CreditControlRequest) -> dict[str, object]:
    fields = {name: getattr(ccr, name) for name in ccr.__struct_fields__}
    del fields["message"]
    return fields


def test_requests_of_one_shape_share_a_layout_and_parse_as_without_it() -> None:
    checker = RequestChecker(default_dictionary(), Profile.LENIENT, DEFAULT_LIMITS)
    memo = SubscriptionMemo()
    for i in range(1, 5):
        data = frame(f"layout;{i}", i, 1_000 + i)
        message, _ = checker.decode(data)
        with_memo = parse_ccr(message, subscriptions=memo)
        alone = parse_ccr(checker.decode(data)[0])
        assert without_message(with_memo) == without_message(alone)
        assert with_memo.session_id == f"layout;{i}"
        assert [s.used[0].units.total_octets for s in with_memo.services] == [1_000 + i] * 2
    assert checker.shape_count == 1
    # The first request was walked (no shape yet): laid out without the memo.
    assert len(memo.layouts) == 1
    # Another shape (three MSCCs) gets a layout of its own once remembered.
    for _ in range(2):
        message, _ = checker.decode(frame("layout;other", 1, 5, rgs=(10, 20, 30)))
        assert len(parse_ccr(message, subscriptions=memo).services) == 3
    assert len(memo.layouts) == 2


def test_a_message_changed_after_decoding_is_laid_out_afresh() -> None:
    checker = RequestChecker(default_dictionary(), Profile.LENIENT, DEFAULT_LIMITS)
    memo = SubscriptionMemo()
    data = frame("layout;changed", 1, 7)
    for _ in range(2):
        parse_ccr(checker.decode(data)[0], subscriptions=memo)
    message, _ = checker.decode(data)
    assert message.shared_positions() is not None
    # The MSCCs dropped: the shared layout no longer describes the message.
    message.avps = [a for a in message.avps if a.code != 456]
    assert message.shared_positions() is None
    assert parse_ccr(message, subscriptions=memo).services == ()
    assert parse_ccr(checker.decode(data)[0], subscriptions=memo).services != ()


def test_a_repeated_single_instance_avp_is_refused_every_time() -> None:
    memo = SubscriptionMemo()
    built = Message.request(272, 4, [])
    base = parse_ccr(RequestChecker(default_dictionary(), Profile.LENIENT, DEFAULT_LIMITS)
                     .decode(frame("layout;dup", 1, 1))[0])  # fmt: skip
    built.avps = [*base.message.avps, Avp.u32(AvpCode.AUTH_APPLICATION_ID, 4)]
    for _ in range(2):
        with pytest.raises(AvpOccursTooManyTimes):
            parse_ccr(built, subscriptions=memo)
    assert len(memo.layouts) == 0

"""The MSCCs of a remembered shape read from the frame (parse_plan) parse exactly as the general
path does: generated CCRs with varied MSCCs (units, Reporting-Reasons, money, tariff changes,
triggers, repeated AVPs, unknown AVPs with and without the M bit, wrong sizes) and varied
top-level faults (a required AVP missing, an unknown mandatory AVP) go through a remembering
checker and the layout memo, and through a walking checker and a memo-less parse; the parsed
requests, or the Result-Code and Failed-AVPs of the fault, are the same."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import VENDOR_3GPP, CommandCode
from diameter_apps.credit_control import SubscriptionMemo, parse_ccr
from diameter_apps.credit_control.codes import CcAvp
from diameter_apps.dictionary import default_dictionary
from diameter_apps.errors import DiameterError
from diameter_apps.limits import DEFAULT_LIMITS
from diameter_apps.validation import Profile, RequestChecker
from tests.diameter_apps.credit_control import ccr_builders as b

_DICTIONARY = default_dictionary()
_u32 = st.integers(0, 2**32 - 1)
_u64 = st.integers(0, 2**64 - 1)


def _sized(code: int, size: int) -> st.SearchStrategy[Avp]:
    """A fixed-size AVP, mostly of its size, sometimes not (5014 at decode)."""
    good = st.binary(min_size=size, max_size=size)
    return st.builds(
        lambda data: Avp.octets(code, data),
        st.one_of(good, good, good, good, st.binary(max_size=9)),
    )


_unit = st.one_of(
    st.builds(lambda v: Avp.u32(CcAvp.CC_TIME, v), _u32),
    st.builds(lambda v: Avp.u64(CcAvp.CC_TOTAL_OCTETS, v), _u64),
    st.builds(lambda v: Avp.u64(CcAvp.CC_INPUT_OCTETS, v), _u64),
    st.builds(lambda v: Avp.u64(CcAvp.CC_OUTPUT_OCTETS, v), _u64),
    st.builds(lambda v: Avp.u64(CcAvp.CC_SERVICE_SPECIFIC_UNITS, v), _u64),
    _sized(int(CcAvp.CC_TOTAL_OCTETS), 8),
    st.builds(
        b.money,
        st.integers(-5, 10**9),
        st.one_of(st.none(), st.integers(-20, 20)),
        st.one_of(st.none(), st.just(978)),
    ),
)
_reason = st.one_of(st.none(), st.integers(-3, 12))
_unknown = st.builds(
    lambda code, vendor, m, data: Avp.octets(code, data, vendor=vendor, m=m),
    st.sampled_from([99_990, 99_991]),
    st.sampled_from([0, 0, VENDOR_3GPP, 10415 + 1]),
    st.sampled_from([False, False, False, True]),  # with the M bit: 5001 at decode
    st.binary(max_size=6),
)
_usu = st.builds(
    lambda units, reason, tariff, extra: b.usu(*units, *extra, reason=reason, tariff_change=tariff),
    st.lists(_unit, max_size=3),
    _reason,
    st.one_of(st.none(), st.none(), st.integers(0, 4)),
    st.lists(_unknown, max_size=1),
)
_rsu = st.one_of(st.none(), st.builds(lambda units: b.rsu(*units), st.lists(_unit, max_size=2)))
_mscc = st.builds(
    lambda rg, si, requested, used, reason, triggers, extra, twice: b.mscc(
        rg,
        service_id=si,
        requested=requested,
        used=used,
        reason=reason,
        triggers=triggers,
        extra=[*extra, *([Avp.u32(CcAvp.RATING_GROUP, 7)] if twice else [])],
    ),
    st.one_of(st.none(), _u32),
    st.one_of(st.none(), _u32),
    _rsu,
    st.lists(_usu, max_size=2),
    _reason,
    st.one_of(st.none(), st.none(), st.lists(st.integers(0, 5), max_size=2)),
    st.lists(st.one_of(_unknown, _sized(int(CcAvp.SERVICE_IDENTIFIER), 4)), max_size=1),
    st.sampled_from([False, False, False, True]),  # Rating-Group twice: 5009
)
_REQUIRED = [263, 264, 296, 283, 258, 461, 416, 415]


@st.composite
def _ccr(draw: st.DrawFn) -> bytes:
    avps = b.ccr_avps(
        2, draw(st.integers(0, 9)), body=draw(st.lists(_mscc, min_size=1, max_size=3))
    )
    if draw(st.integers(0, 5)) == 0:  # a required AVP missing: 5005
        avps = b.without(avps, draw(st.sampled_from(_REQUIRED)))
    if draw(st.integers(0, 7)) == 0:  # an unknown AVP at top level, maybe with the M bit
        avps.append(draw(_unknown))
    return Message.request(CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=3, end_to_end=4).encode()


def _outcome(checker: RequestChecker, wire: bytes, memo: SubscriptionMemo | None) -> object:
    try:
        message, _ = checker.decode(wire)
        parsed = parse_ccr(message, Profile.LENIENT, memo)
    except DiameterError as error:
        return (
            int(error.result_code),
            [failed.encode() for failed in error.failed_avps],
        )
    fields = {name: getattr(parsed, name) for name in parsed.__struct_fields__}
    del fields["message"]
    return fields


@settings(max_examples=300, deadline=None)
@given(wires=st.lists(_ccr(), min_size=1, max_size=3), variants=st.lists(_ccr(), max_size=2))
def test_the_frame_reader_parses_as_the_general_path(
    wires: list[bytes], variants: list[bytes]
) -> None:
    remembering = RequestChecker(_DICTIONARY, Profile.LENIENT, DEFAULT_LIMITS)
    walking = RequestChecker(_DICTIONARY, Profile.LENIENT, DEFAULT_LIMITS, shapes_max=0)
    memo = SubscriptionMemo()
    for wire in [*wires, *variants, *wires]:
        expected = _outcome(walking, wire, None)
        for _ in range(3):  # walked; from the shape (layout and plan made); from both
            assert _outcome(remembering, wire, memo) == expected


def _gy(used: int, *, rg_twice: bool = False, money: bool = False) -> bytes:
    extra = [Avp.u32(CcAvp.RATING_GROUP, 11)] if rg_twice else []
    units = [b.money(150, -2)] if money else [Avp.u64(CcAvp.CC_TOTAL_OCTETS, used)]
    body = [
        b.mscc(10, requested=b.rsu(), used=[b.usu(*units, reason=2)], reason=4, extra=extra),
        b.mscc(20, service_id=3, requested=b.rsu(Avp.u32(CcAvp.CC_TIME, 60))),
    ]
    avps = b.ccr_avps(2, 1, body=body)
    return Message.request(CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=1).encode()


def test_a_usual_shape_is_read_from_the_frame_with_each_request_s_values() -> None:
    checker = RequestChecker(_DICTIONARY, Profile.LENIENT, DEFAULT_LIMITS)
    memo = SubscriptionMemo()
    for used in (1, 2, 2**64 - 1, 5):
        message, _ = checker.decode(_gy(used))
        ccr = parse_ccr(message, Profile.LENIENT, memo)
        first, second = ccr.services
        assert first.used[0].units.total_octets == used
        assert (first.rating_group, first.reporting_reason, first.used[0].reporting_reason) == (
            10, 4, 2,
        )  # fmt: skip
        assert first.requested is not None and first.requested.is_empty
        assert second.requested is not None and second.requested.time_s == 60
        assert (second.rating_group, second.service_identifier, second.used) == (20, 3, ())
    (layout,) = [entry[1] for entry in memo.layouts._entries.values()]
    assert layout.services is not None
    # The MSCCs of a request from the shape were never decoded into AVP objects.
    message, _ = checker.decode(_gy(9))
    assert [
        a._children for a in message.avps if a.code == CcAvp.MULTIPLE_SERVICES_CREDIT_CONTROL
    ] == [
        None,
        None,
    ]
    parse_ccr(message, Profile.LENIENT, memo)
    assert all(a._children is None for a in message.avps)


def test_a_shape_the_reader_cannot_read_gets_no_plan_and_the_general_faults() -> None:
    for wire in (_gy(1, rg_twice=True), _gy(1, money=True)):
        checker = RequestChecker(_DICTIONARY, Profile.LENIENT, DEFAULT_LIMITS)
        memo = SubscriptionMemo()
        walking = RequestChecker(_DICTIONARY, Profile.LENIENT, DEFAULT_LIMITS, shapes_max=0)
        expected = _outcome(walking, wire, None)
        for _ in range(3):
            assert _outcome(checker, wire, memo) == expected
        assert all(entry[1].services is None for entry in memo.layouts._entries.values())

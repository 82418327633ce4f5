"""parse_ccr on any decodable message returns a request or raises a DiameterError, nothing else,
and every such error can be answered."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from diameter_apps.answers import answer_for_error
from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import VENDOR_3GPP, CommandCode
from diameter_apps.credit_control import CreditControlRequest, parse_ccr
from diameter_apps.credit_control.codes import CcAvp, GppAvp
from diameter_apps.errors import DiameterError
from diameter_apps.validation import Profile
from tests.diameter_apps.credit_control.ccr_builders import (
    OUR_HOST,
    OUR_REALM,
    ccr_avps,
    ims_information,
    location_tai_ecgi,
    money,
    mscc,
    ps_information,
    rsu,
    service_information,
    sms_information,
    units,
    usu,
)

CODES_0 = [int(c) for c in CcAvp] + [263, 264, 296, 283, 293, 258, 260, 278, 268, 284, 282]
CODES_3GPP = [int(c) for c in GppAvp]

fixed_payload = st.sampled_from([b"", b"\x00" * 4, b"\x00\x00\x00\x05", b"\xff" * 4, b"\x00" * 8])
payload = st.one_of(fixed_payload, st.binary(max_size=12), st.text(max_size=8).map(str.encode))


def leaf() -> st.SearchStrategy[Avp]:
    vendor0 = st.builds(lambda c, d, m: Avp.octets(c, d, m=m), st.sampled_from(CODES_0), payload,
                        st.booleans())  # fmt: skip
    vendor3 = st.builds(
        lambda c, d: Avp.octets(c, d, VENDOR_3GPP), st.sampled_from(CODES_3GPP), payload
    )
    return st.one_of(vendor0, vendor3)


avp_tree = st.recursive(
    leaf(),
    lambda children: st.builds(
        lambda code, vendor, kids: Avp.grouped(code, kids, vendor),
        st.sampled_from(CODES_0 + CODES_3GPP),
        st.sampled_from([0, VENDOR_3GPP]),
        st.lists(children, max_size=4),
    ),
    max_leaves=12,
)


def golden() -> list[Avp]:
    return ccr_avps(
        2,
        1,
        body=[
            mscc(1, requested=rsu(money(15, -1)), used=[usu(*units(time_s=1, total=2))]),
            service_information(
                ps_information(location=location_tai_ecgi()), ims_information(), sms_information()
            ),
        ],
    )


def check(message: Message, profile: Profile) -> None:
    try:
        parsed = parse_ccr(message, profile)
    except DiameterError as error:
        answer = answer_for_error(message, error, origin_host=OUR_HOST, origin_realm=OUR_REALM)
        decode_message(answer.encode())
        return
    assert isinstance(parsed, CreditControlRequest)


@settings(max_examples=300, deadline=None)
@given(
    extra=st.lists(avp_tree, max_size=6),
    drop=st.sets(st.integers(min_value=0, max_value=12), max_size=3),
    profile=st.sampled_from(list(Profile)),
)
def test_random_avps_around_a_golden_ccr(
    extra: list[Avp], drop: set[int], profile: Profile
) -> None:
    avps = [avp for i, avp in enumerate(golden()) if i not in drop] + extra
    request = Message.request(CommandCode.CREDIT_CONTROL, 4, avps)
    check(decode_message(request.encode()), profile)


@settings(max_examples=300, deadline=None)
@given(
    position=st.integers(min_value=20),
    noise=st.binary(min_size=1, max_size=4),
    profile=st.sampled_from(list(Profile)),
)
def test_corrupted_bytes_of_a_golden_ccr(position: int, noise: bytes, profile: Profile) -> None:
    data = bytearray(Message.request(CommandCode.CREDIT_CONTROL, 4, golden()).encode())
    at = position % (len(data) - len(noise))
    data[at : at + len(noise)] = noise
    try:
        message = decode_message(bytes(data))
    except DiameterError:
        return
    check(message, profile)


@settings(max_examples=200, deadline=None)
@given(avps=st.lists(avp_tree, max_size=10), profile=st.sampled_from(list(Profile)))
def test_entirely_random_avps(avps: list[Avp], profile: Profile) -> None:
    request = Message.request(CommandCode.CREDIT_CONTROL, 4, avps)
    check(decode_message(request.encode()), profile)

"""Every error answer of DESIGN B6/B8/B10: exact Result-Code, E bit, Failed-AVP, echoes."""

from __future__ import annotations

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import FLAG_ERROR, FLAG_PROXIABLE, FLAG_REQUEST, FLAG_RETRANSMIT, AvpCode
from diameter_apps.errors import DiameterError
from diameter_apps.events import ErrorAnswered, ProtocolDeviation
from diameter_apps.limits import CodecLimits
from diameter_apps.validation import Profile

from .helpers import (
    OUR_HOST,
    OUR_REALM,
    Clock,
    ccr,
    failed_avp_children,
    only,
    open_peer,
    origin,
    request_events,
    sent,
)


def _answer(request: Message, profile: Profile = Profile.LENIENT, **kw: object) -> Message:
    clock = Clock()
    peer = open_peer(clock, profile=profile, **kw)
    events = peer.receive_data(request.encode(), clock.now)
    assert not request_events(events), "the request must not reach the application"
    (answer,) = sent(peer)
    (error,) = only(events, ErrorAnswered)
    assert error.result_code == answer.result_code
    return answer


def _assert_echoes(answer: Message, request: Message) -> None:
    assert (answer.command_code, answer.application_id) == (
        request.command_code,
        request.application_id,
    )
    assert (answer.hop_by_hop, answer.end_to_end) == (request.hop_by_hop, request.end_to_end)
    assert not answer.is_request
    assert answer.origin_host == OUR_HOST
    assert answer.find(AvpCode.ORIGIN_REALM).as_str() == OUR_REALM  # type: ignore[union-attr]
    if request.session_id is not None:
        assert answer.avps[0].code == AvpCode.SESSION_ID
        assert answer.session_id == request.session_id


def test_error_answer_echoes_ids_session_first_proxy_info_in_order_and_message() -> None:
    proxies = [
        Avp.grouped(284, [Avp.utf8(280, f"proxy{i}.example"), Avp.octets(33, bytes([i]))])
        for i in range(3)
    ]
    request = ccr(
        extra=[Avp.u32(999999, 1), *proxies],
        flags=FLAG_REQUEST | FLAG_PROXIABLE | FLAG_RETRANSMIT,
    )
    answer = _answer(request)
    _assert_echoes(answer, request)
    assert answer.flags == FLAG_PROXIABLE  # R and T cleared, P copied, no E for 5xxx
    assert answer.find_all(284) == proxies
    message = answer.find(AvpCode.ERROR_MESSAGE)
    assert message is not None and not message.is_mandatory and "999999" in message.as_str()


def test_unknown_command_is_3001_with_e_bit() -> None:
    request = Message.request(999, 4, [Avp.utf8(263, "s;1"), *origin()], hop_by_hop=5)
    answer = _answer(request)
    assert answer.result_code == 3001 and answer.is_error
    _assert_echoes(answer, request)


def test_unknown_command_in_the_base_application_is_3001() -> None:
    answer = _answer(Message.request(275, 0, origin()))
    assert answer.result_code == 3001 and answer.is_error


def test_other_destination_host_is_3002() -> None:
    request = ccr(extra=[Avp.utf8(AvpCode.DESTINATION_HOST, "ocs2.mvno.example")])
    answer = _answer(request)
    assert answer.result_code == 3002 and answer.is_error


def test_our_destination_host_is_accepted() -> None:
    clock = Clock()
    peer = open_peer(clock)
    request = ccr(extra=[Avp.utf8(AvpCode.DESTINATION_HOST, OUR_HOST.upper())])
    assert request_events(peer.receive_data(request.encode(), clock.now))


def test_other_destination_realm_is_3003() -> None:
    request = ccr(replace={283: Avp.utf8(283, "elsewhere.example")})
    answer = _answer(request)
    assert answer.result_code == 3003 and answer.is_error
    _assert_echoes(answer, request)


def test_too_many_requests_in_flight_is_3004() -> None:
    clock = Clock()
    peer = open_peer(clock, inflight_requests_max=1)
    assert request_events(peer.receive_data(ccr().encode(), clock.now))
    peer.receive_data(ccr(hop_by_hop=11, end_to_end=5001).encode(), clock.now)
    (answer,) = sent(peer)
    assert answer.result_code == 3004 and answer.is_error and answer.hop_by_hop == 11


def test_our_identity_in_route_record_is_3005() -> None:
    answer = _answer(ccr(extra=[Avp.utf8(AvpCode.ROUTE_RECORD, OUR_HOST)]))
    assert answer.result_code == 3005 and answer.is_error


def test_unknown_application_is_3007() -> None:
    request = ccr()
    request.application_id = 16777238
    answer = _answer(request)
    assert answer.result_code == 3007 and answer.is_error
    assert answer.application_id == 16777238


def test_e_bit_in_a_request_is_3008() -> None:
    answer = _answer(ccr(flags=FLAG_REQUEST | FLAG_PROXIABLE | FLAG_ERROR))
    assert answer.result_code == 3008 and answer.is_error


def test_missing_m_bit_is_3009_when_strict_and_a_deviation_when_lenient() -> None:
    no_m = Avp.utf8(461, "32251@3gpp.org", m=False)
    answer = _answer(ccr(replace={461: no_m}), Profile.STRICT)
    assert answer.result_code == 3009 and answer.is_error
    assert failed_avp_children(answer) == [no_m]
    clock = Clock()
    peer = open_peer(clock)
    events = peer.receive_data(ccr(replace={461: no_m}).encode(), clock.now)
    assert request_events(events)
    assert any("M bit" in d.description for d in only(events, ProtocolDeviation))


def test_unknown_avp_with_m_bit_is_5001_with_it_as_failed_avp() -> None:
    unknown = Avp.u32(123_456, 7, vendor=99)
    answer = _answer(ccr(extra=[unknown]))
    assert answer.result_code == 5001 and not answer.is_error
    assert failed_avp_children(answer) == [unknown]


def test_unknown_avp_inside_a_known_grouped_with_m_bit_is_5001() -> None:
    unknown = Avp.u32(123_457, 1)
    mscc = Avp.grouped(456, [Avp.u32(432, 1), unknown])
    answer = _answer(ccr(extra=[mscc]))
    assert answer.result_code == 5001
    assert failed_avp_children(answer) == [unknown]


def test_unknown_avp_without_m_bit_is_ignored() -> None:
    clock = Clock()
    peer = open_peer(clock, profile=Profile.STRICT)
    events = peer.receive_data(ccr(extra=[Avp.u32(123_456, 7, m=False)]).encode(), clock.now)
    assert request_events(events) and peer.data_to_send() == b""


def test_invalid_utf8_is_5004() -> None:
    bad = Avp(461, 0x40, 0, b"\xff\xfe")
    answer = _answer(ccr(replace={461: bad}))
    assert answer.result_code == 5004
    assert failed_avp_children(answer) == [bad]


def test_grouped_too_deep_is_5004() -> None:
    nested = Avp.u32(432, 1)
    for _ in range(4):
        nested = Avp.grouped(456, [nested])
    answer = _answer(ccr(extra=[nested]), limits=CodecLimits(avp_depth_max=3))
    assert answer.result_code == 5004
    assert failed_avp_children(answer)[0].code == 456


def test_missing_required_avp_is_5005_naming_it() -> None:
    # Destination-Realm is the base's to require; CC-Request-Number etc. are checked (with the
    # same 5005 answer) by diameter_apps.credit_control.parse_ccr.
    answer = _answer(ccr(replace={283: None}))
    assert answer.result_code == 5005 and not answer.is_error
    (missing,) = failed_avp_children(answer)
    assert missing.code == 283


def test_duplicate_session_id_is_5009_with_the_second_one() -> None:
    second = Avp.utf8(263, "other;1")
    answer = _answer(ccr(extra=[second]))
    assert answer.result_code == 5009
    assert failed_avp_children(answer) == [second]


def test_duplicated_origin_host_is_a_deviation_when_lenient_and_5009_when_strict() -> None:
    twice = origin()
    answer = _answer(ccr(extra=twice), Profile.STRICT)
    assert answer.result_code == 5009
    clock = Clock()
    peer = open_peer(clock)
    events = peer.receive_data(ccr(extra=twice).encode(), clock.now)
    assert request_events(events)
    assert only(events, ProtocolDeviation)


def test_version_other_than_1_is_5011() -> None:
    wire = bytearray(ccr().encode())
    wire[0] = 2
    clock = Clock()
    peer = open_peer(clock)
    peer.receive_data(bytes(wire), clock.now)
    (answer,) = sent(peer)
    assert answer.result_code == 5011 and answer.hop_by_hop == 10 and answer.version == 1
    assert not peer.should_close


def test_wrong_size_for_a_fixed_type_is_5014() -> None:
    bad = Avp(415, 0x40, 0, b"\x00\x00\x01")
    answer = _answer(ccr(replace={415: bad}))
    assert answer.result_code == 5014
    assert failed_avp_children(answer) == [bad]


def test_avp_overrunning_the_message_is_5014_still_echoing_session_id() -> None:
    request = ccr()
    wire = bytearray(request.encode())
    last = len(wire) - 12  # CC-Request-Number, the last AVP
    wire[last + 5 : last + 8] = (40).to_bytes(3, "big")
    clock = Clock()
    peer = open_peer(clock)
    peer.receive_data(bytes(wire), clock.now)
    (answer,) = sent(peer)
    assert answer.result_code == 5014
    assert answer.session_id == request.session_id
    (failed,) = failed_avp_children(answer)
    # RFC 6733 §7.1.5: the header with a zero-filled payload of the type's minimum length.
    assert failed.code == 415 and failed.data == bytes(4)


def test_framing_error_closes_without_answer() -> None:
    clock = Clock()
    peer = open_peer(clock)
    peer.receive_data(b"\x01\x00\x00\x13", clock.now)  # length 19
    assert peer.data_to_send() == b"" and peer.should_close


def test_every_error_class_maps_to_its_e_bit() -> None:
    import diameter_apps.errors as errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, DiameterError) and c is not DiameterError
    ]
    assert len(classes) >= 20
    for cls in classes:
        error = cls("x")
        assert error.e_bit == (3000 <= cls.result_code < 4000)

"""Parser and serializer: header forms, limits, malformed input → a SIP status or a drop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocs.sip.errors import SipParseError
from ocs.sip.head import Via, parse_via
from ocs.sip.message import (
    COMPACT_FORMS,
    ParseLimits,
    SipRequest,
    SipResponse,
    build_response,
    canonical_name,
    parse_message,
    response_destination,
)
from tests.sip.helpers import request_bytes

LIMITS = ParseLimits(message_bytes_max=8192, headers_max=64)


def parse_request(data: bytes, limits: ParseLimits = LIMITS) -> SipRequest:
    message = parse_message(data, limits)
    assert isinstance(message, SipRequest)
    return message


def parse_error(data: bytes, limits: ParseLimits = LIMITS) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(data, limits)
    return info.value


def test_full_request_fields() -> None:
    request = parse_request(
        request_bytes(
            extra=[
                "P-Asserted-Identity: <sip:+491710000001@pai.test>, <tel:+491710000001>",
                'P-Charge-Info: "Payer" <sip:+491719999999@x>',
            ],
            rport=True,
        )
    )
    assert request.method == "INVITE"
    assert request.request_uri.user == "+4930123456"
    assert request.top_via == Via(
        "UDP", "127.0.0.1", 5070, (("branch", "z9hG4bK-test-1"), ("rport", None))
    )
    assert request.top_via.branch == "z9hG4bK-test-1"
    assert request.top_via.wants_rport
    assert request.from_tag == "caller-tag"
    assert request.to_tag is None
    assert request.call_id == "call-1@proxy.test"
    assert request.cseq == 1
    assert request.header("P-Charge-Info") == '"Payer" <sip:+491719999999@x>'
    assert request.header("P-Asserted-Identity") is not None


def test_every_compact_form_maps_to_its_full_name() -> None:
    for short, full in COMPACT_FORMS.items():
        assert canonical_name(short) == full
        assert canonical_name(short.upper()) == full
        assert canonical_name(full.upper()) == full
    assert canonical_name("cseq") == "CSeq"
    assert canonical_name("X-Unknown") == "X-Unknown"


def test_compact_headers_parse_like_full_ones() -> None:
    data = (
        b"INVITE sip:+4930123@ocs SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa\r\n"
        b"f: <sip:+4917@x>;tag=1\r\n"
        b"t: <sip:+4930123@x>\r\n"
        b"i: abc@x\r\n"
        b"m: <sip:x@10.0.0.1>\r\n"
        b"CSeq: 7 INVITE\r\n"
        b"c: application/sdp\r\n"
        b"l: 4\r\n\r\nv=0\r"
    )
    request = parse_request(data)
    assert request.call_id == "abc@x"
    assert request.from_tag == "1"
    assert request.header("Contact") == "<sip:x@10.0.0.1>"
    assert request.header("Content-Type") == "application/sdp"
    assert request.body == b"v=0\r"
    assert request.cseq == 7


def test_multi_value_via_in_one_line_and_in_several() -> None:
    data = request_bytes(
        extra=["Via: SIP/2.0/TCP second.test;branch=z9hG4bKb, SIP/2.0/UDP [2001:db8::1]:5080"]
    )
    request = parse_request(data)
    assert [via.host for via in request.vias] == ["127.0.0.1", "second.test", "2001:db8::1"]
    assert request.vias[2].port == 5080
    assert request.vias[1].transport == "TCP"


def test_folded_header_lines_and_bare_lf_line_ends() -> None:
    data = (
        b"OPTIONS sip:ocs SIP/2.0\n"
        b"Via: SIP/2.0/UDP 10.0.0.1\n ;branch=z9hG4bKfold\n"
        b"From: <sip:a@x>;tag=9\nTo: <sip:ocs>\nCall-ID: c1\nCSeq: 2 OPTIONS\n\n"
    )
    request = parse_request(data)
    assert request.top_via.branch == "z9hG4bKfold"
    assert request.top_via.port is None


def test_leading_crlf_keepalives_are_ignored() -> None:
    assert parse_request(b"\r\n\r\n" + request_bytes()).method == "INVITE"


def test_via_received_and_rport_stamping() -> None:
    via = parse_via("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport")
    stamped = via.stamped("192.0.2.7", 40000)
    assert stamped.received == "192.0.2.7"
    assert ("rport", "40000") in stamped.params
    assert response_destination(via, ("192.0.2.7", 40000)) == ("192.0.2.7", 40000)
    plain = parse_via("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx")
    assert plain.stamped("10.0.0.1", 1).received is None  # same host: nothing to add
    assert plain.stamped("192.0.2.7", 1).received == "192.0.2.7"
    assert response_destination(plain, ("192.0.2.7", 1234)) == ("192.0.2.7", 5062)
    default_port = parse_via("SIP/2.0/UDP proxy.test;branch=z9hG4bKx")
    assert response_destination(default_port, ("192.0.2.7", 1234)) == ("192.0.2.7", 5060)


def test_response_copies_dialog_headers_and_adds_to_tag() -> None:
    request = parse_request(request_bytes(rport=True))
    response = build_response(
        request.head,
        302,
        "Moved Temporarily",
        source=("127.0.0.1", 41000),
        to_tag="ourtag",
        extra_headers=[("X-Max-Duration", "60")],
    )
    parsed = parse_message(response.to_bytes(), LIMITS)
    assert isinstance(parsed, SipResponse)
    assert parsed.status == 302
    assert parsed.header("To") == "<sip:+4930123456@ocs.test>;tag=ourtag"
    assert parsed.header("From") == "<sip:+491711234567@proxy.test>;tag=caller-tag"
    assert parsed.header("CSeq") == "1 INVITE"
    assert parsed.header("Call-ID") == "call-1@proxy.test"
    assert parsed.header("Via") == (
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-test-1;received=127.0.0.1;rport=41000"
    )
    assert parsed.header("X-Max-Duration") == "60"
    assert parsed.header("Content-Length") == "0"


def test_request_round_trips_through_serializer() -> None:
    request = parse_request(request_bytes(body=b"v=0\r\n"))
    assert parse_request(request.to_bytes()) == request


def test_content_length_shorter_than_body_truncates_and_longer_is_400() -> None:
    data = request_bytes(body=b"abcdef").replace(b"Content-Length: 6", b"Content-Length: 3")
    assert parse_request(data).body == b"abc"
    error = parse_error(request_bytes(body=b"ab").replace(b"Content-Length: 2", b"l: 10"))
    assert error.status == 400
    assert "Content-Length 10" in error.reason


@pytest.mark.parametrize(
    ("mutation", "status", "reason_part"),
    [
        (lambda d: d.replace(b"Call-ID: call-1@proxy.test\r\n", b""), 400, "Missing Call-ID"),
        (lambda d: d.replace(b"From: ", b"X-Gone: "), 400, "Missing From"),
        (lambda d: d.replace(b"To: ", b"X-Gone: "), 400, "Missing To"),
        (lambda d: d.replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"), 400, "Malformed CSeq"),
        (lambda d: d.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), 400, "CSeq Method BYE"),
        (lambda d: d.replace(b"Max-Forwards", b"Max Forwards"), 400, "Malformed Header Line"),
        (lambda d: d.replace(b"Content-Length: 0", b"Content-Length: zero"), 400, "Content-Length"),
        (lambda d: d.replace(b"From: <", b"From: <\xff"), 400, "Not UTF-8"),
        (
            lambda d: d.replace(b"From: <sip:", b"From: <sip:x>;tag=2\r\nFrom: <sip:"),
            400,
            "Duplicate From",
        ),
        (lambda d: d.replace(b"From: <sip:+49", b"From: <http:+49"), 400, "Malformed From"),
        (lambda d: d.replace(b"Call-ID: call-1", b"Call-ID: call 1"), 400, "Malformed Call-ID"),
        (lambda d: d.replace(b"INVITE sip:", b"INVITE http:", 1), 416, "Unsupported URI Scheme"),
        (lambda d: d.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505, "Version"),
        (lambda d: d[: d.index(b"\r\n\r\n")], 400, "Truncated"),
        (lambda d: d.replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n folded\r\n", 1), 400, "Continuation"),
    ],
)
def test_answerable_malformations_carry_status_and_reason(
    mutation: object, status: int, reason_part: str
) -> None:
    data = mutation(request_bytes())  # type: ignore[operator]
    error = parse_error(data)
    assert error.status == status, error.reason
    assert reason_part in error.reason
    assert error.answerable
    assert error.head is not None and error.head.vias


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (b"\x00\x01\x02\xff\xfe binary", "not ASCII"),
        (b"INVITE sip:+4930", "start line"),
        (b"INVITE sip:+4930 SIP/2.0", "Truncated"),
        (b"HELLO WORLD\r\n\r\n", "start line"),
        (request_bytes().replace(b"Via: ", b"X-Via: "), "Missing Via"),
        (request_bytes().replace(b"SIP/2.0/UDP", b"HTTP/1.1"), "Malformed Via"),
        (request_bytes("ACK").replace(b"Call-ID", b"Call ID"), "Malformed Header"),
        (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\nContent-Length: 9\r\n", "truncated"),
    ],
)
def test_unanswerable_input_is_dropped(data: bytes, reason_part: str) -> None:
    error = parse_error(data)
    assert error.status is None
    assert not error.answerable
    assert reason_part in error.reason


def test_message_over_the_byte_limit_is_513_when_addressable() -> None:
    huge = request_bytes(body=b"x" * 65000)
    error = parse_error(huge)
    assert error.status == 513
    assert "65" in error.reason and "8192" in error.reason
    assert parse_error(b"\xff" * 65536).status is None


def test_header_count_limit() -> None:
    data = request_bytes(extra=[f"X-Filler-{n}: {n}" for n in range(10)])
    assert parse_request(data, ParseLimits(8192, headers_max=20)).method == "INVITE"
    error = parse_error(data, ParseLimits(8192, headers_max=8))
    assert error.status == 400
    assert "Too Many Headers" in error.reason


def test_response_parses_and_is_never_answered() -> None:
    data = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKa\r\nl: 0\r\n\r\n"
    message = parse_message(data, LIMITS)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason) == (180, "Ringing")
    assert parse_error(data.replace(b"l: 0", b"l 0")).status is None


def _check_any_bytes(data: bytes) -> None:
    try:
        message = parse_message(data, ParseLimits(message_bytes_max=2048, headers_max=16))
    except SipParseError as error:
        assert error.status in (None, 400, 416, 505, 513)
        assert (error.head is not None) == (error.status is not None)
        assert error.reason
    else:
        assert isinstance(message, SipRequest | SipResponse)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_give_a_message_or_a_sip_error(data: bytes) -> None:
    _check_any_bytes(data)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=400),
    st.integers(min_value=0, max_value=60),
    st.binary(max_size=12),
)
def test_mutated_valid_requests_give_a_message_or_a_sip_error(
    position: int, cut: int, insert: bytes
) -> None:
    base = request_bytes(extra=["P-Asserted-Identity: <tel:+4917>"])
    position = min(position, len(base))
    _check_any_bytes(base[:position] + insert + base[position + cut :])


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=20),
    st.integers(min_value=0, max_value=2**31 - 1),
    st.sampled_from(["INVITE", "OPTIONS", "REGISTER", "CANCEL"]),
)
def test_serialized_requests_round_trip(call_id: str, cseq: int, method: str) -> None:
    request = parse_request(request_bytes(method, call_id=call_id, cseq=cseq))
    assert parse_request(request.to_bytes()) == request

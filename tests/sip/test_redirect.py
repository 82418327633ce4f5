"""Redirect decisions: outcome → SIP answer table, caller/callee extraction, sources."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ocs.sip.authorizer import AuthOutcome, CallAuthDecision, CallAuthRequest, CallerSource
from ocs.sip.endpoint import Send, SipEndpoint
from ocs.sip.errors import SipFramingError
from ocs.sip.framing import Frame, KeepAlive, StreamFramer
from ocs.sip.message import ParseLimits, SipRequest, SipResponse, parse_message
from ocs.sip.metrics import SipMetrics
from ocs.sip.redirect import (
    Answer,
    RedirectPolicy,
    SourceFilter,
    call_auth_request,
    decision_answer,
)
from ocs.sip.uri import e164_digits
from tests.sip.helpers import authorized, request_bytes


def request(data: bytes) -> SipRequest:
    message = parse_message(data, ParseLimits())
    assert isinstance(message, SipRequest)
    return message


def test_sans_io_modules_import_neither_asyncio_nor_socket() -> None:
    code = (
        "import sys\n"
        "import ocs.sip.message, ocs.sip.framing, ocs.sip.transaction, ocs.sip.redirect\n"
        "import ocs.sip.endpoint, ocs.sip.uri, ocs.sip.errors, ocs.sip.metrics\n"
        "bad = [m for m in ('asyncio', 'socket', 'ocs.config') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        (AuthOutcome.INSUFFICIENT_CREDIT, 402, 4012),
        (AuthOutcome.UNKNOWN_SUBSCRIBER, 404, 5030),
        (AuthOutcome.BLOCKED, 403, 4010),
        (AuthOutcome.NOT_RATED, 404, 5031),
        (AuthOutcome.UNAVAILABLE, 503, 5012),
    ],
)
def test_refusals(outcome: AuthOutcome, status: int, code: int) -> None:
    answer = decision_answer(CallAuthDecision(outcome), "sip:1@x", retry_after_s=9)
    assert (answer.status, answer.result_code) == (status, code)
    assert ("X-OCS-Result", str(code)) in answer.headers()
    assert (("Retry-After", "9") in answer.headers()) == (status == 503)


def test_authorized_redirect_headers() -> None:
    answer = decision_answer(
        authorized(75, "res-9", "sip:+4930@gw.test;transport=udp"), "sip:x@y", 5
    )
    assert answer.status == 302
    headers = dict(answer.headers())
    assert headers["Contact"] == "<sip:+4930@gw.test;transport=udp>;maxdur=75"
    assert headers["X-Max-Duration"] == "75"
    assert headers["X-OCS-Reservation"] == "res-9"
    assert headers["X-OCS-Result"] == "2001"
    echoed = dict(decision_answer(authorized(5, "r"), "sip:+49@ocs", 5).headers())
    assert echoed["Contact"] == "<sip:+49@ocs>;maxdur=5"


@pytest.mark.parametrize(
    "decision",
    [
        authorized(0, "r"),
        authorized(10, ""),
        authorized(10, "r\r\nX-Evil: 1"),
        authorized(10, "r", "sip:a@b>\r\nX: y"),
        authorized(10, "r", "http://x"),
    ],
)
def test_invalid_authorized_decisions_become_500(decision: CallAuthDecision) -> None:
    answer = decision_answer(decision, "sip:x@y", 5)
    assert (answer.status, answer.result_code) == (500, 5012)


def test_result_code_override() -> None:
    decision = CallAuthDecision(AuthOutcome.BLOCKED, result_code=4011)
    assert decision_answer(decision, "sip:x@y", 5).result_code == 4011


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("+49 (30) 123-4", "49301234"),
        ("0049301234", "49301234"),
        ("030123", "030123"),
        ("+1.212.555.0100;phone-context=x", "12125550100"),
        ("alice", None),
        ("+", None),
        ("1234567890123456", None),
        ("٣٣٣", None),
    ],
)
def test_e164_normalisation(text: str, digits: str | None) -> None:
    assert e164_digits(text) == digits


def test_caller_precedence_p_charge_info_then_pai_then_from() -> None:
    base = request_bytes(
        extra=[
            "P-Asserted-Identity: <sip:alice@pai.test>, <tel:+49-171-000-0002>",
            "P-Charge-Info: <sip:+491710000001@x>",
        ]
    )
    asked = call_auth_request(request(base), ("10.0.0.1", 5060), "udp", "00")
    assert isinstance(asked, CallAuthRequest)
    assert (asked.caller, asked.caller_source) == ("491710000001", CallerSource.P_CHARGE_INFO)
    pai_only = request_bytes(extra=["P-Asserted-Identity: <sip:alice@x>, <tel:+491710000002>"])
    asked = call_auth_request(request(pai_only), ("10.0.0.1", 5060), "udp", "00")
    assert isinstance(asked, CallAuthRequest)
    assert (asked.caller, asked.caller_source) == (
        "491710000002",
        CallerSource.P_ASSERTED_IDENTITY,
    )
    asked = call_auth_request(request(request_bytes()), ("10.0.0.1", 5060), "tcp", "00")
    assert isinstance(asked, CallAuthRequest)
    assert asked == CallAuthRequest(
        source_host="10.0.0.1",
        source_port=5060,
        transport="tcp",
        caller="491711234567",
        caller_source=CallerSource.FROM,
        callee="4930123456",
        call_id="call-1@proxy.test",
        from_tag="caller-tag",
        request_uri="sip:+4930123456@ocs.test",
    )


def test_numbers_that_are_not_numbers_are_refused_without_asking() -> None:
    no_caller = request(request_bytes(from_uri="sip:alice@proxy.test"))
    answer = call_auth_request(no_caller, ("10.0.0.1", 5060), "udp", "00")
    assert isinstance(answer, Answer) and (answer.status, answer.result_code) == (404, 5030)
    no_callee = request(request_bytes(uri="sip:bob@ocs.test"))
    answer = call_auth_request(no_callee, ("10.0.0.1", 5060), "udp", "00")
    assert isinstance(answer, Answer) and (answer.status, answer.result_code) == (404, 5031)


def test_source_filter_and_policy() -> None:
    allowed = SourceFilter(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"])
    assert allowed.allows("10.1.2.3")
    assert allowed.allows("192.0.2.7")
    assert allowed.allows("2001:db8::5")
    assert not allowed.allows("192.0.2.8")
    assert not allowed.allows("not-an-ip")
    assert SourceFilter([]).allows("anything")
    metrics = SipMetrics()

    def ep(reject: bool) -> SipEndpoint:
        return SipEndpoint(
            transport="udp",
            limits=ParseLimits(),
            policy=RedirectPolicy(allowed_sources=("10.0.0.0/8",), reject_unknown_sources=reject),
            metrics=metrics,
        )

    actions = ep(True).receive(request_bytes(), ("192.0.2.1", 5070), 0.0)
    assert isinstance(actions[0], Send)
    refused = parse_message(actions[0].data, ParseLimits())
    assert isinstance(refused, SipResponse)
    assert (refused.status, refused.header("X-OCS-Result")) == (403, "3010")
    assert ep(False).receive(request_bytes(), ("192.0.2.1", 5070), 0.0) == []
    assert metrics.dropped["source_not_allowed"] == 1


def test_stream_framer_cuts_by_content_length() -> None:
    framer = StreamFramer(message_bytes_max=4096)
    one = request_bytes(body=b"v=0\r\n")
    two = request_bytes("OPTIONS")
    stream = b"\r\n\r\n" + one + b"\r\n" + two
    events = []
    for index in range(len(stream)):  # byte by byte
        events.extend(framer.feed(stream[index : index + 1]))
    assert events == [KeepAlive(), Frame(one), Frame(two)]
    assert framer.buffered_bytes == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request_bytes().replace(b"Content-Length: 0\r\n", b""), 400),
        (request_bytes().replace(b"Content-Length: 0", b"l: x"), 400),
        (request_bytes().replace(b"Content-Length: 0", b"Content-Length: 99999"), 513),
        (b"INVITE " + b"x" * 5000, None),
    ],
)
def test_stream_framer_limits(data: bytes, status: int | None) -> None:
    framer = StreamFramer(message_bytes_max=4096)
    with pytest.raises(SipFramingError) as info:
        framer.feed(data)
    assert info.value.status == status


def test_reason_phrase_quoting_input_stays_printable_ascii() -> None:
    from ocs.sip.redirect import malformed

    answer = malformed(400, "Malformed Header Line '\xa1\x00\u2028x'")
    assert answer.reason == "Malformed Header Line '???x'"

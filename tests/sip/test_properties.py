"""Property tests: any bytes into the TCP framer (whole or in chunks) and into the endpoint
give frames / answers / drops, never another exception."""

from __future__ import annotations

import itertools

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ocs.sip.endpoint import Authorize, CheckHealth, Send, SipEndpoint
from ocs.sip.errors import SipFramingError
from ocs.sip.framing import StreamEvent, StreamFramer
from ocs.sip.message import ParseLimits, SipResponse, parse_message
from ocs.sip.metrics import SipMetrics
from ocs.sip.redirect import RedirectPolicy
from tests.sip.helpers import authorized, request_bytes

VALID = request_bytes(body=b"v=0\r\n") + request_bytes("OPTIONS", branch="z9hG4bK-2")


def frame_all(chunks: list[bytes]) -> tuple[list[StreamEvent], SipFramingError | None]:
    framer = StreamFramer(message_bytes_max=1024)
    events: list[StreamEvent] = []
    try:
        for chunk in chunks:
            events.extend(framer.feed(chunk))
    except SipFramingError as error:
        return events, error
    return events, None


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2500),
        st.builds(
            lambda at, junk: VALID[:at] + junk + VALID[at:],
            st.integers(0, len(VALID)),
            st.binary(max_size=20),
        ),
    ),
    st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
)
def test_framer_same_result_whole_or_in_chunks(data: bytes, points: list[int]) -> None:
    whole, whole_error = frame_all([data])
    chunked, chunked_error = frame_all(cut(data, points))
    if whole_error is None and chunked_error is None:
        assert whole == chunked
    else:
        # An error may surface earlier in one of them, but the frames before it agree.
        shorter = min(len(whole), len(chunked))
        assert whole[:shorter] == chunked[:shorter]
        assert (whole_error or chunked_error) is not None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda at, cut_bytes, junk: VALID[:at] + junk + VALID[at + cut_bytes :],
            st.integers(0, len(VALID)),
            st.integers(0, 40),
            st.binary(max_size=12),
        ),
    )
)
@example(b"A \x00 SIP/0.0\nVia:SIP/2.0/0\t\x00\n\xc2\xa1")  # non-ASCII quoted in a reason
def test_endpoint_answers_or_drops_anything(data: bytes) -> None:
    endpoint = SipEndpoint(
        transport="udp",
        limits=ParseLimits(message_bytes_max=1500, headers_max=16),
        policy=RedirectPolicy(),
        metrics=SipMetrics(),
    )
    actions = endpoint.receive(data, ("127.0.0.1", 5070), now=0.0)
    for action in actions:
        if isinstance(action, Authorize):
            actions = endpoint.authorized(action.ticket, authorized(10, "r"), now=0.1)
        elif isinstance(action, CheckHealth):
            actions = endpoint.health_checked(action.ticket, True, now=0.1)
    for action in actions:
        assert isinstance(action, Send)
        answer = parse_message(action.data, ParseLimits(65536, 256))
        assert isinstance(answer, SipResponse)
        assert answer.header("X-OCS-Result") is not None or answer.status == 100
    endpoint.handle_timer(100.0)

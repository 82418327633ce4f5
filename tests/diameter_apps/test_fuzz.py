"""Any bytes → messages, answers or a deliberate close; never an unhandled exception."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diameter_apps.codec import decode_message
from diameter_apps.errors import DiameterError
from diameter_apps.framer import Framer
from diameter_apps.limits import CodecLimits
from diameter_apps.validation import Profile

from .helpers import Clock, ccr, open_peer

_valid = ccr().encode()
# Streams that start like real traffic and then go wrong somewhere.
_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda cut, noise: _valid[:cut] + noise,
        st.integers(0, len(_valid)),
        st.binary(max_size=120),
    ),
    st.builds(
        lambda pos, value: _valid[:pos] + bytes([value]) + _valid[pos + 1 :],
        st.integers(0, len(_valid) - 1),
        st.integers(0, 255),
    ),
)


@settings(max_examples=200, deadline=None)
@given(data=_bytes)
def test_decoder_yields_a_message_or_a_diameter_error(data: bytes) -> None:
    try:
        message = decode_message(data)
    except DiameterError:
        return
    for avp in message.avps:
        with contextlib.suppress(DiameterError):
            avp.children()


@settings(max_examples=150, deadline=None)
@given(data=_bytes)
def test_framer_yields_frames_or_a_framing_error(data: bytes) -> None:
    framer = Framer(CodecLimits(message_bytes_max=4096))
    try:
        frames = framer.feed(data)
    except DiameterError:
        return
    assert sum(len(f) for f in frames) + framer.buffered_bytes == len(data)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_bytes, strict=st.booleans())
def test_peer_survives_any_bytes_whole_and_byte_by_byte(data: bytes, strict: bool) -> None:
    profile = Profile.STRICT if strict else Profile.LENIENT
    for chunked in (False, True):
        clock = Clock()
        peer = open_peer(clock, profile=profile)
        chunks = [data[i : i + 1] for i in range(len(data))] if chunked else [data]
        for chunk in chunks:
            peer.receive_data(chunk, clock.now)
            peer.data_to_send()
        peer.handle_timer(clock.advance(100))


@settings(max_examples=80, deadline=None)
@given(data=_bytes)
def test_fresh_peer_answers_or_closes_on_any_first_bytes(data: bytes) -> None:
    from .helpers import new_peer

    clock = Clock()
    peer = new_peer(clock)
    peer.receive_data(data, clock.now)
    peer.data_to_send()
    assert peer.state.value in {"wait_cer", "closed"}

"""Peer state machine with a fake clock: CER/CEA, watchdog, DPR, shutdown, requests we send."""

from __future__ import annotations

import pytest

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import VENDOR_3GPP, AvpCode, CommandCode
from diameter_apps.errors import PeerStateError
from diameter_apps.events import (
    AnswerReceived,
    PeerClosed,
    PeerOpened,
    ProtocolDeviation,
    RequestTimedOut,
)
from diameter_apps.peer import PeerNotOpen
from diameter_apps.peer_states import (
    TRANSITIONS,
    WIRE_INPUTS,
    PeerInput,
    PeerState,
    transition,
)

from .helpers import (
    OUR_HOST,
    OUR_REALM,
    PEER_HOST,
    Clock,
    ccr,
    cer,
    new_peer,
    only,
    open_peer,
    origin,
    request_events,
    sent,
    vsai,
)


def test_every_wire_input_is_defined_in_every_state() -> None:
    for state in PeerState:
        for peer_input in WIRE_INPUTS:
            assert (state, peer_input) in TRANSITIONS, (state, peer_input)


def test_an_undefined_pair_is_an_error_not_a_silent_pass() -> None:
    with pytest.raises(PeerStateError):
        transition(PeerState.WAIT_CER, PeerInput.DPA_TIMER)


# --- CER / CEA (B2) ---------------------------------------------------------------------


def test_cea_carries_the_capabilities_and_mirrors_auth_application_id() -> None:
    clock = Clock()
    peer = new_peer(clock)
    events = peer.receive_data(cer().encode(), clock.now)
    assert events == [PeerOpened(PEER_HOST, "mno.example", (4,))]
    (cea,) = sent(peer)
    assert not cea.is_request and cea.command_code == 257 and cea.hop_by_hop == 1
    assert cea.result_code == 2001
    assert cea.origin_host == OUR_HOST
    assert cea.find(AvpCode.ORIGIN_REALM).as_str() == OUR_REALM  # type: ignore[union-attr]
    assert str(cea.find(AvpCode.HOST_IP_ADDRESS).as_address()) == "192.0.2.10"  # type: ignore[union-attr]
    assert cea.find(AvpCode.VENDOR_ID) is not None
    assert cea.find(AvpCode.PRODUCT_NAME).as_str() == "mvna-ocs"  # type: ignore[union-attr]
    assert cea.find(AvpCode.ORIGIN_STATE_ID).as_u32() == 77  # type: ignore[union-attr]
    assert cea.find(AvpCode.SUPPORTED_VENDOR_ID).as_u32() == VENDOR_3GPP  # type: ignore[union-attr]
    assert [a.as_u32() for a in cea.find_all(AvpCode.AUTH_APPLICATION_ID)] == [4]
    assert cea.find(AvpCode.VENDOR_SPECIFIC_APPLICATION_ID) is None
    assert peer.state is PeerState.R_OPEN


def test_cea_mirrors_vendor_specific_application_id() -> None:
    clock = Clock()
    peer = new_peer(clock)
    events = peer.receive_data(cer([vsai()]).encode(), clock.now)
    assert only(events, PeerOpened)[0].application_ids == (4,)
    (cea,) = sent(peer)
    assert cea.result_code == 2001
    assert cea.find(AvpCode.AUTH_APPLICATION_ID) is None
    group = cea.find(AvpCode.VENDOR_SPECIFIC_APPLICATION_ID)
    assert group is not None
    assert group.find(AvpCode.VENDOR_ID).as_u32() == VENDOR_3GPP  # type: ignore[union-attr]
    assert group.find(AvpCode.AUTH_APPLICATION_ID).as_u32() == 4  # type: ignore[union-attr]


def test_no_common_application_is_5010_and_close() -> None:
    clock = Clock()
    peer = new_peer(clock)
    events = peer.receive_data(
        cer([Avp.u32(AvpCode.AUTH_APPLICATION_ID, 16777238)]).encode(), clock.now
    )
    (cea,) = sent(peer)
    assert cea.result_code == 5010 and not cea.is_error
    assert only(events, PeerClosed) and peer.should_close


def test_peer_not_in_allowed_list_is_3010_with_e_bit_and_close() -> None:
    clock = Clock()
    peer = new_peer(clock, allowed_peer_hosts=frozenset({"other.mno.example"}))
    peer.receive_data(cer().encode(), clock.now)
    (cea,) = sent(peer)
    assert cea.result_code == 3010 and cea.is_error
    assert peer.should_close


def test_allowed_peer_is_accepted_case_insensitively() -> None:
    clock = Clock()
    peer = new_peer(clock, allowed_peer_hosts=frozenset({PEER_HOST.upper()}))
    peer.receive_data(cer().encode(), clock.now)
    assert sent(peer)[0].result_code == 2001


def test_a_request_before_cer_closes_without_answer() -> None:
    clock = Clock()
    peer = new_peer(clock)
    events = peer.receive_data(ccr().encode(), clock.now)
    assert peer.data_to_send() == b""
    assert only(events, PeerClosed) and peer.should_close


def test_cer_timeout_closes() -> None:
    clock = Clock()
    peer = new_peer(clock, cer_timeout_s=5.0)
    assert peer.next_timer() == clock.now + 5.0
    assert peer.handle_timer(clock.advance(4.9)) == []
    events = peer.handle_timer(clock.advance(0.2))
    assert events == [PeerClosed("no CER within cer_timeout_s")]
    assert peer.should_close and peer.next_timer() is None


def test_cer_missing_a_required_avp_is_5005_cea() -> None:
    clock = Clock()
    peer = new_peer(clock)
    message = cer()
    message.avps = [a for a in message.avps if a.code != AvpCode.PRODUCT_NAME]
    peer.receive_data(message.encode(), clock.now)
    (cea,) = sent(peer)
    assert cea.result_code == 5005
    failed = cea.find(AvpCode.FAILED_AVP)
    assert failed is not None and failed.children()[0].code == AvpCode.PRODUCT_NAME
    assert peer.should_close


# --- watchdog (B3, RFC 3539) ------------------------------------------------------------


def test_dwr_gets_dwa_with_origin_state_id() -> None:
    clock = Clock()
    peer = open_peer(clock)
    dwr = Message.request(280, 0, origin(), proxiable=False, hop_by_hop=44, end_to_end=45)
    peer.receive_data(dwr.encode(), clock.now)
    (dwa,) = sent(peer)
    assert (dwa.command_code, dwa.hop_by_hop, dwa.end_to_end) == (280, 44, 45)
    assert dwa.result_code == 2001
    assert dwa.find(AvpCode.ORIGIN_STATE_ID).as_u32() == 77  # type: ignore[union-attr]


def test_our_watchdog_fires_every_tw_with_jitter_and_is_answered() -> None:
    clock = Clock()
    peer = open_peer(clock)
    due = peer.next_timer()
    assert due is not None and 28.0 <= due - clock.now <= 32.0
    clock.now = due
    assert peer.handle_timer(clock.now) == []
    (dwr,) = sent(peer)
    assert dwr.is_request and dwr.command_code == CommandCode.DEVICE_WATCHDOG
    assert dwr.origin_host == OUR_HOST
    dwa = Message(
        280,
        0,
        hop_by_hop=dwr.hop_by_hop,
        end_to_end=dwr.end_to_end,
        avps=[Avp.u32(268, 2001), *origin()],
    )
    assert peer.receive_data(dwa.encode(), clock.now) == []
    next_due = peer.next_timer()
    assert next_due is not None and next_due > clock.now + 27
    clock.now = next_due
    peer.handle_timer(clock.now)
    assert sent(peer)[0].command_code == 280


def test_unanswered_watchdog_takes_the_peer_down_after_two_tw() -> None:
    clock = Clock()
    peer = open_peer(clock)
    clock.now = peer.next_timer()  # type: ignore[assignment]
    peer.handle_timer(clock.now)
    assert sent(peer)[0].command_code == 280
    clock.now = peer.next_timer()  # type: ignore[assignment]
    events = peer.handle_timer(clock.now)
    assert only(events, ProtocolDeviation) and not peer.should_close  # suspect
    clock.now = peer.next_timer()  # type: ignore[assignment]
    events = peer.handle_timer(clock.now)
    assert only(events, PeerClosed)[0].reason.startswith("no answer to DWR")
    assert peer.should_close


def test_any_traffic_clears_suspicion() -> None:
    clock = Clock()
    peer = open_peer(clock)
    clock.now = peer.next_timer()  # type: ignore[assignment]
    peer.handle_timer(clock.now)
    clock.now = peer.next_timer()  # type: ignore[assignment]
    peer.handle_timer(clock.now)  # suspect now
    peer.receive_data(ccr().encode(), clock.now)
    clock.now = peer.next_timer()  # type: ignore[assignment]
    peer.handle_timer(clock.now)
    assert not peer.should_close


# --- DPR / shutdown (B4) ----------------------------------------------------------------


def test_dpr_gets_dpa_then_close() -> None:
    clock = Clock()
    peer = open_peer(clock)
    dpr = Message.request(282, 0, [*origin(), Avp.i32(273, 2)], proxiable=False, hop_by_hop=3)
    events = peer.receive_data(dpr.encode(), clock.now)
    (dpa,) = sent(peer)
    assert dpa.command_code == 282 and dpa.result_code == 2001 and dpa.hop_by_hop == 3
    assert only(events, PeerClosed) and peer.should_close


def test_shutdown_waits_for_in_flight_then_sends_dpr_and_closes_on_dpa() -> None:
    clock = Clock()
    peer = open_peer(clock)
    (request,) = request_events(peer.receive_data(ccr().encode(), clock.now))
    assert peer.begin_shutdown(clock.now) == []
    assert peer.state is PeerState.DRAINING and peer.data_to_send() == b""
    # a new request while draining is refused 3004
    peer.receive_data(ccr(hop_by_hop=11, end_to_end=6000).encode(), clock.now)
    (busy,) = sent(peer)
    assert busy.result_code == 3004 and busy.is_error
    # the in-flight answer goes out, then the DPR
    answer = Message(272, 4, avps=[Avp.u32(268, 2001)])
    peer.send_answer(request, answer, clock.now)
    cca, dpr = sent(peer)
    assert cca.command_code == 272 and cca.hop_by_hop == 10
    assert dpr.command_code == 282 and dpr.is_request
    assert dpr.find(AvpCode.DISCONNECT_CAUSE).as_i32() == 0  # type: ignore[union-attr]
    assert peer.state is PeerState.CLOSING
    dpa = Message(
        282,
        0,
        hop_by_hop=dpr.hop_by_hop,
        end_to_end=dpr.end_to_end,
        avps=[Avp.u32(268, 2001), *origin()],
    )
    events = peer.receive_data(dpa.encode(), clock.now)
    assert events == [PeerClosed("DPA received")] and peer.should_close


def test_shutdown_with_nothing_in_flight_sends_dpr_at_once_and_times_out() -> None:
    clock = Clock()
    peer = open_peer(clock, dpa_timeout_s=3.0)
    peer.begin_shutdown(clock.now)
    assert sent(peer)[0].command_code == 282
    assert peer.next_timer() == clock.now + 3.0
    events = peer.handle_timer(clock.advance(3.0))
    assert events == [PeerClosed("no DPA within dpa_timeout_s")]


def test_drain_timeout_sends_dpr_even_with_requests_in_flight() -> None:
    clock = Clock()
    peer = open_peer(clock, drain_timeout_s=4.0)
    peer.receive_data(ccr().encode(), clock.now)
    peer.begin_shutdown(clock.now)
    assert peer.data_to_send() == b""
    peer.handle_timer(clock.advance(4.0))
    assert sent(peer)[0].command_code == 282


def test_connection_lost_times_out_our_pending_requests() -> None:
    clock = Clock()
    peer = open_peer(clock)
    hop = peer.send_request(Message.request(258, 4, origin()), clock.now, 5.0)
    events = peer.connection_lost(clock.now)
    assert events == [RequestTimedOut(hop, 258), PeerClosed("connection lost")]


# --- requests we send (RAR / ASR) -------------------------------------------------------


def test_send_request_tracks_the_answer_and_the_timeout() -> None:
    clock = Clock()
    peer = open_peer(clock)
    rar = Message.request(258, 4, [Avp.utf8(263, "s;1"), *origin(OUR_HOST, OUR_REALM)])
    hop = peer.send_request(rar, clock.now, 5.0)
    (wire,) = sent(peer)
    assert wire.is_request and wire.hop_by_hop == hop and wire.end_to_end != 0
    raa = Message(258, 4, hop_by_hop=hop, end_to_end=wire.end_to_end, avps=[Avp.u32(268, 2001)])
    (event,) = peer.receive_data(raa.encode(), clock.now)
    assert isinstance(event, AnswerReceived) and event.hop_by_hop == hop
    assert event.message.result_code == 2001
    hop2 = peer.send_request(Message.request(274, 4, origin()), clock.now, 5.0)
    assert hop2 == (hop + 1) & 0xFFFFFFFF
    assert peer.next_timer() == clock.now + 5.0
    assert peer.handle_timer(clock.advance(5.0)) == [RequestTimedOut(hop2, 274)]


def test_send_request_needs_an_open_peer() -> None:
    clock = Clock()
    with pytest.raises(PeerNotOpen):
        new_peer(clock).send_request(Message.request(258, 4), clock.now, 1.0)


def test_an_answer_nobody_asked_for_is_logged_and_dropped() -> None:
    clock = Clock()
    peer = open_peer(clock)
    events = peer.receive_data(Message(258, 4, hop_by_hop=999).encode(), clock.now)
    assert only(events, ProtocolDeviation)
    assert peer.data_to_send() == b""


# --- lenient profile, settings, router ----------------------------------------------------


def test_kamailio_style_duplicated_origin_in_cer_is_tolerated_when_lenient() -> None:
    clock = Clock()
    peer = new_peer(clock)
    events = peer.receive_data(cer(extra=origin()).encode(), clock.now)
    assert only(events, PeerOpened) and only(events, ProtocolDeviation)
    assert sent(peer)[0].result_code == 2001


def test_duplicated_origin_in_cer_is_5009_when_strict() -> None:
    from diameter_apps.validation import Profile

    clock = Clock()
    peer = new_peer(clock, profile=Profile.STRICT)
    peer.receive_data(cer(extra=origin()).encode(), clock.now)
    (cea,) = sent(peer)
    assert cea.result_code == 5009 and peer.should_close


def test_shutdown_before_cer_closes_at_once() -> None:
    clock = Clock()
    peer = new_peer(clock)
    assert peer.begin_shutdown(clock.now) == [PeerClosed("shut down before CER")]
    assert peer.should_close


def test_unsolicited_cea_in_open_is_logged_and_ignored() -> None:
    clock = Clock()
    peer = open_peer(clock)
    cea = Message(257, 0, avps=[Avp.u32(268, 2001), *origin()])
    events = peer.receive_data(cea.encode(), clock.now)
    assert only(events, ProtocolDeviation) and not peer.should_close


def test_settings_refuse_a_watchdog_below_rfc_3539_minimum() -> None:
    from .helpers import settings

    with pytest.raises(ValueError):
        settings(watchdog_interval_s=5.0)


def test_router_registration_is_explicit_and_checked() -> None:
    from diameter_apps.errors import ApplicationUnsupported, CommandUnsupported
    from diameter_apps.router import Router

    router = Router()

    def handler(event: object) -> Message:
        return Message(272, 4)

    router.register(4, 272, handler, vendor_id=VENDOR_3GPP)
    assert router.handler_for(4, 272) is handler
    assert router.application_ids == frozenset({4})
    with pytest.raises(ValueError):
        router.register(4, 272, handler)
    with pytest.raises(ValueError):
        router.register(0, 999, handler)
    with pytest.raises(CommandUnsupported):
        router.check(4, 258)
    with pytest.raises(ApplicationUnsupported):
        router.check(5, 272)


def test_answer_after_the_connection_closed_still_serves_duplicates() -> None:
    from diameter_apps.duplicates import DuplicateCache

    clock = Clock()
    cache = DuplicateCache()
    peer = open_peer(clock, duplicates=cache)
    (event,) = request_events(peer.receive_data(ccr().encode(), clock.now))
    peer.connection_lost(clock.now)
    peer.send_answer(event, Message(272, 4, avps=[Avp.u32(268, 2001)]), clock.now)
    assert peer.data_to_send() == b""
    assert cache.answer_for((ccr().origin_host or "", 5000), clock.now) is not None

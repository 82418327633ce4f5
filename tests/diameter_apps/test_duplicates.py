"""B7 at the base layer: a retransmission never reaches the application twice."""

from __future__ import annotations

import random

import pytest

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import FLAG_PROXIABLE, FLAG_REQUEST, FLAG_RETRANSMIT
from diameter_apps.duplicates import DuplicateCache
from diameter_apps.events import DuplicateAnswered
from diameter_apps.peer import PeerConnection

from .helpers import Clock, ccr, cer, only, open_peer, request_events, router, sent, settings


def _cca(value: int) -> Message:
    return Message(272, 4, avps=[Avp.u32(268, 2001), Avp.u32(448, value)])


def test_retransmission_after_the_answer_gets_the_same_answer() -> None:
    clock = Clock()
    peer = open_peer(clock)
    (event,) = request_events(peer.receive_data(ccr().encode(), clock.now))
    peer.send_answer(event, _cca(600), clock.now)
    (first,) = sent(peer)
    retransmit = ccr(hop_by_hop=77, flags=FLAG_REQUEST | FLAG_PROXIABLE | FLAG_RETRANSMIT)
    events = peer.receive_data(retransmit.encode(), clock.advance(5))
    assert events == [DuplicateAnswered(272, 5000)]
    (again,) = sent(peer)
    assert again.hop_by_hop == 77 and again.end_to_end == first.end_to_end
    assert again.avps == first.avps


def test_duplicate_without_t_flag_is_caught_too_and_new_e2e_is_not() -> None:
    clock = Clock()
    peer = open_peer(clock)
    (event,) = request_events(peer.receive_data(ccr().encode(), clock.now))
    peer.send_answer(event, _cca(1), clock.now)
    sent(peer)
    assert only(peer.receive_data(ccr(hop_by_hop=12).encode(), clock.now), DuplicateAnswered)
    assert request_events(peer.receive_data(ccr(end_to_end=5001).encode(), clock.now))


def test_duplicate_while_in_flight_waits_for_the_original_answer() -> None:
    clock = Clock()
    peer = open_peer(clock)
    (event,) = request_events(peer.receive_data(ccr().encode(), clock.now))
    assert peer.receive_data(ccr(hop_by_hop=13).encode(), clock.now) == []
    assert peer.data_to_send() == b""
    peer.send_answer(event, _cca(9), clock.now)
    original, duplicate = sent(peer)
    assert (original.hop_by_hop, duplicate.hop_by_hop) == (10, 13)
    assert original.avps == duplicate.avps


def test_shared_cache_answers_a_failover_retransmission_on_another_connection() -> None:
    clock = Clock()
    cache = DuplicateCache()
    first = open_peer(clock, duplicates=cache)
    woken: list[int] = []
    second = PeerConnection(
        settings(),
        router(),
        cache,
        clock.now,
        rng=random.Random(3),
        output_ready=lambda: woken.append(1),
    )
    second.receive_data(cer(hop_by_hop=50).encode(), clock.now)
    sent(second)
    (event,) = request_events(first.receive_data(ccr().encode(), clock.now))
    retransmit = ccr(hop_by_hop=99, flags=FLAG_REQUEST | FLAG_PROXIABLE | FLAG_RETRANSMIT)
    assert second.receive_data(retransmit.encode(), clock.now) == []
    first.send_answer(event, _cca(42), clock.now)
    assert woken == [1]
    (replayed,) = sent(second)
    assert replayed.hop_by_hop == 99 and replayed.find(448).as_u32() == 42  # type: ignore[union-attr]
    assert second.handle_timer(clock.now) == [DuplicateAnswered(272, 5000)]


def test_entries_expire_and_are_bounded() -> None:
    cache = DuplicateCache(entries_max=2, ttl_s=10.0)
    cache.complete(("a", 1), b"A", 0.0)
    cache.complete(("b", 2), b"B", 1.0)
    cache.complete(("c", 3), b"C", 2.0)
    assert len(cache) == 2 and cache.answer_for(("a", 1), 2.0) is None
    assert cache.answer_for(("c", 3), 2.0) == b"C"
    assert cache.answer_for(("c", 3), 12.5) is None
    with pytest.raises(ValueError):
        DuplicateCache(entries_max=0)


def test_send_answer_for_an_unknown_request_is_refused() -> None:
    clock = Clock()
    peer = open_peer(clock)
    with pytest.raises(ValueError):
        peer.send_answer(ccr(), _cca(1), clock.now)


def _busy() -> Message:
    return Message(272, 4, avps=[Avp.u32(268, 3004)])


def test_an_answer_not_remembered_lets_the_retransmission_through() -> None:
    """#11 finding 2: a transient answer (3004: the ledger was unreachable) is sent but not
    cached, so a retransmission after recovery reaches the application and gets the ledger's
    outcome. A duplicate that waited for the original still gets the original's answer."""
    clock = Clock()
    peer = open_peer(clock)
    (event,) = request_events(peer.receive_data(ccr().encode(), clock.now))
    assert peer.receive_data(ccr(hop_by_hop=13).encode(), clock.now) == []  # waits
    peer.send_answer(event, _busy(), clock.now, remember=False)
    original, waited = sent(peer)
    assert original.result_code == waited.result_code == 3004
    retransmit = ccr(hop_by_hop=14, flags=FLAG_REQUEST | FLAG_PROXIABLE | FLAG_RETRANSMIT)
    (again,) = request_events(peer.receive_data(retransmit.encode(), clock.advance(5)))
    peer.send_answer(again, _cca(7), clock.now)
    (charged,) = sent(peer)
    assert charged.result_code == 2001
    # The outcome is remembered: the next retransmission is answered from the cache.
    assert only(peer.receive_data(ccr(hop_by_hop=15).encode(), clock.now), DuplicateAnswered)


def test_begin_tells_an_original_from_duplicates_in_flight_and_answered() -> None:
    cache = DuplicateCache(entries_max=2, ttl_s=10.0)
    key = ("gw", 1)
    assert cache.begin(key, 0.0) == (True, None)  # the original: now in flight
    assert cache.is_in_flight(key, 1.0)
    assert cache.begin(key, 1.0) == (False, None)  # a duplicate while in flight
    cache.complete(key, b"answer", 2.0)
    assert cache.begin(key, 3.0) == (False, b"answer")
    # Expired (ttl from the start): an original again.
    assert cache.begin(key, 10.5) == (True, None)
    # Bounded: the oldest key goes when a third is begun.
    assert cache.begin(("gw", 2), 11.0) == (True, None)
    assert cache.begin(("gw", 3), 11.0) == (True, None)
    assert len(cache) == 2
    assert cache.begin(key, 11.0) == (True, None)

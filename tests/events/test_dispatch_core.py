"""The dispatcher's pure decisions: order per subscriber, backoff, dead letters."""

from __future__ import annotations

import pytest

from balance.events import Event
from ocs.dispatch_core import Action, DeliveryQueue, Policy, Verdict


def ev(entry: str, subscriber: str) -> Event:
    return Event(tenant="t", shard=1, entry_id=entry, type="blocked", subscriber=subscriber,
                 op_id="", at_s=float(entry.split("-")[0]), payload={})  # fmt: skip


def test_backoff_doubles_and_is_capped() -> None:
    policy = Policy(attempts_max=10, backoff_base_s=0.5, backoff_max_s=3.0)
    assert [policy.backoff_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        Policy(attempts_max=0)


def test_a_failing_event_holds_back_its_subscriber_only() -> None:
    queue = DeliveryQueue(Policy(attempts_max=3, backoff_base_s=10, backoff_max_s=100))
    for e in (ev("1-0", "a"), ev("2-0", "b"), ev("3-0", "a"), ev("4-0", "b")):
        assert queue.offer(e)
    first = queue.ready(0.0)
    assert [e.entry_id for e in first] == ["1-0", "2-0"]
    assert queue.ready(0.0) == []  # in flight: nothing more for a or b
    retry = queue.outcome(first[0], Verdict.RETRY, 0.0)
    assert retry.action is Action.RETRY and retry.due_s == 10.0
    assert queue.outcome(first[1], Verdict.OK, 0.0).action is Action.ACK
    assert [e.entry_id for e in queue.ready(5.0)] == ["4-0"]  # b goes on, a waits
    assert [e.entry_id for e in queue.ready(10.0)] == ["1-0"]  # a's head again, not 3-0
    assert queue.oldest_at_s() == 1.0


def test_dead_letter_after_attempts_and_at_once_on_fail_then_next_event_goes() -> None:
    queue = DeliveryQueue(Policy(attempts_max=2, backoff_base_s=1, backoff_max_s=1))
    queue.offer(ev("1-0", "a"))
    queue.offer(ev("2-0", "a"))
    queue.offer(ev("3-0", "b"))
    heads = queue.ready(0.0)
    assert queue.outcome(heads[0], Verdict.RETRY, 0.0).action is Action.RETRY
    dead_b = queue.outcome(heads[1], Verdict.FAIL, 0.0, "410 gone")
    assert dead_b.action is Action.DEAD and dead_b.error == "410 gone"
    again = queue.ready(1.0)
    assert [e.entry_id for e in again] == ["1-0"]
    dead = queue.outcome(again[0], Verdict.RETRY, 1.0)
    assert dead.action is Action.DEAD and dead.attempts == 2
    assert [e.entry_id for e in queue.ready(1.0)] == ["2-0"]


def test_offers_are_deduplicated_and_bounded() -> None:
    queue = DeliveryQueue(Policy(), events_max=2)
    assert queue.offer(ev("1-0", "a")) and queue.offer(ev("1-0", "a"))
    assert queue.offer(ev("2-0", "a")) and not queue.offer(ev("3-0", "a"))
    assert len(queue) == 2 and queue.room() == 0
    with pytest.raises(ValueError):
        queue.outcome(ev("2-0", "a"), Verdict.OK, 0.0)  # not handed out

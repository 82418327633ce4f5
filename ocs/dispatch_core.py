"""Delivery decisions of the event dispatcher, without I/O (time is a parameter).

One ``DeliveryQueue`` per (plug-in, event stream). It holds the events read but not yet
finished, in stream order, and decides:

- **order per subscriber**: only the oldest unfinished event of a subscriber is handed out; a
  failing event holds back the later events of *that* subscriber only;
- **backoff**: after ``retry`` the event waits ``backoff_s(attempt)`` (exponential, capped);
- **dead letter**: after ``attempts_max`` attempts, or at once on ``fail``, the event leaves the
  queue as a dead letter (the operator may ``ocs events retry`` it) and the subscriber's next
  event goes ahead — a poisoned event does not stop a subscriber for good.
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from balance.events import Event

ATTEMPTS_MAX_LIMIT = 100
QUEUE_EVENTS_MAX = 100_000


class Verdict(enum.Enum):
    """What a plug-in says about one event (the plug-in contract)."""

    OK = "ok"  # delivered: acknowledged, never offered to this plug-in again
    RETRY = "retry"  # transient failure: offered again after a backoff
    FAIL = "fail"  # permanent failure: dead-lettered at once


class Action(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Policy:
    attempts_max: int = 8
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.attempts_max <= ATTEMPTS_MAX_LIMIT:
            raise ValueError(f"attempts_max must be 1-{ATTEMPTS_MAX_LIMIT}")
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff: 0 <= backoff_base_s <= backoff_max_s")

    def backoff_s(self, attempt: int) -> float:
        """Wait after the ``attempt``-th failed attempt (1-based): base, 2·base, 4·base, …"""
        return min(self.backoff_max_s, self.backoff_base_s * 2.0 ** min(attempt - 1, 60))


@dataclass(slots=True)
class _Entry:
    event: Event
    attempts: int = 0
    due_s: float = 0.0
    in_flight: bool = False
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    event: Event
    attempts: int
    due_s: float = 0.0  # for RETRY
    error: str = ""


@dataclass(slots=True)
class DeliveryQueue:
    policy: Policy
    events_max: int = QUEUE_EVENTS_MAX
    _by_subscriber: OrderedDict[str, deque[_Entry]] = field(default_factory=OrderedDict)
    _known: dict[str, _Entry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._known)

    def room(self) -> int:
        """How many more events may be offered (reads are bounded by this)."""
        return max(0, self.events_max - len(self._known))

    def offer(self, event: Event) -> bool:
        """Queue an event read from the stream (again: ignored). False when full."""
        if event.entry_id in self._known:
            return True
        if len(self._known) >= self.events_max:
            return False
        entry = _Entry(event)
        self._known[event.entry_id] = entry
        self._by_subscriber.setdefault(event.subscriber, deque()).append(entry)
        return True

    def ready(self, now_s: float) -> list[Event]:
        """The events to hand to the plug-in now: the head of each subscriber's queue, if due
        and not already being handled. Marks them in flight."""
        out: list[Event] = []
        for queue in self._by_subscriber.values():
            head = queue[0]
            if not head.in_flight and head.due_s <= now_s:
                head.in_flight = True
                head.attempts += 1
                out.append(head.event)
        return out

    def outcome(self, event: Event, verdict: Verdict, now_s: float, error: str = "") -> Decision:
        """Record the plug-in's answer for an event that ``ready`` handed out."""
        entry = self._known.get(event.entry_id)
        if entry is None or not entry.in_flight:
            raise ValueError(f"event {event.id} is not in flight")
        entry.in_flight = False
        entry.last_error = error
        if verdict is Verdict.RETRY and entry.attempts < self.policy.attempts_max:
            entry.due_s = now_s + self.policy.backoff_s(entry.attempts)
            return Decision(Action.RETRY, event, entry.attempts, entry.due_s, error)
        self._remove(entry)
        if verdict is Verdict.OK:
            return Decision(Action.ACK, event, entry.attempts)
        reason = error or ("failed" if verdict is Verdict.FAIL else "attempts exhausted")
        return Decision(Action.DEAD, event, entry.attempts, error=reason)

    def _remove(self, entry: _Entry) -> None:
        del self._known[entry.event.entry_id]
        queue = self._by_subscriber[entry.event.subscriber]
        queue.popleft()
        if not queue:
            del self._by_subscriber[entry.event.subscriber]

    def next_due_s(self) -> float | None:
        """When the earliest waiting head becomes due (None: nothing waits)."""
        dues = [q[0].due_s for q in self._by_subscriber.values() if not q[0].in_flight]
        return min(dues) if dues else None

    def oldest_at_s(self) -> float | None:
        """Event time of the oldest unfinished event (the metric 'age of the oldest')."""
        return min((e.event.at_s for e in self._known.values()), default=None)

    def failing(self) -> int:
        """Events whose last attempt failed and that wait for a retry."""
        return sum(1 for e in self._known.values() if e.attempts > 0 and not e.in_flight)

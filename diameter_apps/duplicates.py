"""Base-layer duplicate detection (DESIGN B7): (Origin-Host, End-to-End) → the answer bytes.

One cache may be shared by every connection, so a retransmission arriving on another connection
after a failover (T flag) is recognised too. An entry is *in flight* from the moment the original
request reaches the application until its answer is sent; a duplicate arriving meanwhile
registers a waiter and gets the same answer when it is stored. Entries expire after ``ttl_s``
and the cache never holds more than ``entries_max`` (oldest dropped first).

Only answers that carry the application's outcome are kept (``complete``). A transient answer
(3004 while the ledger is unreachable, a request cancelled at shutdown) goes to the duplicates
waiting at that moment and is then forgotten (``release``): RFC 6733 keeps the End-to-End id on
a retransmission, so a kept 3004 would answer every retry for ``ttl_s`` although the ledger is
back, and a request the ledger did charge would never get its real answer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

DuplicateKey = tuple[str, int]
AnswerWaiter = Callable[[bytes], None]


class _Entry:
    __slots__ = ("answer", "expires_at", "waiters")

    def __init__(self, expires_at: float) -> None:
        self.answer: bytes | None = None
        self.expires_at = expires_at
        self.waiters: list[AnswerWaiter] = []


class DuplicateCache:
    __slots__ = ("_entries", "_expiry_checked_until", "entries_max", "ttl_s")

    def __init__(self, *, entries_max: int = 100_000, ttl_s: float = 120.0) -> None:
        if entries_max < 1 or ttl_s <= 0:
            raise ValueError("entries_max and ttl_s must be positive")
        self.entries_max = entries_max
        self.ttl_s = ttl_s
        self._entries: OrderedDict[DuplicateKey, _Entry] = OrderedDict()
        # No entry expires before this instant: the expiry of the oldest entry when it was last
        # looked at (entries are kept in order of expiry, and that oldest one can only go).
        self._expiry_checked_until = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now: float) -> None:
        entries = self._entries
        if now < self._expiry_checked_until and len(entries) <= self.entries_max:
            return  # the usual call: nothing is due yet
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.expires_at > now and len(entries) <= self.entries_max:
                self._expiry_checked_until = entry.expires_at
                break
            del entries[key]

    def answer_for(self, key: DuplicateKey, now: float) -> bytes | None:
        """The cached answer of an already answered original, else None."""
        self._expire(now)
        entry = self._entries.get(key)
        return None if entry is None else entry.answer

    def is_in_flight(self, key: DuplicateKey, now: float) -> bool:
        self._expire(now)
        entry = self._entries.get(key)
        return entry is not None and entry.answer is None

    def begin(self, key: DuplicateKey, now: float) -> tuple[bool, bytes | None]:
        """:meth:`answer_for`, :meth:`is_in_flight` and :meth:`start` in one lookup, as a
        request arrives: (True, None) when it is an original, now in flight; (False, answer)
        for a duplicate of an answered original; (False, None) for one of an original still
        in flight."""
        self._expire(now)
        entries = self._entries
        entry = entries.get(key)
        if entry is not None:
            return False, entry.answer
        entries[key] = _Entry(now + self.ttl_s)  # a new key goes last: no move_to_end
        if len(entries) > self.entries_max:
            self._expire(now)
        return True, None

    def start(self, key: DuplicateKey, now: float) -> None:
        """Mark the original as in flight (it is being handed to the application)."""
        self._entries[key] = _Entry(now + self.ttl_s)
        self._entries.move_to_end(key)
        self._expire(now)

    def wait(self, key: DuplicateKey, waiter: AnswerWaiter) -> None:
        """Call ``waiter(answer)`` when the in-flight original is answered."""
        entry = self._entries.get(key)
        if entry is None or entry.answer is not None:
            raise KeyError(key)
        entry.waiters.append(waiter)

    def complete(self, key: DuplicateKey, answer: bytes, now: float) -> None:
        """Store the original's answer and release every waiting duplicate."""
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(now + self.ttl_s)
            self._entries[key] = entry
        entry.answer = answer
        waiters, entry.waiters = entry.waiters, []
        for waiter in waiters:
            waiter(answer)
        self._expire(now)

    def release(self, key: DuplicateKey, answer: bytes, now: float) -> None:
        """Answer the duplicates waiting for the in-flight original with a transient
        ``answer`` and forget the original: a later retransmission is handled afresh."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            for waiter in entry.waiters:
                waiter(answer)
        self._expire(now)

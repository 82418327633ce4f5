"""Which peer owns each live credit-control session of this process, for RAR and ASR.

The session's money lives in Redis (any process can continue it); what lives here is only who to
send a server-initiated request to, and whether the session is waiting for credit (answered 4012
or on its final grant), which makes a top-up worth a Re-Auth-Request. Bounded: the oldest
entries go first when ``sessions_max`` is reached.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

SESSIONS_MAX_DEFAULT = 200_000


class OwnedSession(msgspec.Struct):
    session_id: str
    tenant: str
    subscriber: str
    origin_host: str
    origin_realm: str
    last_seen_s: float
    waiting_for_credit: bool = False
    context: bytes = b""
    """The session's encoded record context (built at its first request here, reused)."""


class SessionRegistry:
    def __init__(self, sessions_max: int = SESSIONS_MAX_DEFAULT) -> None:
        if sessions_max <= 0:
            raise ValueError("sessions_max must be positive")
        self.sessions_max = sessions_max
        self._sessions: OrderedDict[str, OwnedSession] = OrderedDict()
        self._by_subscriber: dict[tuple[str, str], set[str]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def seen(
        self,
        session_id: str,
        *,
        tenant: str,
        subscriber: str,
        origin_host: str,
        origin_realm: str,
        now_s: float,
        waiting_for_credit: bool,
        context: bytes = b"",
    ) -> tuple[bool, str] | None:
        """Record a request of a live session (CCR-I/U) and whether it now waits for credit.
        Returns what the entry said before (waiting for credit, Origin-Host); None if new."""
        entry = self._sessions.get(session_id)
        before = None
        if entry is None:
            while len(self._sessions) >= self.sessions_max:
                _, oldest = self._sessions.popitem(last=False)
                self._unindex(oldest)
            entry = OwnedSession(
                session_id, tenant, subscriber, origin_host, origin_realm, now_s, context=context
            )
            self._sessions[session_id] = entry
            self._by_subscriber.setdefault((tenant, subscriber), set()).add(session_id)
        else:
            before = (entry.waiting_for_credit, entry.origin_host)
            self._sessions.move_to_end(session_id)
            entry.origin_host, entry.origin_realm = origin_host, origin_realm
            if context and not entry.context:
                entry.context = context
        entry.last_seen_s = now_s
        entry.waiting_for_credit = waiting_for_credit
        return before

    def ended(self, session_id: str) -> None:
        entry = self._sessions.pop(session_id, None)
        if entry is not None:
            self._unindex(entry)

    def _unindex(self, entry: OwnedSession) -> None:
        key = (entry.tenant, entry.subscriber)
        ids = self._by_subscriber.get(key)
        if ids is not None:
            ids.discard(entry.session_id)
            if not ids:
                del self._by_subscriber[key]

    def of_subscriber(self, tenant: str, subscriber: str) -> list[OwnedSession]:
        ids = self._by_subscriber.get((tenant, subscriber), ())
        return [self._sessions[i] for i in sorted(ids) if i in self._sessions]

    def get(self, session_id: str) -> OwnedSession | None:
        return self._sessions.get(session_id)

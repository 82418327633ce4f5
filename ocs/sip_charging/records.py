"""The call record: what the SIP side keeps about one authorized call between INVITE and end.

The ledger holds the money (reservation, commits, usage records); the call record holds what
the ledger does not know about a redirect-server call: the callee to rate with, how many
seconds are committed so far, when the current grant ends, and the final answer of the call
end. Changes go through a compare-and-set (``store.CallStore.swap``) in two steps: first the
*intent* (``pending``: re-authorise, end, auto-end, with everything needed to price it), then,
after the ledger applied it, the outcome. Whoever finds a pending intent (a retry, the sweeper,
another server process) completes exactly that intent with the same operation id, so the
ledger's idempotency turns every completion after the first into a replay.
"""

from __future__ import annotations

import enum

import msgspec


class IntentKind(enum.Enum):
    REAUTH = "reauth"
    END = "end"
    AUTO_END = "auto-end"


class Intent(msgspec.Struct, frozen=True, array_like=True):
    """A change being applied. ``seconds``: reauth ``used_s``; end ``duration_s``; auto-end the
    total committed. ``at_s``: the instant the reported usage ends (its legs end there)."""

    kind: IntentKind
    seconds: int
    at_s: int
    cause: str = ""


class Ended(msgspec.Struct, frozen=True, array_like=True):
    """How the call ended (the answer a repeated end event gets)."""

    kind: IntentKind  # END or AUTO_END
    duration_s: int  # as reported (END) or the full granted time (AUTO_END)
    cause: str
    at_s: int


class CallRecord(msgspec.Struct, frozen=True, array_like=True):
    tenant: str
    subscriber: str
    key: str
    caller: str
    callee: str
    authorized_at_s: int
    max_duration_s: int  # the 302's X-Max-Duration (a replayed INVITE gets it again)
    route_uri: str | None
    granted_s: int  # seconds held now, after the committed ones
    grant_from_s: int  # when the current grant started (authorization or last reauth)
    committed_s: int = 0  # seconds of the call committed so far (leakage included)
    retail: int = 0  # micro-units of the tenant currency, whole call
    wholesale: int = 0
    leakage_s: int = 0
    leakage_money: int = 0
    balance: int = 0  # the account after the last ledger step of this call
    held_money: int = 0
    reauth_used_s: int = -1  # the last re-authorisation's used_s and its answer
    reauth_granted_s: int = 0
    reauth_result: int = 0
    pending: Intent | None = None
    ended: Ended | None = None

    @property
    def grant_until_s(self) -> int:
        return self.grant_from_s + self.granted_s


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CallRecord)


def encode_record(record: CallRecord) -> bytes:
    return _ENCODER.encode(record)


def decode_record(raw: bytes) -> CallRecord:
    return _DECODER.decode(raw)

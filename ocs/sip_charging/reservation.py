"""Names of one SIP call in the ledger: session id, operation ids and the reservation id.

Everything derives from (tenant, Call-ID, From-tag), the key RFC 3261 gives an INVITE's
dialog-forming request, so a retransmission, a restarted server or another server process
arrives at the same ledger session and the same operation ids and is never charged twice.
Call-IDs are arbitrary text (up to the SIP size limits), so they are hashed into a fixed-size
key instead of being embedded.

The reservation id the proxy gets in ``X-OCS-Reservation`` is ``<tenant>.<subscriber>.<key>``:
what the call-end endpoint needs to find the call without a lookup table, opaque to the proxy,
header- and URL-path-safe, and strictly validated on the way back in.
"""

from __future__ import annotations

import hashlib
import re

import msgspec

from balance.keys import TENANT_ID_RE

CALL_KEY_HEX = 32
_CALL_KEY_RE = re.compile(r"[0-9a-f]{32}")
_SUBSCRIBER_RE = re.compile(r"[0-9]{1,15}")
RESERVATION_BYTES_MAX = 64 + 1 + 15 + 1 + CALL_KEY_HEX


class InvalidReservation(ValueError):
    """A reservation id that is not one this server could have issued."""


class CallRef(msgspec.Struct, frozen=True):
    """One call: who pays and its key (hash of tenant, Call-ID and From-tag)."""

    tenant: str
    subscriber: str
    key: str

    @property
    def reservation_id(self) -> str:
        return f"{self.tenant}.{self.subscriber}.{self.key}"

    @property
    def session_id(self) -> str:
        """The ledger session of the call (distinct from any Diameter Session-Id)."""
        return f"sip:{self.key}"

    def op_id(self, step: str) -> str:
        """``sip:<key>:invite``, ``…:u<used_s>``, ``…:end``, ``…:auto-end``, ``…:refused``."""
        return f"sip:{self.key}:{step}"


def call_key(tenant: str, call_id: str, from_tag: str) -> str:
    material = "\x00".join((tenant, call_id, from_tag)).encode("utf-8", "surrogateescape")
    return hashlib.blake2b(material, digest_size=CALL_KEY_HEX // 2).hexdigest()


def call_ref(tenant: str, subscriber: str, call_id: str, from_tag: str) -> CallRef:
    return CallRef(tenant, subscriber, call_key(tenant, call_id, from_tag))


def parse_reservation(text: str) -> CallRef:
    """The call a reservation id names; ``InvalidReservation`` saying why it is not one."""
    if not text or len(text) > RESERVATION_BYTES_MAX or not text.isascii():
        raise InvalidReservation("reservation id: wrong length or not ASCII")
    parts = text.rsplit(".", 2)
    if len(parts) != 3:
        raise InvalidReservation("reservation id: expected <tenant>.<subscriber>.<key>")
    tenant, subscriber, key = parts
    if not TENANT_ID_RE.fullmatch(tenant):
        raise InvalidReservation("reservation id: bad tenant part")
    if not _SUBSCRIBER_RE.fullmatch(subscriber):
        raise InvalidReservation("reservation id: subscriber part must be 1-15 digits")
    if not _CALL_KEY_RE.fullmatch(key):
        raise InvalidReservation(f"reservation id: key part must be {CALL_KEY_HEX} hex digits")
    return CallRef(tenant, subscriber, key)

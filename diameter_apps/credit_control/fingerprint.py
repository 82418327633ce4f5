"""A content digest of a CCR, to tell a retransmission from a reused CC-Request-Number.

A retransmitted CCR (RFC 6733 §5.5.4, RFC 4006 §5.1) carries the same AVPs as the original;
only the header (T flag, Hop-by-Hop) and what relays add on the way (Route-Record, Proxy-Info)
may differ. Store the digest with the answer under (Session-Id, CC-Request-Number): a repeat
with the same digest gets the stored answer, one with another digest is a client fault.

The hash need not be cryptographic: the digest is only compared with the one stored under the
same (Session-Id, CC-Request-Number) of the same tenant, to tell a retransmission from a client
reusing the number with other content. Nothing is authenticated by it, and a client that made
two of its own requests collide would only get its own earlier answer instead of a 5004. So
``ccr_digest`` is XXH3-128 (the ``xxhash`` package: about a tenth of the instructions of
hashlib's BLAKE2b per CCR), written ``x`` + 32 hex digits.

Upgrade: the previous releases stored ``legacy_ccr_digest`` (BLAKE2b-128, 32 hex digits, no
prefix) for up to the idempotency window. The ledger's ``idem_lookup`` (balance/lua/lib.lua)
tells that case from a conflict by the shapes of the two digests and fails with
``OCS_LEGACY_DIGEST``; the caller then computes the legacy digest and calls once more
(docs/guarantees.md, "Digests across an upgrade").
"""

from __future__ import annotations

import hashlib
import struct

import xxhash

from diameter_apps.codec import HEADER_BYTES, Message
from diameter_apps.codes import AvpCode

_ROUTE_RECORD = int(AvpCode.ROUTE_RECORD)
_PROXY_INFO = int(AvpCode.PROXY_INFO)
_ROUTE_RECORD_KEY = (_ROUTE_RECORD, 0)
_PROXY_INFO_KEY = (_PROXY_INFO, 0)
_RELAY_AVPS = frozenset({_ROUTE_RECORD_KEY, _PROXY_INFO_KEY})
DIGEST_PREFIX = "x"
"""Marks ``ccr_digest``'s format (hex digits never include it): the ledger tells it from a
legacy digest by its first byte."""
LEGACY_DIGEST_BYTES = 16
_AVP_HEAD = struct.Struct(">II").unpack_from
_VENDOR_BIT = 0x80
_xxh3_hex = xxhash.xxh3_128_hexdigest


def ccr_digest(message: Message) -> str:
    """``x`` + the hex XXH3-128 of the wire bytes of every top-level AVP except Route-Record
    and Proxy-Info, in order, seeded with the command code.

    A message decoded from the wire is hashed from the frame it came from: without relay AVPs
    (the usual request) that is one hash call over the frame past its header; with them, the
    spans between them. A built message hashes its AVPs' encodings, which are the same bytes.
    The command code goes in as the seed rather than as bytes before the AVPs: the frame slice
    is then hashed as it is, with no concatenation.
    """
    return DIGEST_PREFIX + _xxh3_hex(_content(message), message.command_code)


def legacy_ccr_digest(message: Message) -> str:
    """The digest releases up to 0.1.x stored: hex BLAKE2b-128 of the command code (4 bytes)
    and the same content as ``ccr_digest``. Computed only when the ledger found a record
    written with it (``OCS_LEGACY_DIGEST``)."""
    command = message.command_code.to_bytes(4, "big")
    return hashlib.blake2b(command + _content(message), digest_size=LEGACY_DIGEST_BYTES).hexdigest()


def _content(message: Message) -> bytes:
    """The digested bytes: the top-level AVPs but the relay ones, as on the wire."""
    frame = message.received_frame()
    if frame is not None:
        # The decoder's map of this shape (same object for every request of the shape) tells
        # with two dict lookups that no relay AVP is there: the usual request, the frame as it is.
        positions = message.shared_positions()
        if positions is not None:
            relayed = _ROUTE_RECORD_KEY in positions or _PROXY_INFO_KEY in positions
        else:
            relayed = (
                message.find(_ROUTE_RECORD) is not None or message.find(_PROXY_INFO) is not None
            )
        return b"".join(_spans_without_relay(frame)) if relayed else frame[HEADER_BYTES:]
    relay = _RELAY_AVPS
    return b"".join([a.encode() for a in message.avps if (a.code, a.vendor) not in relay])


def _spans_without_relay(frame: bytes) -> list[bytes]:
    """The top-level AVPs of a (well-framed: it was decoded) message as wire spans, padding
    included, skipping Route-Record and Proxy-Info."""
    spans = []
    pos, end = HEADER_BYTES, len(frame)
    while pos < end:
        code, flags_length = _AVP_HEAD(frame, pos)
        stop = pos + (((flags_length & 0xFFFFFF) + 3) & ~3)
        vendor = flags_length >> 24 & _VENDOR_BIT
        if vendor or (code != _ROUTE_RECORD and code != _PROXY_INFO):
            spans.append(frame[pos:stop])
        pos = stop
    return spans

"""A content digest of a CCR, to tell a retransmission from a reused CC-Request-Number.

A retransmitted CCR (RFC 6733 §5.5.4, RFC 4006 §5.1) carries the same AVPs as the original;
only the header (T flag, Hop-by-Hop) and what relays add on the way (Route-Record, Proxy-Info)
may differ. Store the digest with the answer under (Session-Id, CC-Request-Number): a repeat
with the same digest gets the stored answer, one with another digest is a client fault.
"""

from __future__ import annotations

import hashlib
import struct

from diameter_apps.codec import HEADER_BYTES, Message
from diameter_apps.codes import AvpCode

_ROUTE_RECORD = int(AvpCode.ROUTE_RECORD)
_PROXY_INFO = int(AvpCode.PROXY_INFO)
_RELAY_AVPS = frozenset({(_ROUTE_RECORD, 0), (_PROXY_INFO, 0)})
DIGEST_BYTES = 16
_AVP_HEAD = struct.Struct(">II").unpack_from
_VENDOR_BIT = 0x80
_blake2b = hashlib.blake2b


def ccr_fingerprint(message: Message) -> bytes:
    """16-byte BLAKE2b of the command code and the wire bytes of every top-level AVP except
    Route-Record and Proxy-Info, in order.

    A message decoded from the wire is hashed from the frame it came from: without relay AVPs
    (the usual request) that is one hash call over the frame past its header; with them, the
    spans between them. A built message hashes its AVPs' encodings, which are the same bytes.
    """
    command = message.command_code.to_bytes(4, "big")
    frame = message.received_frame()
    if frame is not None:
        if message.find(_ROUTE_RECORD) is None and message.find(_PROXY_INFO) is None:
            return _blake2b(command + frame[HEADER_BYTES:], digest_size=DIGEST_BYTES).digest()
        return _digest([command, *_spans_without_relay(frame)])
    relay = _RELAY_AVPS
    parts = [command]
    parts += [a.encode() for a in message.avps if (a.code, a.vendor) not in relay]
    return _digest(parts)


def _digest(parts: list[bytes]) -> bytes:
    return _blake2b(b"".join(parts), digest_size=DIGEST_BYTES).digest()


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

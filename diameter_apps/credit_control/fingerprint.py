"""A content digest of a CCR, to tell a retransmission from a reused CC-Request-Number.

A retransmitted CCR (RFC 6733 §5.5.4, RFC 4006 §5.1) carries the same AVPs as the original;
only the header (T flag, Hop-by-Hop) and what relays add on the way (Route-Record, Proxy-Info)
may differ. Store the digest with the answer under (Session-Id, CC-Request-Number): a repeat
with the same digest gets the stored answer, one with another digest is a client fault.
"""

from __future__ import annotations

import hashlib
import struct

from diameter_apps.codec import Message
from diameter_apps.codes import AvpCode

_RELAY_AVPS = frozenset({(int(AvpCode.ROUTE_RECORD), 0), (int(AvpCode.PROXY_INFO), 0)})
DIGEST_BYTES = 16
_AVP_FIELDS = struct.Struct(">IIII").pack


def ccr_fingerprint(message: Message) -> bytes:
    """16-byte BLAKE2b of the command code and every AVP (code, flags, vendor, payload) except
    Route-Record and Proxy-Info.

    It digests the AVPs' fields as decoded rather than re-encoding each AVP (this runs once per
    CCR on the hot path): one join, one hash.
    """
    relay = _RELAY_AVPS
    header = _AVP_FIELDS
    parts = [message.command_code.to_bytes(4, "big")]
    for avp in message.avps:
        if (avp.code, avp.vendor) not in relay:
            data = avp.data
            parts.append(header(avp.code, avp.flags, avp.vendor, len(data)))
            parts.append(data)
    return hashlib.blake2b(b"".join(parts), digest_size=DIGEST_BYTES).digest()

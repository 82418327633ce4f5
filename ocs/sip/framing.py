"""Sans-IO framing of SIP over a byte stream (RFC 3261 §18.3; RFC 5626 §3.5.1 keep-alives).

On TCP a message ends where its Content-Length says (the header is mandatory there). The
framer buffers at most ``message_bytes_max`` bytes of an unfinished message; anything that
cannot be framed any more is a ``SipFramingError`` and the connection must close.
"""

from __future__ import annotations

import msgspec

from ocs.sip.errors import SipFramingError
from ocs.sip.message import content_length_of_head


class Frame(msgspec.Struct, frozen=True):
    """One complete message's bytes, ready for ``parse_message``."""

    data: bytes


class KeepAlive(msgspec.Struct, frozen=True):
    """A CRLFCRLF ping; the answer is a single CRLF pong (RFC 5626 §3.5.1)."""


StreamEvent = Frame | KeepAlive


class StreamFramer:
    def __init__(self, message_bytes_max: int) -> None:
        self._buffer = bytearray()
        self._limit = message_bytes_max

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Append received bytes; return the messages and keep-alives now complete."""
        self._buffer += data
        events: list[StreamEvent] = []
        while True:
            event = self._next_event()
            if event is None:
                break
            events.append(event)
        return events

    def _next_event(self) -> StreamEvent | None:
        buffer = self._buffer
        if buffer.startswith(b"\r\n\r\n"):
            del buffer[:4]
            return KeepAlive()
        # Stray CRLFs between messages (a lone pong, or a sender's extra line) are skipped,
        # but a single CRLF may be the start of a ping whose second half has not arrived yet.
        while buffer.startswith(b"\r\n") and not buffer.startswith(b"\r\n\r"):
            if len(buffer) == 2:
                return None
            del buffer[:2]
        if buffer.startswith(b"\r\n\r") and len(buffer) < 4:
            return None
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > self._limit:
                raise SipFramingError(
                    f"Message Too Large (headers exceed {self._limit} bytes)", status=None
                )
            return None
        content_length = content_length_of_head(bytes(buffer[:head_end]))
        if content_length is None:
            raise SipFramingError("Missing Content-Length on a stream transport", status=400)
        if content_length < 0:
            raise SipFramingError("Malformed Content-Length Header", status=400)
        total = head_end + 4 + content_length
        if total > self._limit:
            raise SipFramingError(f"Message Too Large ({total} bytes > {self._limit})", status=513)
        if len(buffer) < total:
            return None
        frame = bytes(buffer[:total])
        del buffer[:total]
        return Frame(frame)

    def pending_head(self) -> bytes:
        """The unfinished message's bytes so far, for salvaging an answer before closing."""
        return bytes(self._buffer)

"""Streaming framer: cuts a TCP byte stream into whole Diameter messages (DESIGN B1).

The message length is read from the first 4 bytes as soon as they arrive. A length below the
20-byte header, not a multiple of 4, or above ``message_bytes_max`` raises
:class:`FramingError` at once, before the body is buffered: the stream cannot be resynchronised,
so the connection is closed without an answer. A version other than 1 is *not* a framing error
when the length is sane: the message is framed and the decoder answers it 5011.
"""

from __future__ import annotations

from diameter_apps.codec import HEADER_BYTES
from diameter_apps.errors import FramingError
from diameter_apps.limits import CodecLimits


class Framer:
    __slots__ = ("_buffer", "_failed", "_message_bytes_max")

    def __init__(self, limits: CodecLimits) -> None:
        self._buffer = bytearray()
        self._message_bytes_max = limits.message_bytes_max
        self._failed = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def _length_at(self, data: bytes | bytearray, pos: int) -> int:
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if length < HEADER_BYTES or length & 3 or length > self._message_bytes_max:
            self._failed = True
            self._buffer.clear()
            raise FramingError(
                f"message length {length} is invalid (20..{self._message_bytes_max}, multiple of 4)"
            )
        return length

    def feed(self, data: bytes) -> list[bytes]:
        """The complete messages ``data`` finishes; the remainder stays buffered."""
        if self._failed:
            raise FramingError("the stream already failed framing")
        buffer = self._buffer
        if buffer:
            buffer += data
            source: bytes | bytearray = buffer
        else:
            source = data
        frames: list[bytes] = []
        pos = 0
        end = len(source)
        while end - pos >= 4:
            length = self._length_at(source, pos)
            if end - pos < length:
                break
            frames.append(bytes(source[pos : pos + length]))
            pos += length
        if source is buffer:
            del buffer[:pos]
        else:
            buffer += data[pos:]
        return frames

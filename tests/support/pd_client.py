"""A blocking Diameter client built on the independent python-diameter codec.

Used by interop tests so that what we decode and answer is checked by somebody else's encoder and
decoder, not by our own codec agreeing with itself.
"""

from __future__ import annotations

import itertools
import socket
import struct

from diameter.message import Message

HEADER_BYTES = 20


class PdClient:
    def __init__(self, sock: socket.socket, origin_host: str = "pgw.test.local") -> None:
        self.sock = sock
        self.origin_host = origin_host
        self.origin_realm = origin_host.split(".", 1)[1]
        self._ids = itertools.count(0x1000)

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, message: Message) -> None:
        if message.header.hop_by_hop_identifier == 0:
            message.header.hop_by_hop_identifier = self.next_id()
        if message.header.end_to_end_identifier == 0:
            message.header.end_to_end_identifier = self.next_id()
        self.sock.sendall(message.as_bytes())

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_raw(self) -> bytes:
        head = self._recv_exactly(HEADER_BYTES)
        length = struct.unpack("!I", b"\x00" + head[1:4])[0]
        return head + self._recv_exactly(length - HEADER_BYTES)

    def recv(self) -> Message:
        return Message.from_bytes(self.recv_raw())

    def request(self, message: Message) -> Message:
        self.send(message)
        return self.recv()

    def closed_by_peer(self, timeout_s: float = 5.0) -> bool:
        self.sock.settimeout(timeout_s)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _recv_exactly(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError(f"peer closed after {len(data)} of {count} bytes")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.sock.close()

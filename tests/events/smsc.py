"""A minimal SMPP 3.4 message centre for the tests (a test peer, not a product part): it binds
transmitters, records each submit_sm (destination, data coding, text bytes) and answers it,
with a status the test may set for the next submits (throttled, rejected)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

BIND_TRANSMITTER, SUBMIT_SM, UNBIND, ENQUIRE_LINK = 0x02, 0x04, 0x06, 0x15
RESPONSE = 0x80000000
HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence
PDU_BYTES_MAX = 64 * 1024


@dataclass
class Submitted:
    source: str
    destination: str
    data_coding: int
    esm_class: int
    message: bytes


def _cstring(body: bytes, at: int) -> tuple[str, int]:
    end = body.index(b"\0", at)
    return body[at:end].decode("latin-1"), end + 1


def parse_submit(body: bytes) -> Submitted:
    _service, at = _cstring(body, 0)
    at += 2  # source TON, NPI
    source, at = _cstring(body, at)
    at += 2  # destination TON, NPI
    destination, at = _cstring(body, at)
    esm_class = body[at]
    at += 3  # esm_class, protocol_id, priority_flag
    _schedule, at = _cstring(body, at)
    _validity, at = _cstring(body, at)
    at += 2  # registered_delivery, replace_if_present_flag
    data_coding = body[at]
    length = body[at + 2]  # after sm_default_msg_id
    message = body[at + 3 : at + 3 + length]
    return Submitted(source, destination, data_coding, esm_class, message)


@dataclass
class Smsc:
    """Serves on 127.0.0.1 (a free port) until close()."""

    submitted: list[Submitted] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    # Statuses for the next submits, in order (then 0: accepted).
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                header = _read(conn, HEADER.size)
                if header is None:
                    return
                length, command, _status, sequence = HEADER.unpack(header)
                if not HEADER.size <= length <= PDU_BYTES_MAX:
                    return
                body = _read(conn, length - HEADER.size) or b""
                status, reply = self._answer(command, body)
                conn.sendall(HEADER.pack(HEADER.size + len(reply), command | RESPONSE,
                                         status, sequence) + reply)  # fmt: skip
                if command == UNBIND:
                    return

    def _answer(self, command: int, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            if command == BIND_TRANSMITTER:
                self.binds.append(_cstring(body, 0)[0])
                return 0, b"test-smsc\0"
            if command == SUBMIT_SM:
                status = self.statuses.pop(0) if self.statuses else 0
                if status == 0:
                    self.submitted.append(parse_submit(body))
                    return 0, f"m{len(self.submitted)}\0".encode()
                return status, b""
            return 0, b""  # enquire_link, unbind

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accepting thread
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()


def _read(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data

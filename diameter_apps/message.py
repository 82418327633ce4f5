"""The Diameter message (RFC 6733 §3): header fields plus top-level AVPs, with lookups by
(code, vendor) and the memory of the frame it was decoded from."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping, Sequence

from diameter_apps.avp import Avp
from diameter_apps.codes import (
    FLAG_ERROR,
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    AvpCode,
)

HEADER_BYTES = 20
_HEADER = struct.Struct(">IIIII")
# Plain ints for lookups on the hot path: an IntEnum member in a key tuple hashes slower.
_SESSION_ID = int(AvpCode.SESSION_ID)
_ORIGIN_HOST = int(AvpCode.ORIGIN_HOST)
_RESULT_CODE = int(AvpCode.RESULT_CODE)


class Message:
    """A Diameter message: header fields plus top-level AVPs (children decoded lazily)."""

    __slots__ = (
        "_index",
        "_indexed",
        "_indexed_len",
        "_positions",
        "_raw",
        "_raw_avps",
        "_raw_count",
        "application_id",
        "avps",
        "command_code",
        "end_to_end",
        "flags",
        "hop_by_hop",
        "version",
    )

    def __init__(
        self,
        command_code: int,
        application_id: int,
        *,
        flags: int = 0,
        hop_by_hop: int = 0,
        end_to_end: int = 0,
        avps: list[Avp] | None = None,
        version: int = 1,
    ) -> None:
        self.version = version
        self.flags = flags
        self.command_code = command_code
        self.application_id = application_id
        self.hop_by_hop = hop_by_hop
        self.end_to_end = end_to_end
        self.avps: list[Avp] = avps if avps is not None else []
        # Lookups by (code, vendor) describe ``_indexed`` while it is ``avps`` with the same
        # length: ``_positions`` (given by the decoder, see message_of) or ``_index`` (built
        # on the first lookup).
        self._indexed: list[Avp] | None = None
        self._indexed_len = 0
        self._positions: Mapping[tuple[int, int], tuple[int, ...]] | None = None
        self._index: dict[tuple[int, int], list[Avp]] | None = None
        # The frame the AVPs were decoded from (see received_frame).
        self._raw: bytes | None = None
        self._raw_avps: list[Avp] | None = None
        self._raw_count = -1

    @classmethod
    def request(
        cls,
        command_code: int,
        application_id: int,
        avps: Sequence[Avp] = (),
        *,
        proxiable: bool = True,
        hop_by_hop: int = 0,
        end_to_end: int = 0,
    ) -> Message:
        flags = FLAG_REQUEST | (FLAG_PROXIABLE if proxiable else 0)
        return cls(
            command_code,
            application_id,
            flags=flags,
            hop_by_hop=hop_by_hop,
            end_to_end=end_to_end,
            avps=list(avps),
        )

    # --- header flags ----------------------------------------------------------------------

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)

    @property
    def is_proxiable(self) -> bool:
        return bool(self.flags & FLAG_PROXIABLE)

    @property
    def is_error(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def is_retransmit(self) -> bool:
        return bool(self.flags & FLAG_RETRANSMIT)

    # --- AVP access ------------------------------------------------------------------------

    def received_frame(self) -> bytes | None:
        """The bytes this message was decoded from, while ``avps`` is still the list decoded
        from them with the same length (None for a built or modified message): lets a digest
        of the request hash the wire bytes instead of re-packing every AVP."""
        avps = self.avps
        if self._raw_avps is avps and self._raw_count == len(avps):
            return self._raw
        return None

    def _decoded_from(self, data: bytes) -> None:
        self._raw = data
        self._raw_avps = self.avps
        self._raw_count = len(self.avps)

    def shared_positions(self) -> Mapping[tuple[int, int], tuple[int, ...]] | None:
        """The positions map the decoder gave (see message_of), while ``avps`` is still the
        list it describes: the same object for every request of one shape (same AVPs in the
        same order), so a caller can key what follows from the AVP order alone on it."""
        avps = self.avps
        if self._indexed is avps and self._indexed_len == len(avps):
            return self._positions
        return None

    def index(self) -> Mapping[tuple[int, int], list[Avp]]:
        """Top-level AVPs by (code, vendor), in order; rebuilt when ``avps`` changed size or
        was replaced (mutating an element in place is not tracked)."""
        avps = self.avps
        if self._indexed is not avps or self._indexed_len != len(avps):
            self._positions = self._index = None
            self._indexed = avps
            self._indexed_len = len(avps)
        index = self._index
        if index is None:
            index = self._index = {}
            for avp in avps:
                key = (avp.code, avp.vendor)
                bucket = index.get(key)
                if bucket is None:
                    index[key] = [avp]
                else:
                    bucket.append(avp)
        return index

    def find(self, code: int, vendor: int = 0) -> Avp | None:
        """First top-level AVP with this (code, vendor), or None."""
        avps = self.avps
        positions = self._positions
        if positions is not None and self._indexed is avps and self._indexed_len == len(avps):
            at = positions.get((code, vendor))
            if not at:
                return None
            avp = avps[at[0]]
            if avp.code == code and avp.vendor == vendor:  # not replaced in place
                return avp
            self._positions = None
        bucket = self.index().get((code, vendor))
        return bucket[0] if bucket else None

    def find_all(self, code: int, vendor: int = 0) -> list[Avp]:
        avps = self.avps
        positions = self._positions
        if positions is not None and self._indexed is avps and self._indexed_len == len(avps):
            at = positions.get((code, vendor))
            if not at:
                return []
            found = [avps[i] for i in at]
            for avp in found:
                if avp.code != code or avp.vendor != vendor:  # replaced in place
                    self._positions = None
                    break
            else:
                return found
        bucket = self.index().get((code, vendor))
        return bucket[:] if bucket else []

    def walk(self) -> Iterator[Avp]:
        """Every top-level AVP; children are reached through :meth:`Avp.children`."""
        return iter(self.avps)

    @property
    def session_id(self) -> str | None:
        avp = self.find(_SESSION_ID)
        return None if avp is None else avp.as_str()

    @property
    def origin_host(self) -> str | None:
        avp = self.find(_ORIGIN_HOST)
        return None if avp is None else avp.as_str()

    @property
    def result_code(self) -> int | None:
        # A scan, not find(): this is read once per answer we send (metrics), on a built answer
        # that has no index yet and where Result-Code sits second; building the index costs
        # more than the scan.
        for avp in self.avps:
            if avp.code == _RESULT_CODE and not avp.vendor:
                return avp.as_u32()
        return None

    # --- wire ------------------------------------------------------------------------------

    def encode(self) -> bytes:
        body = b"".join([avp._wire or avp.encode() for avp in self.avps])
        return (
            _HEADER.pack(
                (self.version << 24) | (HEADER_BYTES + len(body)),
                (self.flags << 24) | self.command_code,
                self.application_id,
                self.hop_by_hop,
                self.end_to_end,
            )
            + body
        )

    def __repr__(self) -> str:
        return (
            f"Message(cmd={self.command_code}, app={self.application_id}, "
            f"flags=0x{self.flags:02x}, hbh={self.hop_by_hop}, e2e={self.end_to_end}, "
            f"avps={len(self.avps)})"
        )


def decode_header(data: bytes) -> Message:
    """The header of a message as a Message without AVPs (``data`` holds ≥ 20 bytes)."""
    word0, word1, application_id, hop_by_hop, end_to_end = _HEADER.unpack_from(data)
    message = built_message(
        word1 & 0xFFFFFF, application_id, word1 >> 24, hop_by_hop, end_to_end, []
    )
    message.version = word0 >> 24
    return message


def built_message(
    command_code: int,
    application_id: int,
    flags: int,
    hop_by_hop: int,
    end_to_end: int,
    avps: list[Avp],
) -> Message:
    """``Message(...)`` without its keyword parsing, for the message built per answer sent."""
    message = Message.__new__(Message)
    message.version = 1
    message.flags = flags
    message.command_code = command_code
    message.application_id = application_id
    message.hop_by_hop = hop_by_hop
    message.end_to_end = end_to_end
    message.avps = avps
    message._indexed = None
    message._indexed_len = 0
    message._positions = None
    message._index = None
    message._raw = message._raw_avps = None
    message._raw_count = -1
    return message


def message_of(
    data: bytes, avps: list[Avp], positions: Mapping[tuple[int, int], tuple[int, ...]]
) -> Message:
    """The message framed in ``data`` with its top-level ``avps``, decoded by the caller, and
    ``positions``: the indices in ``avps`` of each (code, vendor), in order, which lookups then
    use instead of building an index (until ``avps`` is replaced or changes size)."""
    word0, word1, application_id, hop_by_hop, end_to_end = _HEADER.unpack_from(data)
    message = Message.__new__(Message)
    message.version = word0 >> 24
    message.flags = word1 >> 24
    message.command_code = word1 & 0xFFFFFF
    message.application_id = application_id
    message.hop_by_hop = hop_by_hop
    message.end_to_end = end_to_end
    message.avps = avps
    message._indexed = avps
    message._indexed_len = len(avps)
    message._positions = positions
    message._index = None
    message._raw = data
    message._raw_avps = avps
    message._raw_count = len(avps)
    return message

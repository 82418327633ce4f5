"""Decoding limits: every untrusted size has a ceiling, named with its unit."""

from __future__ import annotations

import msgspec


class CodecLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Ceilings applied while framing and decoding one peer's traffic.

    ``message_bytes_max`` is enforced by the framer before anything is buffered;
    ``avps_max`` counts every AVP of a message, nested ones included, as they are decoded;
    ``avp_depth_max`` bounds Grouped nesting (1 = top-level AVPs only may exist).
    """

    message_bytes_max: int = 65_536
    avps_max: int = 1_024
    avp_depth_max: int = 8

    def __post_init__(self) -> None:
        if self.message_bytes_max < 20:
            raise ValueError("message_bytes_max must be at least 20 (the header)")
        if self.avps_max < 1 or self.avp_depth_max < 1:
            raise ValueError("avps_max and avp_depth_max must be positive")


DEFAULT_LIMITS = CodecLimits()

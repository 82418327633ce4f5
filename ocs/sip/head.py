"""What every SIP message's head is made of: its header list, its Via entries, and the part of
a request that is enough to address an answer.

Kept apart from ``ocs.sip.message`` (the parser) so that ``ocs.sip.errors`` can name a
``RequestHead`` without importing the parser that raises those errors.
"""

from __future__ import annotations

import re

import msgspec

from ocs.sip.uri import Params, has_param, param, parse_params, split_host_port

VIA_RE = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9-]+)\s+([^;\s]+)\s*(;.*)?$", re.IGNORECASE)

Headers = tuple[tuple[str, str], ...]


def header(headers: Headers, name: str) -> str | None:
    """First value of ``name`` (canonical spelling), None when absent."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_values(headers: Headers, name: str) -> list[str]:
    return [value for key, value in headers if key == name]


class Via(msgspec.Struct, frozen=True):
    """One Via entry: ``SIP/2.0/UDP host:port;branch=z9hG4bK…;rport``."""

    transport: str
    host: str
    port: int | None
    params: Params

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param(self.params, "received")

    @property
    def wants_rport(self) -> bool:
        return has_param(self.params, "rport")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def to_text(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        sent_by = host if self.port is None else f"{host}:{self.port}"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"SIP/2.0/{self.transport} {sent_by}{params}"

    def stamped(self, source_host: str, source_port: int) -> Via:
        """The Via a response carries back: ``received`` when the packet came from elsewhere
        (RFC 3261 §18.2.1), ``rport`` filled in when the client asked for it (RFC 3581)."""
        params = [(k, v) for k, v in self.params if k not in ("received", "rport")]
        if self.wants_rport:
            params.append(("received", source_host))
            params.append(("rport", str(source_port)))
        elif self.host != source_host:
            params.append(("received", source_host))
        return Via(self.transport, self.host, self.port, tuple(params))


def parse_via(value: str) -> Via:
    match = VIA_RE.match(value.strip())
    if match is None:
        raise ValueError(f"malformed Via {value[:80]!r}")
    transport, sent_by, param_text = match.groups()
    host, port = split_host_port(sent_by)
    return Via(transport.upper(), host, port, parse_params(param_text or ""))


class RequestHead(msgspec.Struct, frozen=True):
    """What could be read of a request: enough to address an answer (a 400) even when the
    rest is wrong. ``vias`` holds the Via entries that parsed; empty means unanswerable."""

    method: str
    uri: str
    headers: Headers
    vias: tuple[Via, ...]

"""Sans-IO SIP message parser and serializer (RFC 3261 §7, §8.2.6, §18, §20; RFC 3581 rport).

Bytes in, an immutable ``SipRequest`` / ``SipResponse`` out, or a ``SipParseError`` that says
which status to answer (400 with a reason naming the problem, 416, 505, 513) or that the
message must be dropped (no Via to answer to, not SIP at all, a malformed response).
Limits (``message_bytes_max``, ``headers_max``) are passed in; this module never reads config,
never touches a socket or an event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import msgspec

from ocs.sip.errors import SipParseError
from ocs.sip.head import Headers, RequestHead, Via, header, header_values, parse_via
from ocs.sip.uri import (
    NameAddr,
    Params,
    SipUri,
    param,
    parse_name_addr,
    parse_params,
    parse_uri,
    split_top_level,
)

SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC_COOKIE = "z9hG4bK"
DEFAULT_SIP_PORT = 5060

# RFC 3261 §7.3.3 and later RFCs: compact form → full name.
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = (
    "Accept",
    "Allow",
    "Call-ID",
    "Contact",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Expires",
    "From",
    "Max-Forwards",
    "P-Asserted-Identity",
    "P-Charge-Info",
    "Record-Route",
    "Retry-After",
    "Route",
    "Server",
    "Supported",
    "To",
    "User-Agent",
    "Via",
    "WWW-Authenticate",
)
_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update({short: full for short, full in COMPACT_FORMS.items()})
_CANONICAL.update({full.lower(): full for full in COMPACT_FORMS.values()})

# Exact spellings seen on the wire → canonical name, so common headers skip the regex check.
_EXACT_NAMES: dict[str, str] = {}
for _full in (*_KNOWN_NAMES, *COMPACT_FORMS.values()):
    _EXACT_NAMES[_full] = _full
    _EXACT_NAMES[_full.lower()] = _full
for _short, _full in COMPACT_FORMS.items():
    _EXACT_NAMES[_short] = _full
    _EXACT_NAMES[_short.upper()] = _full

# Headers whose comma-separated values are independent entries we need one by one.
_SPLIT_ON_COMMA = frozenset({"Via"})
# Headers that must appear at most once; a second one makes the request ambiguous.
_SINGLE = ("From", "To", "Call-ID", "CSeq", "Content-Length")

_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]+"
_REQUEST_LINE = re.compile(rf"^({_TOKEN}) (\S+) (SIP/\d+\.\d+)$")
_STATUS_LINE = re.compile(r"^(SIP/\d+\.\d+) ([1-6]\d\d) ?(.*)$")
_HEADER_NAME = re.compile(rf"^{_TOKEN}$")
_WHITESPACE = re.compile(r"\s")
_CONTENT_LENGTH_LINE = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.I | re.M)

# The ``fail`` closure of parse_message: (status, reason) → the error to raise.
_FailFactory = Callable[[int | None, str], SipParseError]


class ParseLimits(msgspec.Struct, frozen=True):
    """Bounds applied while parsing; values come from ``SipConfig``, passed in by the caller."""

    message_bytes_max: int = 8192
    headers_max: int = 64


def canonical_name(name: str) -> str:
    """``v`` → ``Via``, ``call-id`` → ``Call-ID``; unknown names are kept as sent."""
    return _CANONICAL.get(name.lower(), name)


class SipRequest(msgspec.Struct, frozen=True):
    method: str
    uri: str
    request_uri: SipUri
    headers: Headers
    vias: tuple[Via, ...]
    from_addr: NameAddr
    to_addr: NameAddr
    call_id: str
    cseq: int
    body: bytes

    @property
    def head(self) -> RequestHead:
        return RequestHead(self.method, self.uri, self.headers, self.vias)

    @property
    def top_via(self) -> Via:
        return self.vias[0]

    @property
    def from_tag(self) -> str | None:
        return self.from_addr.tag

    @property
    def to_tag(self) -> str | None:
        return self.to_addr.tag

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def to_bytes(self) -> bytes:
        return _serialize(f"{self.method} {self.uri} {SIP_VERSION}", self.headers, self.body)


class SipResponse(msgspec.Struct, frozen=True):
    status: int
    reason: str
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def to_bytes(self) -> bytes:
        return _serialize(f"{SIP_VERSION} {self.status} {self.reason}", self.headers, self.body)


def _serialize(start_line: str, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    lines = [start_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("")
    lines.append("")
    return "\r\n".join(lines).encode("utf-8") + body


def parse_message(data: bytes, limits: ParseLimits) -> SipRequest | SipResponse:
    """Parse one whole message (a UDP datagram, or a frame cut by ``StreamFramer``)."""
    # RFC 3261 §7.5: empty lines before the start line are ignored (keep-alives send them).
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError(None, "empty message")
    oversize = len(data) > limits.message_bytes_max
    window = data[: limits.message_bytes_max] if oversize else data
    head_end, separator_bytes = _find_head_end(window)
    head_bytes = window if head_end < 0 else window[:head_end]
    body = b"" if head_end < 0 else data[head_end + separator_bytes :]

    newline = head_bytes.find(b"\n")
    first_line = head_bytes if newline < 0 else head_bytes[:newline]
    block = b"" if newline < 0 else head_bytes[newline + 1 :]
    start_line = _decode_start_line(first_line.rstrip(b"\r"))
    request_match = _REQUEST_LINE.match(start_line)
    if request_match is None:
        status_match = _STATUS_LINE.match(start_line)
        if status_match is None:
            raise SipParseError(None, f"not a SIP start line: {start_line[:60]!r}")
        return _parse_response(status_match, block, body, head_end, oversize, limits)
    method, uri, version = request_match.groups()
    headers, problem = _parse_header_block(block, limits)
    vias = _parse_vias(headers)
    head = RequestHead(method, uri, headers, vias)

    def fail(status: int | None, reason: str) -> SipParseError:
        if not vias or method == "ACK":
            # No Via: no one to answer. ACK: never answered (RFC 3261 §17.2.1).
            return SipParseError(None, reason)
        return SipParseError(status, reason, head)

    if oversize:
        raise fail(513, f"Message Too Large ({len(data)} bytes > {limits.message_bytes_max})")
    if problem is not None:
        raise fail(400, problem)
    if head_end < 0:
        raise fail(400, "Truncated Message (no empty line after the headers)")
    if not vias:
        reason = "Malformed Via" if header(headers, "Via") is not None else "Missing Via"
        raise SipParseError(None, reason)
    if version != SIP_VERSION:
        raise fail(505, "Version Not Supported")
    return _build_request(head, body, fail)


def _find_head_end(window: bytes) -> tuple[int, int]:
    crlf = window.find(b"\r\n\r\n")
    lf = window.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return lf, 2


def _decode_start_line(raw: bytes) -> str:
    if not raw.isascii():
        raise SipParseError(None, "start line is not ASCII")
    return raw.decode("ascii")


def _parse_header_lines(
    raw_lines: Sequence[bytes], limits: ParseLimits
) -> tuple[Headers, str | None]:
    """Unfold and split header lines. Returns what parsed plus the first problem seen, so a
    request with one bad header can still be answered 400 naming that header."""
    return _parse_header_block(b"\n".join(raw_lines), limits)


def _parse_header_block(block: bytes, limits: ParseLimits) -> tuple[Headers, str | None]:
    problem: str | None = None
    try:  # fast path: the whole block decodes; line by line only to name a bad line
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        good: list[str] = []
        for number, raw in enumerate(block.split(b"\n"), start=2):
            try:
                good.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                problem = problem or f"Header Line {number} Is Not UTF-8"
        text = "\n".join(good)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "")
    lines = text.split("\n")
    if "\n " in text or "\n\t" in text or text[:1] in (" ", "\t"):
        lines, fold_problem = _unfold(lines)
        problem = problem or fold_problem
    if len(lines) > limits.headers_max:
        lines = [line for line in lines if line]
        if len(lines) > limits.headers_max:
            problem = problem or f"Too Many Headers ({len(lines)} > {limits.headers_max})"
            lines = lines[: limits.headers_max]
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        canonical = _EXACT_NAMES.get(name)
        if canonical is None:
            if not colon or not _HEADER_NAME.match(name):
                problem = problem or f"Malformed Header Line {line[:40]!r}"
                continue
            canonical = canonical_name(name)
        elif not colon:
            problem = problem or f"Malformed Header Line {line[:40]!r}"
            continue
        value = value.strip()
        if canonical in _SPLIT_ON_COMMA:
            try:
                headers.extend((canonical, part) for part in split_top_level(value))
            except ValueError:
                problem = problem or f"Malformed {canonical}"
        else:
            headers.append((canonical, value))
    return tuple(headers), problem


def _unfold(lines: list[str]) -> tuple[list[str], str | None]:
    """Join continuation lines (leading space or tab) to the header they continue."""
    problem: str | None = None
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if unfolded:
                unfolded[-1] += " " + line.strip()
            else:
                problem = problem or "Continuation Line Before Any Header"
            continue
        if line:
            unfolded.append(line)
    return unfolded, problem


def _parse_vias(headers: Headers) -> tuple[Via, ...]:
    vias: list[Via] = []
    for value in header_values(headers, "Via"):
        try:
            vias.append(parse_via(value))
        except ValueError:
            break  # entries below a broken one cannot be trusted for routing either
    return tuple(vias)


def _build_request(
    head: RequestHead,
    body: bytes,
    fail: _FailFactory,
) -> SipRequest:
    # One pass over the headers for everything this function looks up.
    found: dict[str, list[str]] = {name: [] for name in _SINGLE}
    for key, value in head.headers:
        if key in found:
            found[key].append(value)
    for name in _SINGLE:
        if len(found[name]) > 1:
            raise fail(400, f"Duplicate {name} Header")
    for name in ("From", "To", "Call-ID", "CSeq"):
        if not found[name]:
            raise fail(400, f"Missing {name} Header")
    try:
        request_uri = parse_uri(head.uri)
    except ValueError as exc:
        if "unsupported URI scheme" in str(exc):
            raise fail(416, "Unsupported URI Scheme") from exc
        raise fail(400, "Malformed Request-URI") from exc
    addresses: dict[str, NameAddr] = {}
    for name in ("From", "To"):
        try:
            addresses[name] = parse_name_addr(found[name][0])
        except ValueError as exc:
            raise fail(400, f"Malformed {name} Header") from exc
    call_id = found["Call-ID"][0]
    if not call_id or _WHITESPACE.search(call_id):
        raise fail(400, "Malformed Call-ID Header")
    cseq_number, cseq_method = _parse_cseq(found["CSeq"][0], fail)
    if cseq_method != head.method:
        raise fail(400, f"CSeq Method {cseq_method[:20]} Does Not Match {head.method[:20]}")
    content_length = found["Content-Length"][0] if found["Content-Length"] else None
    body = _checked_body(content_length, body, fail)
    return SipRequest(
        method=head.method,
        uri=head.uri,
        request_uri=request_uri,
        headers=head.headers,
        vias=head.vias,
        from_addr=addresses["From"],
        to_addr=addresses["To"],
        call_id=call_id,
        cseq=cseq_number,
        body=body,
    )


def _parse_cseq(value: str, fail: _FailFactory) -> tuple[int, str]:
    number_text, _, method = value.strip().partition(" ")
    method = method.strip()
    if not number_text.isdigit() or int(number_text) >= 2**31 or not method:
        raise fail(400, "Malformed CSeq Header")
    return int(number_text), method


def _checked_body(content_length: str | None, body: bytes, fail: _FailFactory) -> bytes:
    """RFC 3261 §18.3: over UDP a shorter Content-Length truncates the body; a longer one means
    the datagram was cut, which is a 400."""
    if content_length is None:
        return body
    if not content_length.isdigit():
        raise fail(400, "Malformed Content-Length Header")
    length = int(content_length)
    if length > len(body):
        raise fail(400, f"Content-Length {length} Exceeds The Body ({len(body)} bytes)")
    return body[:length]


def _parse_response(
    match: re.Match[str],
    block: bytes,
    body: bytes,
    head_end: int,
    oversize: bool,
    limits: ParseLimits,
) -> SipResponse:
    """Responses are only parsed for tests and tools: a server never answers one, so every
    problem is a drop."""
    if oversize or head_end < 0:
        raise SipParseError(None, "truncated or oversized response")
    headers, problem = _parse_header_block(block, limits)
    if problem is not None:
        raise SipParseError(None, f"malformed response: {problem}")
    content_length = header(headers, "Content-Length")
    if content_length is not None and content_length.isdigit():
        body = body[: int(content_length)]
    return SipResponse(int(match.group(2)), match.group(3), headers, body)


def content_length_of_head(head: bytes) -> int | None:
    """Content-Length (full or compact name) of a raw header block, None when absent; -1 when
    present but not a number. Used by the TCP framer before the message is parsed."""
    match = _CONTENT_LENGTH_LINE.search(head)
    if match is None:
        return None
    value = match.group(1)
    return int(value) if value.isdigit() else -1


def build_response(
    head: RequestHead,
    status: int,
    reason: str,
    *,
    source: tuple[str, int],
    to_tag: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> SipResponse:
    """An answer to ``head`` per RFC 3261 §8.2.6: Via (top one stamped with received/rport),
    From, To (with our tag), Call-ID and CSeq copied; no body."""
    headers: list[tuple[str, str]] = []
    for index, via in enumerate(head.vias):
        stamped = via.stamped(*source) if index == 0 else via
        headers.append(("Via", stamped.to_text()))
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = header(head.headers, name)
        if value is None:
            continue
        if name == "To" and to_tag and status > 100 and _lacks_tag(value):
            value = f"{value};tag={to_tag}"
        headers.append((name, value))
    headers.extend(extra_headers)
    headers.append(("Content-Length", "0"))
    return SipResponse(status, reason, tuple(headers), b"")


def _lacks_tag(to_value: str) -> bool:
    """Whether the To header params (after the <URI>, or after the bare URI) hold no tag."""
    close = to_value.rfind(">")
    params = to_value[close + 1 :] if close >= 0 else to_value.partition(";")[2]
    return param(parse_params_lenient(params), "tag") is None


def parse_params_lenient(text: str) -> Params:
    try:
        return parse_params(text)
    except ValueError:
        return ()


def response_destination(via: Via, source: tuple[str, int]) -> tuple[str, int]:
    """Where a UDP response goes (RFC 3261 §18.2.2, RFC 3581 §4): the source port when rport
    was asked for, else the sent-by port, always at the address the packet came from."""
    if via.wants_rport:
        return source
    return source[0], via.port or DEFAULT_SIP_PORT


def salvage_head(data: bytes, limits: ParseLimits) -> RequestHead | None:
    """The addressable head of a request that will be refused anyway (a TCP frame that cannot
    be cut), or None when it is not a request with a usable Via."""
    head_end, _ = _find_head_end(data)
    head_bytes = data if head_end < 0 else data[:head_end]
    lines = head_bytes[: limits.message_bytes_max].split(b"\n")
    first = lines[0].rstrip(b"\r")
    if not first.isascii():
        return None
    match = _REQUEST_LINE.match(first.decode("ascii"))
    if match is None or match.group(1) == "ACK":
        return None
    headers, _ = _parse_header_lines(lines[1:], limits)
    vias = _parse_vias(headers)
    if not vias:
        return None
    return RequestHead(match.group(1), match.group(2), headers, vias)

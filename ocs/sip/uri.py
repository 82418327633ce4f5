"""SIP URIs, name-addr header values (From, To, Contact, P-Asserted-Identity) and E.164 numbers.

Only what a redirect server needs: the user part (the telephone number), the tag parameter,
and enough structure to reject what is not a URI. Pure functions; ValueError on bad input with
a message fit for a 400 reason phrase.
"""

from __future__ import annotations

import re

import msgspec

Params = tuple[tuple[str, str | None], ...]

_WHITESPACE = re.compile(r"\s")

URI_SCHEMES = frozenset({"sip", "sips", "tel"})

# RFC 3966 visual separators; stripped before a number is judged to be digits.
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")


def split_top_level(value: str, separator: str = ",") -> list[str]:
    """Split on ``separator`` outside double quotes and angle brackets (multi-value headers)."""
    if separator not in value and '"' not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            parts.append(value[start:index].strip())
            start = index + 1
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append(value[start:].strip())
    return [part for part in parts if part]


def parse_params(text: str) -> Params:
    """``;a=b;c`` → (("a", "b"), ("c", None)); names lowercased, values kept as sent."""
    params: list[tuple[str, str | None]] = []
    for piece in text.split(";"):
        piece = piece.strip()
        if not piece:
            continue
        name, sep, value = piece.partition("=")
        name = name.strip().lower()
        if not name:
            raise ValueError(f"empty parameter name in {text!r}")
        params.append((name, value.strip() if sep else None))
    return tuple(params)


def param(params: Params, name: str) -> str | None:
    """The value of parameter ``name`` ('' for a flag without value), None when absent."""
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def has_param(params: Params, name: str) -> bool:
    return any(key == name for key, _ in params)


class SipUri(msgspec.Struct, frozen=True):
    """``scheme:user@host:port;params`` (tel: URIs keep the number in ``user``, host empty)."""

    scheme: str
    user: str
    host: str
    port: int | None
    params: Params


def parse_uri(text: str) -> SipUri:
    """Parse a sip:, sips: or tel: URI; ValueError naming the problem otherwise."""
    scheme, sep, rest = text.strip().partition(":")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise ValueError(f"not a URI: {text[:80]!r}")
    if scheme not in URI_SCHEMES:
        raise ValueError(f"unsupported URI scheme {scheme[:20]!r}")
    rest, _, _headers = rest.partition("?")
    if scheme == "tel":
        number, _, param_text = rest.partition(";")
        if not number:
            raise ValueError("tel URI without a number")
        return SipUri(scheme, number, "", None, parse_params(param_text))
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        hostpart = rest
    user = userinfo.partition(":")[0]
    hostport, _, param_text = hostpart.partition(";")
    host, port = split_host_port(hostport)
    return SipUri(scheme, user, host, port, parse_params(param_text))


def split_host_port(text: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host, port or None)."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"unterminated IPv6 reference {text[:60]!r}")
        host, rest = text[1:close], text[close + 1 :]
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"junk after IPv6 reference {text[:60]!r}")
    else:
        host, sep, port_text_raw = text.partition(":")
        port_text = port_text_raw if sep else None
    if not host or _WHITESPACE.search(host):
        raise ValueError(f"bad host {text[:60]!r}")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"bad port {port_text[:10]!r}")
    return host, int(port_text)


class NameAddr(msgspec.Struct, frozen=True):
    """A From/To/Contact/P-Asserted-Identity value: optional display name, URI, header params."""

    display: str
    uri: str
    params: Params
    parsed_uri: SipUri

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")


def parse_name_addr(value: str) -> NameAddr:
    """``"Alice" <sip:a@b>;tag=1`` or ``sip:a@b;tag=1`` (params then belong to the header)."""
    value = value.strip()
    if not value:
        raise ValueError("empty address")
    open_at = _unquoted_index(value, "<")
    if open_at >= 0:
        close_at = value.find(">", open_at)
        if close_at < 0:
            raise ValueError("unterminated <URI>")
        display = value[:open_at].strip().strip('"')
        uri = value[open_at + 1 : close_at].strip()
        params = parse_params(value[close_at + 1 :])
    else:
        display = ""
        uri, _, param_text = value.partition(";")
        uri = uri.strip()
        params = parse_params(param_text)
    return NameAddr(display, uri, params, parse_uri(uri))


def _unquoted_index(text: str, char: str) -> int:
    quoted = False
    for index, current in enumerate(text):
        if current == '"':
            quoted = not quoted
        elif current == char and not quoted:
            return index
    return -1


def e164_digits(number: str, international_prefix: str = "00") -> str | None:
    """Normalise a telephone number to E.164 digits without '+', or None if it is not one.

    ``+49 (30) 123-4`` → ``49301234``; ``0049301234`` → ``49301234`` (the international
    prefix is a dialling habit, not part of the number). A national number (``030…``) stays as
    digits: only the tenant knows its country code, so the authorizer finishes that job.
    """
    text = number.strip().translate(_VISUAL_SEPARATORS)
    text = text.split(";", 1)[0]
    if text.startswith("+"):
        text = text[1:]
    elif international_prefix and text.startswith(international_prefix):
        text = text[len(international_prefix) :]
    if not text.isascii() or not text.isdigit() or not 1 <= len(text) <= 15:
        return None
    return text

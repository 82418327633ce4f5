"""Answers to requests: the B6 echo rules in one place, and the one error → answer function."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import FLAG_ERROR, FLAG_PROXIABLE, AvpCode
from diameter_apps.errors import DiameterError, FailedAvp
from diameter_apps.message import built_message

# Plain ints for lookups (an IntEnum member in a key tuple hashes slower).
_SESSION_ID = int(AvpCode.SESSION_ID)
_PROXY_INFO = int(AvpCode.PROXY_INFO)
_ORIGIN_HOST = int(AvpCode.ORIGIN_HOST)
_ORIGIN_REALM = int(AvpCode.ORIGIN_REALM)
_RESULT_CODE = int(AvpCode.RESULT_CODE)
_IDENTITIES_CACHED = 64
"""Our Origin-Host / Origin-Realm AVPs are the same in every answer: built once per name."""
_RESULT_CODES_CACHED = 64


@functools.lru_cache(maxsize=_IDENTITIES_CACHED)
def _identities(origin_host: str, origin_realm: str) -> tuple[Avp, Avp]:
    """Origin-Host and Origin-Realm: one cache lookup per answer for the pair."""
    return Avp.utf8(_ORIGIN_HOST, origin_host), Avp.utf8(_ORIGIN_REALM, origin_realm)


@functools.lru_cache(maxsize=_RESULT_CODES_CACHED)
def _result_code(result_code: int) -> Avp:
    return Avp.u32(_RESULT_CODE, result_code)


def answer_to(
    request: Message,
    *,
    origin_host: str,
    origin_realm: str,
    result_code: int | None,
    avps: Sequence[Avp] = (),
    error_bit: bool = False,
    error_message: str | None = None,
    failed_avps: Sequence[FailedAvp] = (),
) -> Message:
    """The answer skeleton for ``request`` (RFC 6733 §6.2, DESIGN B6).

    Echoes Hop-by-Hop, End-to-End, command code and application id; clears R, copies P; puts
    Session-Id first; then Result-Code (omitted when ``None``, e.g. an Experimental-Result is in
    ``avps``), Origin-Host, Origin-Realm, ``avps``, Error-Message, Failed-AVP and every
    Proxy-Info of the request in its original order.

    The Origin-Host, Origin-Realm and Result-Code AVPs are shared between answers (AVPs are
    values, see :class:`Avp`).
    """
    session = request.find(_SESSION_ID)
    body: list[Avp] = [] if session is None else [session]
    if result_code is not None:
        body.append(_result_code(result_code))
    body += _identities(origin_host, origin_realm)
    body += avps
    if error_message:
        body.append(Avp.utf8(AvpCode.ERROR_MESSAGE, error_message, m=False))
    if failed_avps:
        # Failed-AVP is Grouped (M bit, no vendor): its payload is the failed AVPs' wire forms.
        body.append(Avp.octets(AvpCode.FAILED_AVP, b"".join([a.encode() for a in failed_avps])))
    body += request.find_all(_PROXY_INFO)
    flags = (request.flags & FLAG_PROXIABLE) | (FLAG_ERROR if error_bit else 0)
    return built_message(
        request.command_code,
        request.application_id,
        flags,
        request.hop_by_hop,
        request.end_to_end,
        body,
    )


def answer_for_error(
    request: Message, error: DiameterError, *, origin_host: str, origin_realm: str
) -> Message:
    """The answer a request gets for ``error``: its Result-Code, E bit, Failed-AVP, message."""
    return answer_to(
        request,
        origin_host=origin_host,
        origin_realm=origin_realm,
        result_code=int(error.result_code),
        error_bit=error.e_bit,
        error_message=error.error_message,
        failed_avps=error.failed_avps,
    )

"""Server-initiated requests of a credit-control session (DESIGN C9): RAR (258) and ASR (274).

Build the request here, hand it to ``PeerConnection.send_request(message, now, timeout_s)`` on
the connection that owns the session (it fills in Hop-by-Hop and End-to-End), and read the
AnswerReceived's message with :func:`parse_server_answer`.

RAR (RFC 4006 §5.5, TS 32.299 §6.4.6): after a top-up for a subscriber on a final grant or cut
off, ask the client to re-authorise now (it sends a CCR-U). ASR (RFC 6733 §8.5.1): when an
operator blocks an account with live sessions.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from diameter_apps.codec import Avp, Message
from diameter_apps.codes import ApplicationId, AvpCode, CommandCode, ResultCode
from diameter_apps.credit_control.codes import CcAvp, ReAuthRequestType
from diameter_apps.errors import InvalidAvpValue, MissingAvp


class SessionPeer(msgspec.Struct, frozen=True, kw_only=True):
    """Who a server-initiated request goes to: the client's Origin-Host/Realm of the session,
    as the ledger recorded them from the CCR-I."""

    session_id: str
    client_host: str
    client_realm: str


def _request(
    command: CommandCode,
    peer: SessionPeer,
    origin_host: str,
    origin_realm: str,
    extra: Sequence[Avp],
    origin_state_id: int | None,
) -> Message:
    avps = [
        Avp.utf8(AvpCode.SESSION_ID, peer.session_id),
        Avp.utf8(AvpCode.ORIGIN_HOST, origin_host),
        Avp.utf8(AvpCode.ORIGIN_REALM, origin_realm),
        Avp.utf8(AvpCode.DESTINATION_REALM, peer.client_realm),
        Avp.utf8(AvpCode.DESTINATION_HOST, peer.client_host),
        Avp.u32(AvpCode.AUTH_APPLICATION_ID, ApplicationId.CREDIT_CONTROL),
        *extra,
    ]
    if origin_state_id is not None:
        avps.append(Avp.u32(AvpCode.ORIGIN_STATE_ID, origin_state_id))
    return Message.request(command, ApplicationId.CREDIT_CONTROL, avps, proxiable=True)


def build_rar(
    peer: SessionPeer,
    *,
    origin_host: str,
    origin_realm: str,
    rating_groups: Sequence[int] = (),
    origin_state_id: int | None = None,
) -> Message:
    """Re-Auth-Request, Re-Auth-Request-Type AUTHORIZE_ONLY; ``rating_groups`` restricts the
    re-authorisation to those rating groups (TS 32.299 has one Rating-Group; several are sent
    as repeated AVPs, which gateways that take one read as the first)."""
    extra = [Avp.i32(CcAvp.RE_AUTH_REQUEST_TYPE, ReAuthRequestType.AUTHORIZE_ONLY)]
    extra.extend(Avp.u32(CcAvp.RATING_GROUP, group) for group in rating_groups)
    return _request(CommandCode.RE_AUTH, peer, origin_host, origin_realm, extra, origin_state_id)


def build_asr(
    peer: SessionPeer,
    *,
    origin_host: str,
    origin_realm: str,
    origin_state_id: int | None = None,
) -> Message:
    """Abort-Session-Request: the client should end the session (it then sends a CCR-T)."""
    return _request(CommandCode.ABORT_SESSION, peer, origin_host, origin_realm, (), origin_state_id)


class ServerAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The RAA or ASA to one of our requests."""

    command_code: int
    session_id: str | None
    result_code: int

    @property
    def succeeded(self) -> bool:
        return self.result_code == ResultCode.SUCCESS

    @property
    def session_unknown(self) -> bool:
        """5002: the client no longer has the session; close it on our side (release)."""
        return self.result_code == ResultCode.UNKNOWN_SESSION_ID


def parse_server_answer(answer: Message) -> ServerAnswer:
    """Result-Code (or Experimental-Result-Code) of an RAA/ASA; a DiameterError if it has none
    or is not an answer to RAR/ASR (log it: answers are not answered)."""
    if answer.is_request or answer.command_code not in (
        CommandCode.RE_AUTH,
        CommandCode.ABORT_SESSION,
    ):
        raise InvalidAvpValue(
            f"command {answer.command_code} (request={answer.is_request}) is not an RAA/ASA"
        )
    result = answer.find(AvpCode.RESULT_CODE)
    if result is not None:
        code = result.as_u32()
    else:
        experimental = answer.find(AvpCode.EXPERIMENTAL_RESULT)
        inner = None if experimental is None else experimental.find(298)
        if inner is None:
            raise MissingAvp(
                "the answer has neither Result-Code nor Experimental-Result-Code",
                failed_avps=(Avp.u32(AvpCode.RESULT_CODE, 0),),
            )
        code = inner.as_u32()
    return ServerAnswer(
        command_code=answer.command_code, session_id=answer.session_id, result_code=code
    )

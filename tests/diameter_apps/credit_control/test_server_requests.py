"""RAR and ASR built for a session's client, and the RAA/ASA read back."""

from __future__ import annotations

import pytest
from diameter.message import Message as PdMessage
from diameter.message.commands.abort_session import AbortSessionAnswer
from diameter.message.commands.re_auth import ReAuthAnswer

from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import FLAG_PROXIABLE, FLAG_REQUEST, AvpCode, CommandCode, ResultCode
from diameter_apps.credit_control import (
    SessionPeer,
    build_asr,
    build_rar,
    parse_server_answer,
)
from diameter_apps.errors import DiameterError
from tests.diameter_apps.credit_control.ccr_builders import (
    OUR_HOST,
    OUR_REALM,
    PEER_HOST,
    PEER_REALM,
    SESSION,
)

PEER = SessionPeer(session_id=SESSION, client_host=PEER_HOST, client_realm=PEER_REALM)


def test_rar_reauthorises_the_session_for_some_rating_groups() -> None:
    rar = build_rar(
        PEER,
        origin_host=OUR_HOST,
        origin_realm=OUR_REALM,
        rating_groups=(10, 20),
        origin_state_id=5,
    )
    assert (rar.command_code, rar.application_id) == (CommandCode.RE_AUTH, 4)
    assert rar.flags == FLAG_REQUEST | FLAG_PROXIABLE
    decoded = PdMessage.from_bytes(rar.encode())
    assert decoded.header.is_request
    assert decoded.session_id == SESSION
    assert decoded.origin_host == OUR_HOST.encode()
    assert decoded.origin_realm == OUR_REALM.encode()
    assert decoded.destination_host == PEER_HOST.encode()
    assert decoded.destination_realm == PEER_REALM.encode()
    assert decoded.auth_application_id == 4
    assert decoded.re_auth_request_type == 0
    assert decoded.origin_state_id == 5
    assert [a.as_u32() for a in rar.find_all(432)] == [10, 20]
    assert rar.avps[0].code == AvpCode.SESSION_ID


def test_asr_asks_the_client_to_end_the_session() -> None:
    asr = build_asr(PEER, origin_host=OUR_HOST, origin_realm=OUR_REALM)
    decoded = PdMessage.from_bytes(asr.encode())
    assert decoded.header.command_code == CommandCode.ABORT_SESSION
    assert decoded.session_id == SESSION
    assert decoded.destination_host == PEER_HOST.encode()
    assert decoded.auth_application_id == 4
    assert asr.find(AvpCode.ORIGIN_STATE_ID) is None


@pytest.mark.parametrize("answer_class", [ReAuthAnswer, AbortSessionAnswer])
@pytest.mark.parametrize(
    ("result_code", "succeeded", "unknown"),
    [(2001, True, False), (5002, False, True), (3002, False, False)],
)
def test_raa_and_asa_result_codes(
    answer_class: type[ReAuthAnswer | AbortSessionAnswer],
    result_code: int,
    succeeded: bool,
    unknown: bool,
) -> None:
    pd_answer = answer_class()
    pd_answer.session_id = SESSION
    pd_answer.origin_host = PEER_HOST.encode()
    pd_answer.origin_realm = PEER_REALM.encode()
    pd_answer.result_code = result_code
    parsed = parse_server_answer(decode_message(pd_answer.as_bytes()))
    assert parsed.result_code == result_code
    assert parsed.session_id == SESSION
    assert parsed.succeeded is succeeded
    assert parsed.session_unknown is unknown


def test_experimental_result_is_read_when_there_is_no_result_code() -> None:
    answer = Message(
        CommandCode.RE_AUTH,
        4,
        avps=[
            Avp.utf8(AvpCode.SESSION_ID, SESSION),
            Avp.grouped(
                AvpCode.EXPERIMENTAL_RESULT,
                [Avp.u32(AvpCode.VENDOR_ID, 10415), Avp.u32(298, 5030)],
            ),
        ],
    )
    assert parse_server_answer(answer).result_code == 5030


def test_answer_without_any_result_is_an_error() -> None:
    answer = Message(CommandCode.ABORT_SESSION, 4, avps=[Avp.utf8(AvpCode.SESSION_ID, SESSION)])
    with pytest.raises(DiameterError) as caught:
        parse_server_answer(answer)
    assert caught.value.result_code == ResultCode.MISSING_AVP


def test_a_request_or_another_command_is_not_an_raa() -> None:
    with pytest.raises(DiameterError):
        parse_server_answer(build_rar(PEER, origin_host=OUR_HOST, origin_realm=OUR_REALM))
    with pytest.raises(DiameterError):
        parse_server_answer(Message(CommandCode.CREDIT_CONTROL, 4))

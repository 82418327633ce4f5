"""Server transactions and the endpoint with a fake clock: Timers G/H/I/J, retransmissions
answered from the stored response, the authorizer asked once per call."""

from __future__ import annotations

from ocs.sip.authorizer import AuthOutcome, CallAuthDecision
from ocs.sip.endpoint import Authorize, CheckHealth, Send, SipEndpoint
from ocs.sip.message import ParseLimits, SipRequest, SipResponse, parse_message
from ocs.sip.metrics import SipMetrics
from ocs.sip.redirect import RedirectPolicy
from ocs.sip.transaction import (
    Absorbed,
    AckTimeout,
    NewTransaction,
    Retransmit,
    ServerTransactions,
    StrayAck,
    TimerConfig,
    transaction_key,
)
from tests.sip.helpers import authorized, request_bytes

LIMITS = ParseLimits()
TIMERS = TimerConfig(t1_s=0.5, t2_s=4.0, t4_s=5.0)
PROXY = ("127.0.0.1", 5070)


def request(data: bytes) -> SipRequest:
    message = parse_message(data, LIMITS)
    assert isinstance(message, SipRequest)
    return message


def response(action: object) -> SipResponse:
    assert isinstance(action, Send)
    message = parse_message(action.data, LIMITS)
    assert isinstance(message, SipResponse)
    return message


def ack_for(invite: bytes, to_tag: str = "x") -> bytes:
    return (
        invite.replace(b"INVITE sip", b"ACK sip", 1)
        .replace(b"1 INVITE", b"1 ACK")
        .replace(
            b"To: <sip:+4930123456@ocs.test>",
            f"To: <sip:+4930123456@ocs.test>;tag={to_tag}".encode(),
        )
    )


def endpoint(
    transport: str = "udp", metrics: SipMetrics | None = None, **kwargs: object
) -> SipEndpoint:
    return SipEndpoint(
        transport=transport,
        limits=LIMITS,
        policy=RedirectPolicy(retry_after_s=7),
        metrics=metrics or SipMetrics(),
        timers=TIMERS,
        **kwargs,  # type: ignore[arg-type]
    )


def test_timer_g_doubles_to_t2_until_timer_h() -> None:
    table = ServerTransactions(reliable=False, timers=TIMERS, transactions_max=10)
    invite = request(request_bytes())
    matched = table.match(invite, PROXY, now=0.0)
    assert isinstance(matched, NewTransaction)
    assert table.complete(matched.key, b"final", now=0.0) == (b"final", PROXY)
    fired: list[float] = []
    timeout_at: float | None = None
    while (deadline := table.next_timer()) is not None:
        for output in table.handle_timer(deadline):
            if isinstance(output, Retransmit):
                assert output == Retransmit(b"final", PROXY)
                fired.append(deadline)
            else:
                assert isinstance(output, AckTimeout)
                timeout_at = deadline
    intervals = [round(b - a, 3) for a, b in zip([0.0, *fired], fired, strict=False)]
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert set(intervals[3:]) == {4.0}
    assert timeout_at == 32.0
    assert all(t < 32.0 for t in fired)
    assert len(table) == 0


def test_ack_stops_retransmissions_and_timer_i_ends_the_transaction() -> None:
    table = ServerTransactions(reliable=False, timers=TIMERS, transactions_max=10)
    invite_bytes = request_bytes()
    matched = table.match(request(invite_bytes), PROXY, now=0.0)
    assert isinstance(matched, NewTransaction)
    table.complete(matched.key, b"final", now=0.0)
    assert table.handle_timer(0.5) == [Retransmit(b"final", PROXY)]
    ack = table.match(request(ack_for(invite_bytes)), PROXY, now=0.7)
    assert ack == Absorbed(None, None, was_ack=True)
    assert table.next_timer() == 5.7  # Timer I = T4
    # A late INVITE retransmission in Confirmed is absorbed without an answer.
    assert table.match(request(invite_bytes), PROXY, now=1.0) == Absorbed(None, None)
    assert table.handle_timer(5.69) == []
    assert len(table) == 1
    assert table.handle_timer(5.7) == []
    assert len(table) == 0
    assert isinstance(table.match(request(ack_for(invite_bytes)), PROXY, now=6.0), StrayAck)


def test_reliable_transport_has_no_timer_g_and_zero_timer_i() -> None:
    table = ServerTransactions(reliable=True, timers=TIMERS, transactions_max=10)
    invite_bytes = request_bytes(transport="TCP")
    matched = table.match(request(invite_bytes), "conn", now=0.0)
    assert isinstance(matched, NewTransaction)
    table.complete(matched.key, b"final", now=0.0)
    assert table.next_timer() == 32.0  # only Timer H
    table.match(request(ack_for(invite_bytes)), "conn", now=0.1)
    assert len(table) == 0


def test_non_invite_transaction_lives_until_timer_j() -> None:
    table = ServerTransactions(reliable=False, timers=TIMERS, transactions_max=10)
    options = request(request_bytes("OPTIONS"))
    matched = table.match(options, PROXY, now=0.0)
    assert isinstance(matched, NewTransaction)
    table.complete(matched.key, b"200", now=1.0)
    assert table.match(options, PROXY, now=2.0) == Absorbed(b"200", PROXY)
    assert table.next_timer() == 33.0
    assert table.handle_timer(33.0) == []
    assert len(table) == 0


def test_matching_rules_rfc3261_and_rfc2543() -> None:
    invite = request(request_bytes())
    ack = request(ack_for(request_bytes()))
    cancel = request(request_bytes("CANCEL"))
    assert transaction_key(invite) == transaction_key(ack)
    assert transaction_key(invite) != transaction_key(cancel)
    other_sent_by = request(request_bytes(via_port=5071))
    assert transaction_key(invite) != transaction_key(other_sent_by)
    # RFC 2543 peer: no magic cookie, matched on Request-URI, From tag, Call-ID, CSeq, Via.
    old = request(request_bytes(branch="1234"))
    old_ack = request(ack_for(request_bytes(branch="1234")))
    assert transaction_key(old)[0] == "2543"
    assert transaction_key(old) == transaction_key(old_ack)
    assert transaction_key(old) != transaction_key(request(request_bytes(branch="1234", cseq=2)))


def test_retransmitted_invite_gets_stored_response_and_authorizer_asked_once() -> None:
    metrics = SipMetrics()
    ep = endpoint(metrics=metrics)
    invite = request_bytes(rport=True)
    actions = ep.receive(invite, ("127.0.0.1", 40000), now=0.0)
    assert len(actions) == 1 and isinstance(actions[0], Authorize)
    ticket = actions[0].ticket
    assert actions[0].request.caller == "491711234567"
    # Retransmission while the authorizer works: 100 Trying, no second Authorize.
    trying = ep.receive(invite, ("127.0.0.1", 40000), now=0.5)
    assert response(trying[0]).status == 100
    assert trying[0].destination == ("127.0.0.1", 40000)  # type: ignore[union-attr]
    assert response(ep.receive(invite, ("127.0.0.1", 40000), now=0.6)[0]).status == 100
    final = ep.authorized(ticket, authorized(90, "r-1"), now=0.8)
    first = response(final[0])
    assert first.status == 302
    again = ep.receive(invite, ("127.0.0.1", 40000), now=1.0)
    assert again == final  # byte-identical stored response, same To tag
    assert metrics.authorizer_calls == 1
    assert metrics.retransmissions_absorbed == 3
    assert metrics.invites[("t1", 302)] == 1
    assert metrics.latency_count == 1
    # Timer G retransmits until the ACK; the ACK quiets it.
    assert ep.handle_timer(1.3) == final
    assert metrics.responses_retransmitted == 1
    to_tag = first.header("To").split("tag=")[1]  # type: ignore[union-attr]
    assert ep.receive(ack_for(invite, to_tag), ("127.0.0.1", 40000), now=1.4) == []
    assert ep.handle_timer(3.0) == []
    assert ep.transactions == 1
    assert ep.handle_timer(6.4) == []
    assert ep.transactions == 0


def test_timer_h_counts_a_missing_ack() -> None:
    metrics = SipMetrics()
    ep = endpoint(metrics=metrics)
    actions = ep.receive(request_bytes(), PROXY, now=0.0)
    assert isinstance(actions[0], Authorize)
    ep.authorized(actions[0].ticket, CallAuthDecision(AuthOutcome.INSUFFICIENT_CREDIT), 0.0)
    sends = 0
    while (deadline := ep.next_timer()) is not None:
        sends += len(ep.handle_timer(deadline))
    assert metrics.ack_timeouts == 1
    assert sends == metrics.responses_retransmitted == 10  # 0.5, 1, 2, 4, then every 4 s to 32
    assert ep.transactions == 0


def test_authorizer_failure_and_health_check() -> None:
    ep = endpoint()
    actions = ep.receive(request_bytes(), PROXY, now=0.0)
    assert isinstance(actions[0], Authorize)
    answer = response(ep.authorization_failed(actions[0].ticket, now=0.1)[0])
    assert (answer.status, answer.header("Retry-After")) == (503, "7")
    assert answer.header("X-OCS-Result") == "5012"
    assert ep.authorized(actions[0].ticket, authorized(1, "late"), now=0.2) == []
    check = ep.receive(request_bytes("OPTIONS", call_id="o1"), PROXY, now=0.0)
    assert isinstance(check[0], CheckHealth)
    assert response(ep.health_checked(check[0].ticket, False, now=0.1)[0]).status == 503
    check = ep.receive(request_bytes("OPTIONS", branch="z9hG4bK-o2"), PROXY, now=0.0)
    assert isinstance(check[0], CheckHealth)
    ok = response(ep.health_checked(check[0].ticket, True, now=0.1)[0])
    assert (ok.status, ok.header("X-OCS-Result")) == (200, "2001")


def test_inflight_limit_sheds_with_503() -> None:
    metrics = SipMetrics()
    ep = endpoint(metrics=metrics, inflight_max=2)
    for n in range(2):
        actions = ep.receive(request_bytes(branch=f"z9hG4bK-{n}", call_id=f"c{n}"), PROXY, 0.0)
        assert isinstance(actions[0], Authorize)
    shed = response(ep.receive(request_bytes(branch="z9hG4bK-3", call_id="c3"), PROXY, 0.0)[0])
    assert (shed.status, shed.header("X-OCS-Result"), shed.header("Retry-After")) == (
        503,
        "3004",
        "7",
    )
    assert metrics.shed == 1
    assert metrics.authorizer_calls == 2


def test_transaction_table_limit_sheds_statelessly() -> None:
    ep = endpoint(transactions_max=1)
    assert isinstance(ep.receive(request_bytes(), PROXY, 0.0)[0], Authorize)
    other = request_bytes(branch="z9hG4bK-other", call_id="c2")
    assert response(ep.receive(other, PROXY, 0.0)[0]).status == 503
    assert ep.transactions == 1


def test_cancel_is_answered_and_the_invite_still_gets_its_decision() -> None:
    ep = endpoint()
    actions = ep.receive(request_bytes(), PROXY, 0.0)
    assert isinstance(actions[0], Authorize)
    cancel = response(ep.receive(request_bytes("CANCEL"), PROXY, 0.1)[0])
    assert (cancel.status, cancel.header("CSeq")) == (200, "1 CANCEL")
    assert response(ep.authorized(actions[0].ticket, authorized(5, "r"), 0.2)[0]).status == 302
    unknown = response(ep.receive(request_bytes("CANCEL", branch="z9hG4bK-none"), PROXY, 0.3)[0])
    assert (unknown.status, unknown.header("X-OCS-Result")) == (481, "5002")


def test_tcp_endpoint_answers_on_the_connection() -> None:
    ep = endpoint("tcp")
    connection = object()
    actions = ep.receive(request_bytes("REGISTER", transport="TCP"), PROXY, 0.0, connection)
    assert isinstance(actions[0], Send) and actions[0].destination is connection
    answer = response(actions[0])
    assert (answer.status, answer.header("Allow")) == (405, "INVITE, ACK, CANCEL, OPTIONS")
    assert ep.transactions == 0  # Timer J is zero on TCP


def test_in_dialog_invite_is_481_without_asking() -> None:
    metrics = SipMetrics()
    ep = endpoint(metrics=metrics)
    reinvite = request_bytes().replace(b"ocs.test>\r\n", b"ocs.test>;tag=dlg\r\n", 1)
    answer = response(ep.receive(reinvite, PROXY, 0.0)[0])
    assert (answer.status, answer.header("X-OCS-Result")) == (481, "5002")
    assert answer.header("To") == "<sip:+4930123456@ocs.test>;tag=dlg"
    assert metrics.authorizer_calls == 0

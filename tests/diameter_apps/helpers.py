"""Builders for requests a gateway would send, and a peer opened with a fake clock."""

from __future__ import annotations

import random
from collections.abc import Sequence

from diameter_apps.codec import Avp, Message, decode_message
from diameter_apps.codes import VENDOR_3GPP, AvpCode, CommandCode
from diameter_apps.duplicates import DuplicateCache
from diameter_apps.events import Event, RequestReceived
from diameter_apps.peer import PeerConnection, PeerSettings
from diameter_apps.router import Router
from diameter_apps.validation import Profile

OUR_HOST = "ocs.mvno.example"
OUR_REALM = "mvno.example"
PEER_HOST = "pgw1.mno.example"
PEER_REALM = "mno.example"


def settings(**overrides: object) -> PeerSettings:
    base: dict[str, object] = {
        "origin_host": OUR_HOST,
        "origin_realm": OUR_REALM,
        "host_ip_addresses": ("192.0.2.10",),
        "origin_state_id": 77,
        "watchdog_interval_s": 30.0,
        "watchdog_jitter_s": 2.0,
    }
    base.update(overrides)
    return PeerSettings(**base)  # type: ignore[arg-type]


def router() -> Router:
    r = Router()
    r.register(4, CommandCode.CREDIT_CONTROL, lambda event: _never(), vendor_id=VENDOR_3GPP)
    return r


def _never() -> Message:
    raise AssertionError("the peer never calls handlers")


def origin(host: str = PEER_HOST, realm: str = PEER_REALM) -> list[Avp]:
    return [Avp.utf8(AvpCode.ORIGIN_HOST, host), Avp.utf8(AvpCode.ORIGIN_REALM, realm)]


def cer(
    apps: Sequence[Avp] = (),
    *,
    host: str = PEER_HOST,
    hop_by_hop: int = 1,
    extra: Sequence[Avp] = (),
) -> Message:
    avps = [
        *origin(host),
        Avp.address(AvpCode.HOST_IP_ADDRESS, "198.51.100.7"),
        Avp.u32(AvpCode.VENDOR_ID, VENDOR_3GPP),
        Avp.utf8(AvpCode.PRODUCT_NAME, "pgw", m=False),
        *(apps or [Avp.u32(AvpCode.AUTH_APPLICATION_ID, 4)]),
        *extra,
    ]
    return Message.request(
        CommandCode.CAPABILITIES_EXCHANGE,
        0,
        avps,
        proxiable=False,
        hop_by_hop=hop_by_hop,
        end_to_end=hop_by_hop + 1000,
    )


def vsai(app: int = 4, vendor: int = VENDOR_3GPP) -> Avp:
    return Avp.grouped(
        AvpCode.VENDOR_SPECIFIC_APPLICATION_ID,
        [Avp.u32(AvpCode.VENDOR_ID, vendor), Avp.u32(AvpCode.AUTH_APPLICATION_ID, app)],
    )


def ccr(
    *,
    hop_by_hop: int = 10,
    end_to_end: int = 5000,
    session: str = "pgw1;1;1",
    request_number: int = 0,
    extra: Sequence[Avp] = (),
    replace: dict[int, Avp | None] | None = None,
    flags: int | None = None,
) -> Message:
    """A minimal valid CCR-I; ``replace`` swaps (or with None drops) AVPs by code."""
    avps = [
        Avp.utf8(AvpCode.SESSION_ID, session),
        *origin(),
        Avp.utf8(AvpCode.DESTINATION_REALM, OUR_REALM),
        Avp.u32(AvpCode.AUTH_APPLICATION_ID, 4),
        Avp.utf8(461, "32251@3gpp.org"),
        Avp.i32(416, 1),
        Avp.u32(415, request_number),
    ]
    for code, new in (replace or {}).items():
        avps = [a for a in avps if a.code != code]
        if new is not None:
            avps.append(new)
    avps.extend(extra)
    message = Message.request(
        CommandCode.CREDIT_CONTROL, 4, avps, hop_by_hop=hop_by_hop, end_to_end=end_to_end
    )
    if flags is not None:
        message.flags = flags
    return message


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def new_peer(
    clock: Clock,
    *,
    duplicates: DuplicateCache | None = None,
    profile: Profile = Profile.LENIENT,
    **overrides: object,
) -> PeerConnection:
    return PeerConnection(
        settings(profile=profile, **overrides),
        router(),
        duplicates if duplicates is not None else DuplicateCache(),
        clock.now,
        rng=random.Random(7),
    )


def open_peer(clock: Clock, **kwargs: object) -> PeerConnection:
    peer = new_peer(clock, **kwargs)  # type: ignore[arg-type]
    peer.receive_data(cer().encode(), clock.now)
    answers = sent(peer)
    assert answers[0].result_code == 2001
    return peer


def sent(peer: PeerConnection) -> list[Message]:
    """Decode everything the peer queued for the wire."""
    data = peer.data_to_send()
    messages = []
    while data:
        length = int.from_bytes(data[1:4], "big")
        messages.append(decode_message(data[:length]))
        data = data[length:]
    return messages


def only(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def request_events(events: list[Event]) -> list[RequestReceived]:
    return only(events, RequestReceived)


def failed_avp_children(answer: Message) -> list[Avp]:
    failed = answer.find(AvpCode.FAILED_AVP)
    assert failed is not None, "answer has no Failed-AVP"
    return failed.children()

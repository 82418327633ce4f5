"""The peer against messages built by python-diameter, an independent implementation."""

from __future__ import annotations

from diameter.message import Message as PdMessage
from diameter.message.avp.grouped import VendorSpecificApplicationId
from diameter.message.commands import (
    CapabilitiesExchangeAnswer,
    CapabilitiesExchangeRequest,
    DeviceWatchdogAnswer,
    DeviceWatchdogRequest,
    DisconnectPeerAnswer,
    DisconnectPeerRequest,
)

from diameter_apps.codes import VENDOR_3GPP
from diameter_apps.events import PeerClosed, PeerOpened

from .helpers import OUR_HOST, Clock, new_peer, only


def _cer(vendor_specific: bool) -> bytes:
    cer = CapabilitiesExchangeRequest()
    cer.header.hop_by_hop_identifier = 1
    cer.header.end_to_end_identifier = 2
    cer.origin_host = b"client.mno.example"
    cer.origin_realm = b"mno.example"
    cer.host_ip_address = ["127.0.0.1"]
    cer.vendor_id = VENDOR_3GPP
    cer.product_name = "python-diameter"
    if vendor_specific:
        cer.vendor_specific_application_id = [
            VendorSpecificApplicationId(vendor_id=VENDOR_3GPP, auth_application_id=4)
        ]
    else:
        cer.auth_application_id = [4]
    return bytes(cer.as_bytes())


def test_python_diameter_cer_dwr_dpr_session() -> None:
    clock = Clock()
    peer = new_peer(clock)
    events = peer.receive_data(_cer(vendor_specific=False), clock.now)
    assert only(events, PeerOpened)
    cea = PdMessage.from_bytes(peer.data_to_send())
    assert isinstance(cea, CapabilitiesExchangeAnswer)
    assert cea.result_code == 2001 and cea.origin_host == OUR_HOST.encode()
    assert cea.auth_application_id == [4]
    assert VENDOR_3GPP in cea.supported_vendor_id

    dwr = DeviceWatchdogRequest()
    dwr.header.hop_by_hop_identifier = 3
    dwr.origin_host = b"client.mno.example"
    dwr.origin_realm = b"mno.example"
    peer.receive_data(bytes(dwr.as_bytes()), clock.now)
    dwa = PdMessage.from_bytes(peer.data_to_send())
    assert isinstance(dwa, DeviceWatchdogAnswer)
    assert dwa.result_code == 2001 and dwa.header.hop_by_hop_identifier == 3
    assert dwa.origin_state_id == 77

    dpr = DisconnectPeerRequest()
    dpr.header.hop_by_hop_identifier = 4
    dpr.origin_host = b"client.mno.example"
    dpr.origin_realm = b"mno.example"
    dpr.disconnect_cause = 0
    events = peer.receive_data(bytes(dpr.as_bytes()), clock.now)
    dpa = PdMessage.from_bytes(peer.data_to_send())
    assert isinstance(dpa, DisconnectPeerAnswer) and dpa.result_code == 2001
    assert only(events, PeerClosed) and peer.should_close


def test_python_diameter_vendor_specific_cer_is_mirrored() -> None:
    clock = Clock()
    peer = new_peer(clock)
    peer.receive_data(_cer(vendor_specific=True), clock.now)
    cea = PdMessage.from_bytes(peer.data_to_send())
    assert cea.result_code == 2001
    assert not getattr(cea, "auth_application_id", None)
    (vsai,) = cea.vendor_specific_application_id
    assert (vsai.vendor_id, vsai.auth_application_id) == (VENDOR_3GPP, 4)

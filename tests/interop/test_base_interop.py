"""python-diameter as an independent client against a real ``ocs serve`` process, and tshark
as an independent decoder of what went over the wire."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from diameter.message import Message
from diameter.message.avp import Avp
from diameter.message.avp.grouped import VendorSpecificApplicationId
from diameter.message.commands import (
    CapabilitiesExchangeRequest,
    DeviceWatchdogRequest,
    DisconnectPeerRequest,
)
from diameter.node import Node
from diameter.node.application import SimpleThreadingApplication

from ocs.embedded_redis import EmbeddedRedis
from tests.support.pd_client import PdClient
from tests.support.server_process import ServerProcess
from tests.support.tshark import Capture

pytestmark = pytest.mark.interop

CREDIT_CONTROL = 4
VENDOR_3GPP = 10415


@pytest.fixture(scope="module")
def server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("ocs"), redis_url=redis_server.url)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()


def _cer(
    *, vendor_specific: bool = False, app: int = CREDIT_CONTROL
) -> CapabilitiesExchangeRequest:
    cer = CapabilitiesExchangeRequest()
    cer.origin_host = b"pgw.test.local"
    cer.origin_realm = b"test.local"
    cer.host_ip_address = ["127.0.0.1"]
    cer.vendor_id = VENDOR_3GPP
    cer.product_name = "interop-pgw"
    cer.origin_state_id = 7
    if vendor_specific:
        cer.vendor_specific_application_id = [
            VendorSpecificApplicationId(vendor_id=VENDOR_3GPP, auth_application_id=app)
        ]
    else:
        cer.auth_application_id = [app]
    return cer


def _avp_values(message: Message, code: int) -> list[object]:
    return [avp.value for avp in message.avps if avp.code == code]


def _open(server: ServerProcess, **kwargs: bool) -> tuple[PdClient, Message]:
    client = PdClient(server.connect_diameter())
    return client, client.request(_cer(**kwargs))


def test_cer_plain_auth_application_id(server: ServerProcess) -> None:
    client, cea = _open(server)
    assert cea.result_code == 2001
    assert cea.origin_host == server.origin_host.encode()
    assert cea.origin_realm == server.origin_realm.encode()
    assert cea.auth_application_id == [CREDIT_CONTROL]
    assert not cea.vendor_specific_application_id
    assert VENDOR_3GPP in cea.supported_vendor_id
    assert cea.host_ip_address and cea.product_name and cea.origin_state_id is not None
    client.close()


def test_cer_vendor_specific_form_is_mirrored(server: ServerProcess) -> None:
    client, cea = _open(server, vendor_specific=True)
    assert cea.result_code == 2001
    vsai = cea.vendor_specific_application_id
    assert len(vsai) == 1
    assert (vsai[0].vendor_id, vsai[0].auth_application_id) == (VENDOR_3GPP, CREDIT_CONTROL)
    assert not cea.auth_application_id  # mirrored: the peer used the grouped form only
    client.close()


def test_no_common_application_is_refused(server: ServerProcess) -> None:
    client, cea = _open(server, app=16777238)  # Gx only
    assert cea.result_code == 5010
    assert client.closed_by_peer()
    client.close()


def test_dwr_and_dpr(server: ServerProcess) -> None:
    client, cea = _open(server)
    assert cea.result_code == 2001
    dwr = DeviceWatchdogRequest()
    dwr.origin_host, dwr.origin_realm, dwr.origin_state_id = b"pgw.test.local", b"test.local", 7
    dwa = client.request(dwr)
    assert dwa.result_code == 2001
    assert dwa.origin_state_id is not None
    assert dwa.header.hop_by_hop_identifier == dwr.header.hop_by_hop_identifier
    assert dwa.header.end_to_end_identifier == dwr.header.end_to_end_identifier
    dpr = DisconnectPeerRequest()
    dpr.origin_host, dpr.origin_realm, dpr.disconnect_cause = b"pgw.test.local", b"test.local", 0
    dpa = client.request(dpr)
    assert dpa.result_code == 2001
    assert client.closed_by_peer()
    client.close()


def test_unknown_command_answered_3001_with_e_bit(server: ServerProcess) -> None:
    client, _ = _open(server)
    request = Message()
    request.header.command_code = 999
    request.header.application_id = CREDIT_CONTROL
    request.header.is_request = True
    request.header.is_proxyable = True
    request.append_avp(Avp.new(263, value="pgw.test.local;1;2"))  # Session-Id
    request.append_avp(Avp.new(264, value=b"pgw.test.local"))
    request.append_avp(Avp.new(296, value=b"test.local"))
    request.append_avp(Avp.new(283, value=b"test.local"))
    client.send(request)
    answer = client.recv()
    assert answer.header.command_code == 999
    assert not answer.header.is_request
    assert answer.header.is_error
    assert answer.header.is_proxyable
    assert _avp_values(answer, 268) == [3001]
    assert answer.avps[0].code == 263  # Session-Id first
    client.close()


def test_python_diameter_node_lifecycle(server: ServerProcess) -> None:
    """A whole python-diameter Node: connects, exchanges CER/CEA, DWR/DWA on idle, DPR at stop."""
    node = Node("node.test.local", "test.local")
    node.wakeup_interval = 1
    node.idle_timeout = 1
    peer = node.add_peer(
        f"aaa://{server.origin_host}:{server.diameter_port};transport=tcp",
        server.origin_realm,
        ip_addresses=["127.0.0.1"],
        is_persistent=True,
    )
    peer.idle_timeout = 1
    app = SimpleThreadingApplication(CREDIT_CONTROL, is_auth_application=True)
    node.add_application(app, [peer])
    node.start()
    try:
        app.wait_for_ready(timeout=10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if _dwa_seen(node):
                break
            time.sleep(0.2)
        assert _dwa_seen(node), "no DWA observed from the server"
    finally:
        stopper = threading.Thread(target=node.stop, kwargs={"wait_timeout": 10})
        stopper.start()
        stopper.join(20)
    assert not stopper.is_alive()
    assert not node.connections


def _dwa_seen(node: Node) -> bool:
    return any(peer.counters.dwa > 0 for peer in list(node.peers.values()))


def test_wire_decodes_cleanly_in_tshark(server: ServerProcess, tmp_path: Path) -> None:
    with Capture(tmp_path / "base.pcap", server.diameter_port) as capture:
        client, _ = _open(server, vendor_specific=True)
        dwr = DeviceWatchdogRequest()
        dwr.origin_host, dwr.origin_realm = b"pgw.test.local", b"test.local"
        client.request(dwr)
        dpr = DisconnectPeerRequest()
        dpr.origin_host, dpr.origin_realm, dpr.disconnect_cause = (
            b"pgw.test.local",
            b"test.local",
            0,
        )
        client.request(dpr)
        client.closed_by_peer()
        client.close()
    assert len(capture.decode("diameter")) >= 6
    assert capture.decode("diameter.Result-Code == 2001")
    assert capture.problems() == []


def test_shutdown_sends_dpr_to_connected_peers(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    import signal

    from diameter.message.commands import DisconnectPeerAnswer

    proc = ServerProcess(tmp_path / "ocs", redis_url=redis_server.url)
    proc.start()
    try:
        client, cea = _open(proc)
        assert cea.result_code == 2001
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        dpr = client.recv()
        assert (dpr.header.command_code, dpr.header.is_request) == (282, True)
        assert dpr.disconnect_cause == 0  # REBOOTING
        dpa = DisconnectPeerAnswer()
        dpa.header.hop_by_hop_identifier = dpr.header.hop_by_hop_identifier
        dpa.header.end_to_end_identifier = dpr.header.end_to_end_identifier
        dpa.result_code, dpa.origin_host, dpa.origin_realm = 2001, b"pgw.test.local", b"test.local"
        client.send(dpa)
        assert client.closed_by_peer()
        client.close()
        assert proc.stop() == 0
        assert "diameter_peer_down" in proc.log_path.read_text()  # the whole log, not its tail
    finally:
        proc.stop()  # a server that did not stop on SIGTERM is killed, never left running

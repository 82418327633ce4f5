"""Diameter over TLS/TCP against a real ``ocs serve``: freeDiameter as a TLS client completing
CER/CEA, python's ssl for the refusals (wrong CA, expired certificate, a certificate name not
in ``allowed_peers``, a CER Origin-Host the certificate does not name), and certificate reload
without a restart. Certificates are made here, by the test (``tests/support/certs.py``)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from diameter.message.commands import CapabilitiesExchangeRequest

from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from tests.support.certs import Authority, Issued, authority
from tests.support.pd_client import PdClient
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.interop

OCS_HOST = "ocs.test.local"
ALLOWED = ("pgw.test.local", "fd.test.local")
FREEDIAMETERD = shutil.which("freeDiameterd")
WAIT_S = 30.0  # the machine is loaded: conditions are polled up to this long


@dataclass
class TlsServer:
    proc: ServerProcess
    port: int
    ca: Authority
    server_cert: Issued
    certs: Path

    def connect(self, client: Issued | None, ca: Path | None = None) -> ssl.SSLSocket:
        context = ssl.create_default_context(cafile=str(ca or self.ca.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return context.wrap_socket(raw, server_hostname=OCS_HOST)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not seen within {WAIT_S:g} s: {what}")


def log_lines(server: TlsServer, event: str) -> list[str]:
    return [line for line in server.proc.log_text().splitlines() if event in line]


@pytest.fixture(scope="module")
def tls_server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsServer]:
    certs = tmp_path_factory.mktemp("certs")
    ca = authority(certs)
    server_cert = ca.issue(certs, OCS_HOST, dns=(OCS_HOST,), file_stem="server")
    port = free_tcp_port()
    config = certs / "ocs.toml"
    config.write_text(
        f"[diameter]\nallowed_peers = {list(ALLOWED)!r}\n".replace("'", '"')
        + f"tls_listen_port = {port}\n"
        f'tls_cert_file = "{server_cert.cert}"\n'
        f'tls_key_file = "{server_cert.key}"\n'
        f'tls_ca_file = "{ca.cert}"\n'
    )
    proc = ServerProcess(
        tmp_path_factory.mktemp("ocs"),
        redis_url=redis_server.url,
        origin_host=OCS_HOST,
        extra_args=["--config", str(config)],
    )
    proc.start()
    yield TlsServer(proc, port, ca, server_cert, certs)
    assert proc.stop() == 0, proc.log_text()


def cer(origin_host: str) -> CapabilitiesExchangeRequest:
    request = CapabilitiesExchangeRequest()
    request.origin_host = origin_host.encode()
    request.origin_realm = b"test.local"
    request.host_ip_address = ["127.0.0.1"]
    request.vendor_id = 10415
    request.product_name = "tls-test"
    request.auth_application_id = [4]
    return request


def test_allowed_certificate_completes_cer_cea_and_binds_origin_host(
    tls_server: TlsServer,
) -> None:
    pgw = tls_server.ca.issue(tls_server.certs, "pgw.test.local", dns=("pgw.test.local",))
    with tls_server.connect(pgw) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        client = PdClient(sock)  # type: ignore[arg-type]
        cea = client.request(cer("pgw.test.local"))
        assert cea.result_code == 2001 and cea.origin_host == OCS_HOST.encode()
    wait_for(lambda: bool(log_lines(tls_server, "diameter_tls_accepted")), "tls accepted")
    # fd.test.local is an allowed peer, but this certificate does not speak for it: 3010.
    with tls_server.connect(pgw) as sock:
        cea = PdClient(sock).request(cer("fd.test.local"))  # type: ignore[arg-type]
        assert cea.result_code == 3010


def _refused_with(tls_server: TlsServer, client: Issued | None, reason: str) -> None:
    before = len(log_lines(tls_server, "diameter_tls_refused"))
    try:
        with tls_server.connect(client) as sock:
            # TLS 1.3: the client's handshake ends before the server has checked its
            # certificate; the refusal shows on the first read.
            sock.settimeout(10)
            PdClient(sock).request(cer("pgw.test.local"))  # type: ignore[arg-type]
    except (ssl.SSLError, ConnectionError, OSError):
        pass
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("the server answered a CER on a refused connection")

    def logged() -> bool:
        lines = log_lines(tls_server, "diameter_tls_refused")
        return len(lines) > before and reason in lines[-1]

    wait_for(logged, f"diameter_tls_refused with {reason!r}")


def test_certificate_of_another_ca_is_refused(tls_server: TlsServer) -> None:
    other = authority(tls_server.certs / "other", "Other CA")
    stranger = other.issue(
        tls_server.certs, "pgw.test.local", dns=("pgw.test.local",), file_stem="stranger"
    )
    _refused_with(tls_server, stranger, "client certificate rejected: unable to get local issuer")


def test_expired_certificate_is_refused(tls_server: TlsServer) -> None:
    expired = tls_server.ca.issue(
        tls_server.certs,
        "pgw.test.local",
        dns=("pgw.test.local",),
        days=(-30, -1),
        file_stem="expired",
    )
    _refused_with(tls_server, expired, "client certificate rejected: certificate has expired")


def test_certificate_name_not_in_allowed_peers_is_refused(tls_server: TlsServer) -> None:
    rogue = tls_server.ca.issue(tls_server.certs, "rogue.test.local", dns=("rogue.test.local",))
    _refused_with(tls_server, rogue, "certificate names are not in allowed_peers")
    line = log_lines(tls_server, "diameter_tls_refused")[-1]
    assert "rogue.test.local" in line


def test_no_client_certificate_is_refused(tls_server: TlsServer) -> None:
    _refused_with(tls_server, None, "no client certificate (tls_ca_file requires one)")


def test_certificates_reload_without_restart(tls_server: TlsServer) -> None:
    renewed = tls_server.ca.issue(tls_server.certs, OCS_HOST, dns=(OCS_HOST,), file_stem="renewed")
    pgw = tls_server.ca.issue(tls_server.certs, "pgw.test.local", dns=("pgw.test.local",))
    with tls_server.connect(pgw) as sock:
        before = sock.getpeercert()
    # Replace the files the server was started with (as certbot / an operator would).
    os.replace(renewed.key, tls_server.server_cert.key)
    os.replace(renewed.cert, tls_server.server_cert.cert)
    with tls_server.connect(pgw) as sock:
        after = sock.getpeercert()
        assert PdClient(sock).request(cer("pgw.test.local")).result_code == 2001  # type: ignore[arg-type]
    assert before is not None and after is not None
    assert after["serialNumber"] != before["serialNumber"]
    assert log_lines(tls_server, "diameter_tls_reloaded")


# `make test` installs it (test-sysdeps); in CI a missing one fails rather than hides.
@pytest.mark.skipif(
    FREEDIAMETERD is None and not os.environ.get("CI"),
    reason="freeDiameterd (Debian package freediameterd) not installed",
)
def test_freediameter_connects_over_tls(tls_server: TlsServer, tmp_path: Path) -> None:
    assert FREEDIAMETERD is not None, "freeDiameterd missing (run `make test-sysdeps`)"
    fd = tls_server.ca.issue(tmp_path, "fd.test.local", dns=("fd.test.local",))
    fd_log = tmp_path / "fd.log"
    conf = tmp_path / "freeDiameter.conf"
    # freeDiameter always listens on two ports of its own; another process may take a port
    # between free_tcp_port() and its bind, and then it gives up: start it again on new ports.
    for _attempt in range(3):
        conf.write_text(freediameter_conf(fd, tls_server.ca.cert, tls_server.port))
        proc = subprocess.Popen(
            [str(FREEDIAMETERD), "-c", str(conf)],
            stdout=fd_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        if not _bind_failed(proc, fd_log):
            break
        proc.kill()
        proc.wait()
    try:
        wait_for(
            lambda: any(
                "fd.test.local" in line for line in log_lines(tls_server, "diameter_peer_up")
            ),
            "freeDiameter's CER over TLS (diameter_peer_up origin_host=fd.test.local)",
        )
        accepted = log_lines(tls_server, "diameter_tls_accepted")
        assert any("fd.test.local" in line for line in accepted)
        wait_for(lambda: "'STATE_OPEN'" in fd_log.read_text(), "freeDiameter's peer STATE_OPEN")
        assert "TLS method ... : Separate port" in fd_log.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _bind_failed(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether freeDiameter could not bind its own ports (it says so at once, or starts)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Address already in use" in text:
            return True
        if "Origin-State-Id" in text and ("STATE_" in text or proc.poll() is None):
            # It printed its configuration; a bind error would follow at once: look once more.
            time.sleep(0.5)
            return "Address already in use" in log.read_text(errors="replace")
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def freediameter_conf(cert: Issued, ca: Path, ocs_tls_port: int) -> str:
    """The freeDiameter 1.2 client configuration of the docs (docs/integration-ims-tls.md)."""
    return f"""\
Identity = "fd.test.local";
Realm = "test.local";
# freeDiameter always listens; loopback ports nobody else uses.
Port = {free_tcp_port()};
SecPort = {free_tcp_port()};
ListenOn = "127.0.0.1";
No_SCTP;
No_IPv6;
TLS_Cred = "{cert.cert}", "{cert.key}";
TLS_CA = "{ca}";
# TLS from the first byte (RFC 6733 section 13), to the OCS's tls_listen_port.
ConnectPeer = "{OCS_HOST}" {{ ConnectTo = "127.0.0.1"; Port = {ocs_tls_port}; No_SCTP; }};
"""

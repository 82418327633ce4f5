"""Diameter over TLS/TCP (RFC 6733 §13): the TLS listener beside plain TCP.

The sans-IO core never sees TLS. A connection to ``[diameter] tls_listen_port`` is accepted by
:class:`TlsListener` and its handshake run by ``loop.connect_accepted_socket`` with the server
context (so a failed handshake is ours to log, with its reason, instead of asyncio's
debug-only message); then a :class:`TlsDiameterConnection`, an ordinary
:class:`~ocs.diameter_server.DiameterConnection` whose peer settings are narrowed to the
certificate's identity, serves it:

- ``tls_ca_file`` set: a client certificate is required and verified against that CA (chain,
  validity period). Its names (subjectAltName DNS entries, else the subject CN) are the peer's
  identity. With ``allowed_peers`` set, one of the names must be listed or the connection is
  closed at once. The CER Origin-Host must then be one of the certificate's names (else the
  CEA is 3010 DIAMETER_UNKNOWN_PEER): a certificate speaks only for the hosts it names.
- no CA: the channel is encrypted and the peer is identified by its CER alone, as on TCP.

Certificates are reloaded without a restart: each new TLS connection checks the files'
inode, modification time and size (three ``stat`` calls, connections are rare) and builds a new
context when they changed. A reload that fails (a half-written key) keeps the previous context
and logs why; connections already open keep the context they were accepted with.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from typing import Any, cast

import msgspec
import structlog

from ocs.config import DiameterConfig
from ocs.diameter_server import DiameterConnection, DiameterServer

Log = structlog.typing.FilteringBoundLogger

TLS_HANDSHAKE_TIMEOUT_S = 10.0
TLS_HANDSHAKES_MAX = 256  # handshakes in progress at once; more connections are closed


class TlsConfigError(Exception):
    """The certificate, key or CA files cannot be used (message names the file)."""


def build_context(config: DiameterConfig) -> ssl.SSLContext:
    """A server context from the configured files (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"tls_cert_file {config.tls_cert_file} / tls_key_file {config.tls_key_file}: {exc}"
        ) from exc
    if config.tls_ca_file:
        try:
            context.load_verify_locations(cafile=config.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(f"tls_ca_file {config.tls_ca_file}: {exc}") from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def certificate_names(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """The DNS names a verified certificate is for: subjectAltName DNS, else the subject CN."""
    if not peercert:
        return ()
    names = tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
    if names:
        return names
    return tuple(
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    )


class TlsContextSource:
    """The current server context, rebuilt when the certificate files change."""

    def __init__(self, config: DiameterConfig, log: Log) -> None:
        self.config = config
        self.log = log
        self._files = tuple(
            f for f in (config.tls_cert_file, config.tls_key_file, config.tls_ca_file) if f
        )
        self._stamp = self._stat()
        self.context = build_context(config)
        self.reloads = 0

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in self._files:
            try:
                info = os.stat(path)
            except OSError:
                stamps.append((-1, -1, -1))
            else:
                # The inode too: a file renamed over the old one (os.replace) is a change.
                stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def current(self) -> ssl.SSLContext:
        """The context for a new connection (reloaded first when a file changed)."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self.context = build_context(self.config)
            except TlsConfigError as exc:
                self.log.error("diameter_tls_reload_failed", error=str(exc), kept="previous")
            else:
                self.reloads += 1
                self.log.info("diameter_tls_reloaded", files=list(self._files))
        return self.context


def listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A non-blocking listening TCP socket (IPv4 or IPv6 by the host's form)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class TlsListener:
    """Accepts TCP connections on the TLS port and runs each handshake as its own task.

    Each accepted socket goes through ``loop.connect_accepted_socket(..., ssl=...)``, which
    returns only once the handshake is done and raises its reason when it fails: the refusal
    is logged here, with that reason (asyncio itself logs failed handshakes only in debug).
    """

    def __init__(self, server: DiameterServer, source: TlsContextSource, sock: socket.socket):
        self.server = server
        self.source = source
        self.sock = sock
        self.handshakes: set[asyncio.Task[None]] = set()
        self._accepting: asyncio.Task[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        return str(name[0]), int(name[1])

    def start(self) -> None:
        self._accepting = self.server.loop.create_task(self._accept_forever())

    async def close(self) -> None:
        """Stop accepting and abandon handshakes in progress (open peers stay up)."""
        tasks = [t for t in (self._accepting, *self.handshakes) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.sock.close()

    async def _accept_forever(self) -> None:
        loop = self.server.loop
        while True:
            try:
                conn, address = await loop.sock_accept(self.sock)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                self.server.log.warning("diameter_tls_accept_failed", error=str(exc))
                await asyncio.sleep(0.1)
                continue
            if len(self.handshakes) >= TLS_HANDSHAKES_MAX:
                self.server.metrics.tls_refused_total.inc()
                self.server.log.warning(
                    "diameter_tls_refused",
                    peer=f"{address[0]}:{address[1]}",
                    reason=f"{TLS_HANDSHAKES_MAX} TLS handshakes already in progress",
                )
                conn.close()
                continue
            task = loop.create_task(self._handshake(conn, f"{address[0]}:{address[1]}"))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    async def _handshake(self, conn: socket.socket, remote: str) -> None:
        server = self.server
        try:
            await server.loop.connect_accepted_socket(
                lambda: TlsDiameterConnection(server),
                conn,
                ssl=self.source.current(),
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
            )
        except (TimeoutError, OSError) as exc:  # SSLError and ConnectionError are OSErrors
            server.metrics.tls_refused_total.inc()
            server.log.warning("diameter_tls_refused", peer=remote, reason=_reason(exc))
            conn.close()


class TlsDiameterConnection(DiameterConnection):
    """A Diameter connection whose TLS handshake is done: check the certificate, bind the
    peer's identity to it, then serve it like any connection."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.server
        config = server.config
        peername = transport.get_extra_info("peername")
        remote = f"{peername[0]}:{peername[1]}" if peername else "?"
        names = certificate_names(transport.get_extra_info("peercert"))
        settings = server.settings
        if config.tls_ca_file:
            allowed = frozenset(config.allowed_peers)
            if allowed and not allowed.intersection(names):
                server.metrics.tls_refused_total.inc()
                server.log.warning(
                    "diameter_tls_refused",
                    peer=remote,
                    reason="certificate names are not in allowed_peers",
                    certificate_names=list(names),
                )
                cast(asyncio.Transport, transport).abort()
                return
            # The certificate speaks for the hosts it names (and that are allowed): a CER with
            # another Origin-Host is answered 3010 by the peer state machine.
            bound = frozenset(names) & allowed if allowed else frozenset(names)
            settings = msgspec.structs.replace(settings, allowed_peer_hosts=bound)
        ssl_object = transport.get_extra_info("ssl_object")
        server.log.info(
            "diameter_tls_accepted",
            peer=remote,
            version=ssl_object.version() if ssl_object is not None else None,
            certificate_names=list(names),
        )
        self.start(transport, settings)


def _reason(exc: BaseException) -> str:
    """A one-line reason for a refused handshake (the SSL library's own words when it has)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"client certificate rejected: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no client certificate (tls_ca_file requires one)"
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"no TLS handshake within {TLS_HANDSHAKE_TIMEOUT_S:g} s"
    return f"connection lost during the TLS handshake: {exc!r}"

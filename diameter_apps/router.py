"""Application router: (application id, command code) → handler, registered explicitly.

The peer never calls handlers: it checks with :meth:`Router.check` that a request is routable
(3007 for an unknown application, 3001 for an unknown command) and yields ``RequestReceived``;
the adapter then calls ``router.handler_for(app, cmd)`` and runs it. The router is also the
source of the application ids advertised in the CEA.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from diameter_apps.codec import Message
from diameter_apps.codes import ApplicationId, AvpCode
from diameter_apps.errors import (
    ApplicationUnsupported,
    CommandUnsupported,
    LoopDetected,
    RealmNotServed,
    UnableToDeliver,
)
from diameter_apps.events import RequestReceived

# Plain ints: a lookup key holding an IntEnum member hashes through Enum.__hash__ (3x slower).
_DESTINATION_REALM = int(AvpCode.DESTINATION_REALM)
_DESTINATION_HOST = int(AvpCode.DESTINATION_HOST)
_ROUTE_RECORD = int(AvpCode.ROUTE_RECORD)

Handler = Callable[[RequestReceived], Message | Awaitable[Message]]
"""A handler gets the request event and returns its answer (or an awaitable of it)."""


class Router:
    __slots__ = ("_handlers", "_vendor_of_application")

    def __init__(self) -> None:
        self._handlers: dict[tuple[int, int], Handler] = {}
        self._vendor_of_application: dict[int, int] = {}

    def register(
        self, application_id: int, command_code: int, handler: Handler, *, vendor_id: int = 0
    ) -> None:
        """Route requests of ``command_code`` in ``application_id`` to ``handler``.

        ``vendor_id`` names the vendor the application is advertised with when the peer uses
        Vendor-Specific-Application-Id (10415 for 3GPP Gy/Ro on application 4).
        """
        key = (application_id, command_code)
        if key in self._handlers:
            raise ValueError(
                f"a handler for application {application_id} command "
                f"{command_code} is already registered"
            )
        if application_id == ApplicationId.DIAMETER_COMMON_MESSAGES:
            raise ValueError("application 0 commands are handled by the peer itself")
        self._handlers[key] = handler
        self._vendor_of_application.setdefault(application_id, vendor_id)

    @property
    def application_ids(self) -> frozenset[int]:
        return frozenset(self._vendor_of_application)

    def check(self, application_id: int, command_code: int) -> None:
        """Raise 3007 for an application we do not serve, 3001 for an unknown command."""
        if (application_id, command_code) in self._handlers:
            return
        if application_id not in self._vendor_of_application and application_id != 0:
            raise ApplicationUnsupported(f"application {application_id} is not supported")
        raise CommandUnsupported(
            f"command {command_code} is not supported in application {application_id}"
        )

    def handler_for(self, application_id: int, command_code: int) -> Handler:
        self.check(application_id, command_code)
        return self._handlers[(application_id, command_code)]


def check_destination(request: Message, our_host: str, our_realm: str) -> None:
    """B10 and loop detection: we are the final destination or the request is refused (3003
    for another realm, 3002 for another host, 3005 when our identity is in Route-Record).
    ``our_host`` and ``our_realm`` are lower case."""
    realm = request.find(_DESTINATION_REALM)
    # Our own realm byte for byte (the usual request) needs no decoding: a fast path only.
    if (
        realm is not None
        and realm.data != our_realm.encode()
        and realm.as_str().lower() != our_realm
    ):
        raise RealmNotServed(
            f"Destination-Realm {realm.as_str()!r} is not served here", request=request
        )
    host = request.find(_DESTINATION_HOST)
    if host is not None and host.as_str().lower() != our_host:
        raise UnableToDeliver(
            f"Destination-Host {host.as_str()!r} is not this server", request=request
        )
    for record in request.find_all(_ROUTE_RECORD):
        if record.as_str().lower() == our_host:
            raise LoopDetected("our own identity is in Route-Record", request=request)

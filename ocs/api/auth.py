"""Who is calling and what they may reach: the first of the three isolation layers.

A request presents its key as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (the
dashboards keep it in an HttpOnly session cookie). Every route names the least role it needs
(``opt={"role": ...}``) and whether it is a portfolio route; the guard compares that with the
key: a tenant key reaches only ``/api/v1/tenants/{one of its tenants}/...``, a portfolio key only
``/api/v1/portfolio/...``. The handlers then run on the tenant's own Redis user and store role,
the two layers below this one.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from ocs.api.keys import ROLE_RANK, ApiKey, Role
from ocs.api.state import ApiState

SESSION_COOKIE = "ocs_session"
KEY_HEADER = "x-api-key"


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if connection.headers.get(KEY_HEADER):
        return connection.headers[KEY_HEADER].strip()
    return connection.cookies.get(SESSION_COOKIE) or None


async def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    """The caller's usable key (cached on the request), or 401."""
    cached = connection.scope.get("state", {}).get("api_key")
    if isinstance(cached, ApiKey):
        return cached
    key = presented_key(connection)
    if not key:
        raise NotAuthorizedException("an API key is required (Authorization: Bearer <key>)")
    state: ApiState = connection.app.state.api
    found = await state.key(key)
    if found is None:
        raise NotAuthorizedException("the API key is unknown, revoked or expired")
    connection.scope.setdefault("state", {})["api_key"] = found
    return found


async def scope_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Refuse (403) a key whose scope or role does not cover the route."""
    need: Role = handler.opt.get("role", "admin")
    key = await principal(connection)
    if handler.opt.get("portfolio"):
        if key.scope != "portfolio":
            raise PermissionDeniedException(
                f"key {key.key_id} is scoped to tenant(s) {', '.join(key.tenants)}: the "
                "portfolio resources need a portfolio key"
            )
    else:
        tenant = connection.path_params.get("tenant")
        if key.scope != "tenant" or tenant not in key.tenants:
            raise PermissionDeniedException(
                f"key {key.key_id} is not scoped to tenant {tenant!r}"
                + (" (a portfolio key reads aggregates only)" if key.scope == "portfolio" else "")
            )
    if ROLE_RANK[key.role] < ROLE_RANK[need]:
        raise PermissionDeniedException(
            f"key {key.key_id} has role {key.role!r}; this needs {need!r}"
        )

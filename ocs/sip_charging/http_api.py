"""HTTP accounting interface for SIP calls, on the server's HTTP listener.

``POST /v1/calls/{reservation}/end``    body ``{"duration_s": int, "cause": str}``
``POST /v1/calls/{reservation}/reauth`` body ``{"used_s": int}``

Both take a proxy key (``Authorization: Bearer <key>`` or ``X-API-Key``; ``ocs apikey create
--tenant T --role proxy``) whose tenants include the reservation's (``ocs.proxy_keys``).

Statuses: 200 done (or the stored answer of a repeat), 401 no key or an unknown, revoked or
expired one, 403 the key is not for the reservation's tenant, 400 malformed reservation id or
body not JSON, 422 JSON of the wrong shape or values, 404 no such call, 409 contradicts what
is recorded (another end already charged, used_s going backwards), 503 ledger unavailable
(retry: every request is idempotent). Bodies are JSON; errors are ``{"error": ..., "code": ...}``.
"""

from __future__ import annotations

from typing import Any

from balance.errors import LedgerUnavailable
from ocs.http_server import HttpError, HttpRequest, HttpResponse, HttpRouter
from ocs.key_format import presented_key
from ocs.proxy_keys import ProxyKeyVerifier
from ocs.sip_charging.accounting import (
    CAUSE_BYTES_MAX,
    CallAccounting,
    CallConflict,
    CallNotFound,
)
from ocs.sip_charging.reservation import InvalidReservation, parse_reservation
from tariffs.errors import RatingError

RETRY_AFTER_S = "5"


def _error(status: int, code: str, message: str, **extra: Any) -> HttpResponse:
    response = HttpResponse.json(status, {"error": message, "code": code, **extra})
    if status == 503:
        return HttpResponse(
            response.status, response.body, response.content_type, (("retry-after", RETRY_AFTER_S),)
        )
    return response


def _body(request: HttpRequest, fields: dict[str, type]) -> dict[str, Any] | HttpResponse:
    """The JSON object body with exactly ``fields`` (cause optional) or an error response."""
    try:
        data = request.json()
    except HttpError as exc:
        return _error(400, "bad_json", exc.message)
    if not isinstance(data, dict):
        return _error(422, "bad_body", "the body must be a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        return _error(422, "bad_body", f"unknown field(s): {', '.join(unknown)}")
    for name, kind in fields.items():
        value = data.get(name)
        if value is None:
            if name == "cause":
                data[name] = ""
                continue
            return _error(422, "bad_body", f"{name} is required")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return _error(422, "bad_body", f"{name} must be an integer number of seconds")
        if kind is str:
            if not isinstance(value, str):
                return _error(422, "bad_body", f"{name} must be a string")
            if len(value.encode()) > CAUSE_BYTES_MAX or not value.isprintable():
                return _error(422, "bad_body", f"{name}: at most {CAUSE_BYTES_MAX} printable bytes")
    return data


class CallApi:
    def __init__(self, accounting: CallAccounting, keys: ProxyKeyVerifier) -> None:
        self.accounting = accounting
        self.keys = keys

    async def _refused(self, request: HttpRequest) -> HttpResponse | None:
        """401 / 403 unless the request carries a proxy key of the reservation's tenant (a
        malformed reservation id is left to the 400 below)."""
        key_text = presented_key(request.headers)
        if key_text is None:
            return _error(401, "no_key", "a proxy key is required (Authorization: Bearer <key>)")
        key = await self.keys.verify(key_text)
        if key is None:
            return _error(401, "bad_key", "the key is unknown, revoked or expired")
        try:
            tenant = parse_reservation(request.params["reservation"]).tenant
        except InvalidReservation:
            return None
        if tenant not in key.tenants:
            return _error(
                403, "wrong_tenant", f"key {key.key_id} is not a proxy key of this call's tenant"
            )
        return None

    def register(self, router: HttpRouter) -> None:
        router.add("POST", "/v1/calls/{reservation}/end", self.end)
        router.add("POST", "/v1/calls/{reservation}/reauth", self.reauth)

    async def end(self, request: HttpRequest) -> HttpResponse:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        data = _body(request, {"duration_s": int, "cause": str})
        if isinstance(data, HttpResponse):
            return data
        return await self._run(
            self.accounting.end(request.params["reservation"], data["duration_s"], data["cause"])
        )

    async def reauth(self, request: HttpRequest) -> HttpResponse:
        refused = await self._refused(request)
        if refused is not None:
            return refused
        data = _body(request, {"used_s": int})
        if isinstance(data, HttpResponse):
            return data
        return await self._run(
            self.accounting.reauth(request.params["reservation"], data["used_s"])
        )

    @staticmethod
    async def _run(operation: Any) -> HttpResponse:
        try:
            answer = await operation
        except InvalidReservation as exc:
            return _error(400, "bad_reservation", str(exc))
        except ValueError as exc:
            return _error(422, "bad_body", str(exc))
        except CallNotFound as exc:
            return _error(404, "unknown_reservation", str(exc))
        except CallConflict as exc:
            return _error(409, "conflict", str(exc), call=exc.answer)
        except LedgerUnavailable as exc:
            return _error(503, "ledger_unavailable", str(exc))
        except RatingError as exc:
            return _error(503, "rating_failed", str(exc))
        return HttpResponse.json(200, answer)

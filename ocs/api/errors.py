"""HTTP answers for the API's refusals: 404 naming what is unknown, 422 naming the field."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from balance.errors import (
    AccountExists,
    InvalidRequest,
    LedgerError,
    LedgerUnavailable,
    OperationConflict,
    UnknownAccount,
)
from ocs.api.models import ErrorBody
from usage.store import StoreUnavailable


class FieldError(Exception):
    """422: ``field`` of the request is wrong; the message says how."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(Exception):
    """404 naming the unknown tenant or subscriber."""


class Conflict(Exception):
    """409: the request clashes with the current state."""


class PaymentRequired(Exception):
    """402: the balance cannot pay what was asked (an add-on's fee); nothing changed."""


def _body(status: int, detail: str, field: str | None = None) -> Response[Any]:
    content: dict[str, Any] = {"status_code": status, "detail": detail}
    if field is not None:
        content["field"] = field
    return Response(content, status_code=status)


def field_error(_: Request[Any, Any, Any], exc: FieldError) -> Response[Any]:
    return _body(422, str(exc), exc.field)


def not_found(_: Request[Any, Any, Any], exc: NotFound) -> Response[Any]:
    return _body(404, str(exc))


def conflict(_: Request[Any, Any, Any], exc: Conflict) -> Response[Any]:
    return _body(409, str(exc))


def payment_required(_: Request[Any, Any, Any], exc: PaymentRequired) -> Response[Any]:
    return _body(402, str(exc))


def validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar's body/parameter validation (400 by default) as 422 naming the field."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    field = None
    for item in extra:
        if isinstance(item, dict) and item.get("key"):
            field = str(item["key"])
            break
    detail = exc.detail
    if extra:
        detail += ": " + "; ".join(
            str(item.get("message", item)) if isinstance(item, dict) else str(item)
            for item in extra
        )
    return _body(422, detail, field)


def ledger_error(_: Request[Any, Any, Any], exc: LedgerError) -> Response[Any]:
    if isinstance(exc, UnknownAccount):
        return _body(404, str(exc) or "unknown subscriber")
    if isinstance(exc, AccountExists | OperationConflict):
        return _body(409, str(exc) or type(exc).__name__)
    if isinstance(exc, InvalidRequest):
        return _body(422, str(exc))
    if isinstance(exc, LedgerUnavailable):
        return _body(503, f"the ledger is unavailable: {exc}")
    return _body(409, f"{type(exc).__name__}: {exc}")


def store_unavailable(_: Request[Any, Any, Any], exc: StoreUnavailable) -> Response[Any]:
    return _body(503, f"the usage store is unavailable: {exc}")


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _body(exc.status_code, exc.detail)


HANDLERS: dict[Any, Any] = {
    FieldError: field_error,
    NotFound: not_found,
    Conflict: conflict,
    PaymentRequired: payment_required,
    ValidationException: validation,
    LedgerError: ledger_error,
    StoreUnavailable: store_unavailable,
    HTTPException: http_error,
}


# Every route documents the refusals it may answer, so a client (and schemathesis) can rely on
# the spec for them too.
ERRORS: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=ErrorBody, description=text)
    for status, text in (
        (401, "no key, or an unknown, revoked or expired key"),
        (403, "the key's scope or role does not cover this route"),
        (404, "unknown tenant or subscriber (named)"),
        (409, "conflicts with the current state (exists already, idempotency key reused)"),
        (422, "a field of the request is wrong (named in `field`)"),
        (503, "the ledger or the usage store is unavailable"),
    )
}

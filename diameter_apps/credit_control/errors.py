"""Errors the credit-control layer adds to :mod:`diameter_apps.errors` (same wire-code pattern)."""

from __future__ import annotations

from diameter_apps.codes import ResultCode
from diameter_apps.errors import DiameterError


class AvpNotAllowed(DiameterError):
    """An AVP that must not be in this request (5008), e.g. Accounting-Record-Type in a CCR
    under the strict profile."""

    result_code = ResultCode.AVP_NOT_ALLOWED


class UndefinedTransition(Exception):
    """An undefined (state, event) pair reached the session transition table: a bug, not input."""

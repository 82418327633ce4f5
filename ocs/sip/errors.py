"""Errors of the SIP layer, each carrying the SIP answer it calls for.

Like h11's ``error_status_hint``: the code that finds the problem knows best which status to
answer, so the error says it, and one place (``ocs.sip.endpoint``) turns errors into answers.
``status is None`` means the message cannot be answered at all (no Via to send a response to,
binary garbage, a response rather than a request) and is dropped.
"""

from __future__ import annotations

from ocs.sip.head import RequestHead


class SipParseError(ValueError):
    """A message we could not accept.

    ``head`` is what could be salvaged of the request (start line and headers) when that is
    enough to address an answer; it is None whenever ``status`` is None.
    """

    def __init__(self, status: int | None, reason: str, head: RequestHead | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.head = head if status is not None else None

    @property
    def answerable(self) -> bool:
        return self.status is not None and self.head is not None

    def __repr__(self) -> str:
        return f"SipParseError({self.status!r}, {self.reason!r})"


class SipFramingError(ValueError):
    """A TCP byte stream that cannot be split into messages any more: the connection must close.

    ``status`` is the answer to send first when one can still be addressed (513 for an
    oversized message), else None.
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

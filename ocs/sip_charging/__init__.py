"""SIP credit check charged through the ledger and the catalog (DESIGN.md §6).

``authorizer.LedgerAuthorizer``: the ``ocs.sip.CreditAuthorizer`` that reserves per INVITE.
``accounting.CallAccounting``: call end, mid-call re-authorisation and auto-end, exactly once.
``http_api.CallApi``: ``POST /v1/calls/{reservation}/end`` and ``/reauth`` on the HTTP listener.
``sweeper.AutoEndSweeper``: commits calls whose end event never came.
``service.SipCharging``: all of it plus the SIP listener, for ``OcsApp``.
``reservation`` names calls in the ledger; ``store`` keeps call records in Redis.
"""

from ocs.sip_charging.accounting import CallAccounting, CallConflict, CallNotFound
from ocs.sip_charging.authorizer import LedgerAuthorizer
from ocs.sip_charging.policy import CallPolicy
from ocs.sip_charging.reservation import CallRef, InvalidReservation, parse_reservation

__all__ = [
    "CallAccounting",
    "CallConflict",
    "CallNotFound",
    "CallPolicy",
    "CallRef",
    "InvalidReservation",
    "LedgerAuthorizer",
    "parse_reservation",
]

"""Priced legs of reported usage: which rate applies to which units.

Time usage is placed on the clock exactly: the seconds a report carries end at the report's
time, and where a tariff boundary (time band, new rate card) falls inside them they are split
at the boundary, each side priced by its own rate. Volume and event usage cannot be placed on
the clock: a grant that crosses a boundary announces it (Tariff-Time-Change, or under the
tenant's ``validity_cap`` fallback ends before it: ``tariffs.tariff_switch``), and the client
reports the units of each side in their own Used-Service-Unit marked by Tariff-Change-Usage;
each side is priced at its own tariff (``balance.legs.marked_legs``). Unmarked volume is priced
at the instant just before the report (``now - 1``).
"""

from __future__ import annotations

from collections.abc import Sequence

from balance.legs import RateAt, append_leg, marked_legs, time_legs
from balance.records import UsedLeg
from diameter_apps.credit_control import (
    CreditControlRequest,
    ServiceRequest,
    UsedUnits,
)
from diameter_apps.credit_control.codes import RoleOfNode
from ocs.charging.units import SECOND, used_amount
from tariffs.rating import Rater, Rating, UsageRequest

TERMINATING_ROLE = int(RoleOfNode.TERMINATING_ROLE)
RATING_MEMO_MAX = 4096  # remembered ratings; the memo starts afresh when full
_NO_CHANGE = 2**63  # "until" of a rating no tariff boundary ever ends

RatingKey = tuple[str, str, str, int | None, int | None, str | None, str | None, bool]
"""Everything a rating depends on but the time: tenant, plan, Service-Context-Id,
Rating-Group, Service-Identifier, visited network, called number, terminating leg."""


class RatingMemo:
    """Ratings already made, each with the span of time it holds for: from the instant it was
    asked for to the next tariff change (``Rating.next_change_at``: a new time band or rate
    card). The CCR-Us of a session ask the same questions as its CCR-I: they reuse its ratings
    instead of rating again. Tied to one catalog's rater: a catalog reload starts it afresh."""

    __slots__ = ("_entries", "_rater")

    def __init__(self) -> None:
        self._rater: Rater | None = None
        self._entries: dict[RatingKey, tuple[Rating, int, int]] = {}

    def entries_for(self, rater: Rater) -> dict[RatingKey, tuple[Rating, int, int]]:
        if rater is not self._rater:
            self._rater = rater
            self._entries = {}
        return self._entries


def used_legs(
    used: Sequence[UsedUnits], unit: str, now: int, rate_at: RateAt, window_s: int = 0
) -> list[UsedLeg]:
    """Every Used-Service-Unit of one MSCC as priced ledger legs (see the module docstring).
    ``window_s``: how far back the grant these units were used under can have been made."""
    if not used:
        return []
    marked = False
    for report in used:
        if report.tariff_change_usage is not None:
            marked = True
            break
    if marked:
        # Split by the client at the Tariff-Time-Change its grant announced: each side at its
        # own tariff, whatever the unit (the client knows on which side each unit fell).
        reports = [
            (
                used_amount(u.units, unit),
                None if u.tariff_change_usage is None else int(u.tariff_change_usage),
            )
            for u in used
        ]
        return marked_legs(reports, now, window_s, rate_at)
    if unit == SECOND:
        return time_legs(sum(used_amount(u.units, unit) for u in used), now, rate_at)
    # No report is marked: every unit at the instant just before the report, one leg.
    units = 0
    for report in used:
        units += used_amount(report.units, unit)
    legs: list[UsedLeg] = []
    append_leg(legs, rate_at(now - 1), units)
    return legs


class RequestRater:
    """Rates the services of one CCR. The request-wide rating keys are read once: the zone
    from the visited network (PS-Information, else IMS-Information), the destination from IMS
    Called-Party-Address (else Requested-Party-Address) or, for SMS, the recipient address;
    whether it is a terminating leg from IMS Role-Of-Node (the tenant's mt rows price it)."""

    __slots__ = ("called", "ccr", "memo", "plan", "rater", "tenant", "terminating", "visited")

    def __init__(
        self,
        rater: Rater,
        ccr: CreditControlRequest,
        tenant: str,
        plan: str = "",
        memo: RatingMemo | None = None,
    ) -> None:
        self.rater = rater
        self.memo = memo.entries_for(rater) if memo is not None else None
        self.ccr = ccr
        self.tenant = tenant
        self.plan = plan
        visited = ccr.ps.visited_mcc_mnc if ccr.ps is not None else None
        if visited is None and ccr.ims is not None:
            # IMS voice: the P-CSCF's P-Access-Network-Info cell, else P-Visited-Network-ID.
            visited = ccr.ims.visited_mcc_mnc
        self.visited = visited
        called = ccr.sms.recipient_address if ccr.sms is not None else None
        if ccr.ims is not None:
            called = ccr.ims.called_party_address or ccr.ims.requested_party_address or called
        self.called = called
        self.terminating = ccr.ims is not None and ccr.ims.role_of_node == TERMINATING_ROLE

    def rate(self, service: ServiceRequest, at: int, called: str | None = None) -> Rating:
        """The rating of ``service`` as if used at ``at`` (RatingError when it has none), to
        the request's destination or to ``called`` (one recipient of several)."""
        if self.memo is None:
            return self._rate(service, at, called)
        return self.rate_keyed(self.key_for(service, called), service, at)

    def key_for(self, service: ServiceRequest, called: str | None = None) -> RatingKey:
        """What the rating of ``service`` depends on but the time (the memo's key): built
        once per service of a request, for all the instants it is rated at."""
        return (
            self.tenant,
            self.plan,
            self.ccr.service_context_id,
            service.rating_group,
            service.service_identifier,
            self.visited,
            self.called if called is None else called,
            self.terminating,
        )

    def rate_keyed(self, key: RatingKey, service: ServiceRequest, at: int) -> Rating:
        """``rate`` with the key from ``key_for`` (the memo's entry, or a new rating)."""
        memo = self.memo
        if memo is None:
            return self._rate(service, at, key[6])
        found = memo.get(key)
        if found is not None and found[1] <= at < found[2]:
            return found[0]
        rating = self._rate(service, at, key[6])
        if len(memo) >= RATING_MEMO_MAX:
            memo.clear()
        change = rating.next_change_at
        memo[key] = (rating, at, _NO_CHANGE if change is None else change)
        return rating

    def _rate(self, service: ServiceRequest, at: int, called: str | None) -> Rating:
        return self.rater.rate(
            UsageRequest(
                tenant=self.tenant,
                now=at,
                service_context_id=self.ccr.service_context_id,
                rating_group=service.rating_group,
                service_identifier=service.service_identifier,
                visited_plmn=self.visited,
                called_number=self.called if called is None else called,
                terminating=self.terminating,
                plan=self.plan,
            )
        )

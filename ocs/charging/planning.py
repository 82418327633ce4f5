"""The pre-ledger half of a session CCR: every MSCC rated (through the rating memo), its
reported usage priced into legs, its grant sized and timed against tariff boundaries, and the
ledger items built. Pure apart from the memo; time is passed in.
"""

from __future__ import annotations

from functools import partial

import msgspec

from balance.records import OnExhaust, RatingGroupRequest
from diameter_apps.credit_control import CreditControlRequest, ServiceRequest
from ocs.charging.units import requested_amount
from ocs.charging.usage import RatingMemo, RequestRater, used_legs
from ocs.config import ChargingConfig
from tariffs.errors import RatingError
from tariffs.model import Tenant
from tariffs.quota import size_grant_for
from tariffs.rating import Rater, Rating
from tariffs.subscribers import SubscriberRef
from tariffs.tariff_switch import timing_for

# A request without MSCC and without rating group is charged under this ledger rating group.
SINGLE_SERVICE_RATING_GROUP = 0
# The ledger's on-exhaust policy by the catalog's name for it (a dict lookup: calling the Enum
# class by value runs Python-level code per MSCC).
_ON_EXHAUST = {member.value: member for member in OnExhaust}


class Slot(msgspec.Struct):
    """One MSCC of the request: its rating (or rating failure) and its ledger item."""

    service: ServiceRequest
    rating: Rating | None = None
    failure: int | None = None
    item: int = -1
    requested_units: int = 0
    validity_s: int = 0
    tariff_time_change_s: int | None = None


def plan_request(
    ccr: CreditControlRequest,
    ref: SubscriberRef,
    tenant: Tenant,
    rater: Rater,
    ratings: RatingMemo,
    config: ChargingConfig,
    now: int,
    terminating: bool,
    grant: bool,
) -> tuple[list[Slot], list[RatingGroupRequest]]:
    """Rate every MSCC and build the ledger items (pure apart from the rating memo)."""
    request_rater = RequestRater(rater, ccr, ref.tenant, ref.plan, ratings)
    key_for, rate = request_rater.key_for, request_rater.rate_keyed
    slots: list[Slot] = []
    items: list[RatingGroupRequest] = []
    grace = config.tcc_grace_s
    validity_s = config.validity_time_s
    window_s = validity_s + grace  # how old a reported grant can be
    # The grant's validity when no tariff boundary falls inside it (grant_timing's floor).
    plain_validity_s = max(validity_s, 1)
    for service in ccr.services:
        key = key_for(service)  # once per service, for every instant it is rated at
        try:
            rating = rate(key, service, now)
            legs = (
                used_legs(service.used, rating.unit, now, partial(rate, key, service), window_s)
                if service.used
                else []
            )
            change = rating.next_change_at
            if change is None or change <= now or change >= now + plain_validity_s:
                # No boundary inside the grant (timing_for's own first case, without its
                # calls: the common case of every request).
                validity, ttc = plain_validity_s, None
            else:
                timing = timing_for(
                    tenant.tariff_switch,
                    ccr.session_id,
                    rating,
                    now,
                    validity_s,
                    partial(rate, key, service),
                )
                validity, ttc = timing.validity_s, timing.tariff_time_change_s
        except RatingError as exc:
            slots.append(Slot(service, failure=int(exc.result_code)))
            continue
        requested = 0
        if grant and service.wants_grant:
            requested = size_grant_for(rating, requested_amount(service.requested, rating.unit))
        rating_group = service.rating_group
        # Positional, in the field order (rating_group, service, kinds, used, requested_units,
        # default_units, on_exhaust, reserve_leg_key, reserve_price, valid_until_s, terminate,
        # block_kinds): keyword construction of a msgspec Struct matches names one by one.
        items.append(
            RatingGroupRequest(
                SINGLE_SERVICE_RATING_GROUP if rating_group is None else rating_group,
                rating.service,
                rating.bucket_kinds,
                tuple(legs),
                requested,
                0,
                _ON_EXHAUST[rating.on_exhaust],
                rating.price_key,
                rating.price,
                float(now + validity + grace),
                terminating,
                rating.block_kinds,
            )
        )
        slots.append(Slot(service, rating, None, len(items) - 1, requested, validity, ttc))
    return slots, items

"""Rating a SIP call and shaping its ledger items (pure: catalog and numbers in, items out).

A redirect-server call is voice, rated by the called number in the home zone (the SIP proxy
reports no visited network). It has one rating group in the ledger; its session is the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from balance.records import OnExhaust, RatingGroupRequest, UsedLeg
from tariffs.rating import Rater, Rating, UsageRequest

VOICE_SERVICE = "voice"
CALL_RATING_GROUP = 0


def rate_call(rater: Rater, tenant: str, callee: str, at_s: int, plan: str = "") -> Rating:
    """The voice rating of a call to ``callee`` at ``at_s`` on the caller's ``plan``;
    RatingError (5031) if none."""
    return rater.rate(
        UsageRequest(
            tenant=tenant, now=at_s, service=VOICE_SERVICE, called_number=callee, plan=plan
        )
    )


def requested_seconds(rating: Rating, call_duration_max_s: int) -> int:
    """Seconds to ask the ledger for: the configured cap, else the service's max grant. The
    ledger then grants what the buckets and money cover, never more."""
    return max(call_duration_max_s or rating.max_grant_units, 0)


def call_item(
    rating: Rating,
    *,
    requested_s: int,
    valid_until_s: float,
    used: Sequence[UsedLeg] = (),
    terminate: bool = False,
) -> RatingGroupRequest:
    return RatingGroupRequest(
        rating_group=CALL_RATING_GROUP,
        service=rating.service,
        kinds=rating.bucket_kinds,
        used=tuple(used),
        requested_units=0 if terminate else requested_s,
        on_exhaust=OnExhaust(rating.on_exhaust),
        block_kinds=rating.block_kinds,
        reserve_leg_key=rating.price_key,
        reserve_price=rating.price,
        valid_until_s=valid_until_s,
        terminate=terminate,
    )

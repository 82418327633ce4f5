"""A grant whose validity crosses a tariff boundary (a time band's edge, a new rate card): how
the gateway is told, by the tenant's ``tariff_switch`` policy. Pure functions of integers.

``tariff_time_change`` (the default, RFC 4006 §8.20): the grant keeps its full Validity-Time and
carries Tariff-Time-Change, the boundary; the gateway reports the usage on either side of it in
separate Used-Service-Units marked by Tariff-Change-Usage (§8.21), and each part is priced at
its own tariff (``balance.legs``). A grant may name one boundary only, so its validity ends at
the one after (if that is inside it). No session has to re-authorise at the boundary.

``validity_cap`` (a fallback for gateways that ignore Tariff-Time-Change): the Validity-Time
ends before the boundary, so the next report falls on one side of it. Without jitter every
session of the tenant would re-authorise in the same second; the cap ends each session's grant
up to ``jitter_s`` earlier, by an amount derived from its Session-Id (stable for a session,
spread over sessions, the same in every process and every test run).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import get_args

import msgspec
from yaml.nodes import Node

from tariffs.model import SwitchMode, TariffSwitch
from tariffs.numbers import parse_duration
from tariffs.rating import Rating
from tariffs.yamlread import Reader

MODES: tuple[str, ...] = get_args(SwitchMode)
KEYS = frozenset({"mode", "jitter"})
JITTER_S_MAX = 3600


class GrantTiming(msgspec.Struct, frozen=True):
    """The Validity-Time of a grant and, if a boundary is announced, its Tariff-Time-Change."""

    validity_s: int
    tariff_time_change_s: int | None = None


def session_jitter_s(session_id: str, jitter_s: int) -> int:
    """0..jitter_s, the same for every request of one session."""
    if jitter_s <= 0:
        return 0
    return zlib.crc32(session_id.encode("utf-8")) % (jitter_s + 1)


def grant_timing(
    policy: TariffSwitch,
    *,
    now: int,
    validity_s: int,
    next_change: int | None,
    following_change: int | None,
    session_id: str,
) -> GrantTiming:
    """The timing of a grant made at ``now`` for at most ``validity_s``, when the tariff next
    changes at ``next_change`` and after that at ``following_change`` (None: never)."""
    validity_s = max(validity_s, 1)
    if next_change is None or next_change <= now or next_change >= now + validity_s:
        return GrantTiming(validity_s)
    if policy.mode == "tariff_time_change":
        if following_change is not None and following_change > next_change:
            validity_s = min(validity_s, following_change - now)
        return GrantTiming(validity_s, next_change)
    until = next_change - now
    jittered = until - session_jitter_s(session_id, policy.jitter_s)
    # Already within the jitter window: the boundary itself (requests are spread already).
    return GrantTiming(max(1, jittered if jittered >= 1 else until))


def timing_for(
    policy: TariffSwitch,
    session_id: str,
    rating: Rating,
    now: int,
    validity_s: int,
    rate_at: Callable[[int], Rating],
) -> GrantTiming:
    """``grant_timing`` for a grant priced by ``rating`` at ``now`` (``rate_at`` rates the same
    usage at another instant: only called when a boundary falls inside the validity)."""
    change = rating.next_change_at
    following = None
    if change is not None and now < change < now + validity_s:
        following = rate_at(change).next_change_at
    return grant_timing(
        policy,
        now=now,
        validity_s=validity_s,
        next_change=change,
        following_change=following,
        session_id=session_id,
    )


def read_tariff_switch(r: Reader, node: Node | None) -> TariffSwitch:
    """``tariff_switch: {mode: validity_cap, jitter: PT5M}`` (problems recorded on ``r``)."""
    if node is None:
        return TariffSwitch()
    m = r.mapping(node, "tariff_switch", KEYS)
    if m is None:
        return TariffSwitch()
    mode: SwitchMode = "tariff_time_change"
    if "mode" in m:
        text = r.string(m["mode"], "tariff_switch.mode")
        if text is not None and text not in MODES:
            r.problem(m["mode"], "tariff_switch.mode", f"one of {', '.join(MODES)}")
        elif text == "validity_cap":
            mode = "validity_cap"
    jitter_s = 0
    if "jitter" in m:
        duration = r.convert(m["jitter"], "tariff_switch.jitter", parse_duration)
        if duration is not None:
            if duration.months or not 0 <= duration.seconds <= JITTER_S_MAX:
                r.problem(
                    m["jitter"], "tariff_switch.jitter", "a duration of at most PT1H (e.g. PT5M)"
                )
            else:
                jitter_s = duration.seconds
        if mode != "validity_cap":
            r.problem(m["jitter"], "tariff_switch.jitter", "only with mode: validity_cap")
    return TariffSwitch(mode=mode, jitter_s=jitter_s)

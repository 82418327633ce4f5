"""Notification texts from templates per tenant and language, shared by the subscriber channels
(``email``, ``smpp``). A template is a ``str.format`` text over the event's fields:

- ``{subscriber} {tenant} {type} {at} {reason}``;
- money, in currency units with two decimals: ``{balance} {level} {before} {amount}``;
- buckets (``bucket_below``, ``bundle_expiring``, ``bundle_expired``): ``{bucket} {kind}``,
  ``{remaining}`` and ``{size}`` in the bucket's unit (``1.5 GB``, ``12 min``, ``3 events``),
  ``{percent}``, ``{expires}`` (date and time, UTC), ``{days}`` (whole days left, rounded up);
- ``{imsi}`` (``sim_swapped``).

An unknown placeholder is refused when the plug-in starts, naming the option.
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from balance.events import Event
from ocs.plugins import PluginConfigError
from tariffs.display import format_units

MONEY_FIELDS = ("balance", "level", "before", "amount")
UNIT_FIELDS = ("remaining", "size")
TEXT_FIELDS = ("subscriber", "tenant", "type", "at", "reason", "bucket", "kind", "percent")
PLACEHOLDERS = frozenset((*TEXT_FIELDS, *MONEY_FIELDS, *UNIT_FIELDS, "expires", "days", "imsi"))
DAY_S = 86_400


def _money(micros: Any, currency: str) -> str:
    if not isinstance(micros, int):
        return ""
    text = f"{Decimal(micros) / Decimal(1_000_000):.2f}"
    return f"{text} {currency}".strip()


def _when(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")


def fields_of(event: Event, currency: str) -> dict[str, str]:
    payload = event.payload
    out = {
        "subscriber": event.subscriber,
        "tenant": event.tenant,
        "type": event.type,
        "at": _when(event.at_s),
        "reason": str(payload.get("reason", "")),
        "bucket": str(payload.get("bucket", "")),
        "kind": str(payload.get("kind", "")),
        "percent": str(payload.get("percent", "")),
        "imsi": str(payload.get("imsi", "")),
        "expires": "",
        "days": "",
    }
    for name in MONEY_FIELDS:
        out[name] = _money(payload.get(name), currency)
    unit = str(payload.get("unit", ""))
    for name in UNIT_FIELDS:
        value = payload.get(name)
        out[name] = format_units(value, unit, currency) if isinstance(value, int) else ""
    expires = payload.get("expires_at")
    if isinstance(expires, int | float) and expires > 0:
        out["expires"] = _when(expires)
        out["days"] = str(max(0, math.ceil((expires - event.at_s) / DAY_S)))
    return out


def check_template(text: str, where: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise PluginConfigError(f"option {where!r}: {exc}") from None
    unknown = names - PLACEHOLDERS
    if unknown:
        raise PluginConfigError(
            f"option {where!r}: unknown placeholder(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(PLACEHOLDERS))})"
        )
    return text

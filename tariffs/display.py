"""Ledger figures for people: money in a currency, data in KiB/MiB/GiB, time in minutes,
instants as ISO 8601 in a time zone. Integers in, text out; used by ``ocs account`` and the
simulator's report. Nothing here is parsed back: machine output keeps the integers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MICRO_PER_UNIT = Decimal(1_000_000)
_BINARY_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def format_amount(micro: int) -> str:
    """Micro-units as a decimal with at least two places (``-1.5`` → ``-1.50``)."""
    text = f"{Decimal(micro) / MICRO_PER_UNIT:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def format_money(micro: int, currency: str) -> str:
    """``19_920_000, "EUR"`` → ``19.92 EUR`` (no currency when the tenant is not known)."""
    return f"{format_amount(micro)} {currency}".rstrip()


def format_bytes(count: int) -> str:
    """``1073741824`` → ``1.00 GiB``; below 1 KiB in bytes."""
    for name, size in _BINARY_UNITS:
        if abs(count) >= size:
            return f"{count / size:.2f} {name}"
    return f"{count} B"


def format_seconds(count: int) -> str:
    """``6000`` → ``100 min``, ``90`` → ``1 min 30 s``, ``45`` → ``45 s``."""
    minutes, seconds = divmod(abs(count), 60)
    sign = "-" if count < 0 else ""
    if minutes and seconds:
        return f"{sign}{minutes} min {seconds} s"
    if minutes:
        return f"{sign}{minutes} min"
    return f"{sign}{seconds} s"


def format_units(count: int, unit: str, currency: str = "") -> str:
    """A bucket's or a record's units in the unit's human form."""
    if unit in ("bytes", "byte"):
        return format_bytes(count)
    if unit in ("seconds", "second"):
        return format_seconds(count)
    if unit == "money":
        return format_money(count, currency)
    return f"{count} event{'s' if count != 1 else ''}"


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_instant(epoch_s: float, tz: ZoneInfo) -> str:
    """Epoch seconds → ``2026-01-31T14:05:00+01:00`` in ``tz``; 0 means never."""
    if not epoch_s:
        return "never"
    return datetime.fromtimestamp(epoch_s, UTC).astimezone(tz).isoformat(timespec="seconds")

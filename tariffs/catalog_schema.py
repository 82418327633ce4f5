"""The catalog's vocabulary: the keys each section accepts, the shapes of names, numbers and
clocks, limits, and the small value parsers the section readers share."""

from __future__ import annotations

import re
from datetime import datetime
from typing import get_args

from tariffs.model import (
    ContextKind,
    Unit,
)
from tariffs.timebands import (
    WEEKDAYS,
)

CATALOG_FILE_BYTES_MAX = 64 * 1024 * 1024
CATALOG_FILES_MAX = 10_000
# Bounds of a tenant's idempotency window: a minute (Diameter retransmissions) to 90 days (each
# operation's record is kept that long in Redis: memory grows with the window).
IDEMPOTENCY_WINDOW_S = (60, 90 * 86400)
# IANA zone names: ASCII words joined by "/" (the longest is 32 characters).
TIMEZONE_CHARS_MAX = 64
TIMEZONE_RE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
SUBSCRIBER_RANGE_SIZE_MAX = 100_000_000

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
DIGITS_RE = re.compile(r"[0-9]{1,15}")
COUNTRY_CODE_RE = re.compile(r"[1-9][0-9]{0,2}")
PLMN_RE = re.compile(r"[0-9]{5,6}")
MCC_RE = re.compile(r"[0-9]{3}")
CLOCK_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
STR_TAG = "tag:yaml.org,2002:str"
VERSION_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

UNITS: tuple[str, ...] = get_args(Unit)
CONTEXTS: tuple[str, ...] = get_args(ContextKind)
# Grant sizes when a service does not state them (units of the service).
DEFAULT_GRANTS: dict[str, tuple[int, int]] = {
    "byte": (10 * 1024 * 1024, 100 * 1024 * 1024),
    "second": (300, 3600),
    "event": (1, 10),
}

TENANT_KEYS = frozenset(
    {
        "tenant",
        "currency",
        "country_code",
        "national_prefix",
        "international_prefix",
        "timezone",
        "home_zone",
        "final_unit",
        "status",
        "idempotency_window",
        "services",
        "context_defaults",
        "zones",
        "destinations",
        "time_bands",
        "version",
        "rates",
        "rate_cards",
        "bundles",
        "subscribers",
        "topup_max",
        "notifications",
        "provisioning_hold",
        "plans",
        "addons",
        "renewal",
        "plan_change",
        "tariff_switch",
    }
)
NOTIFICATION_KEYS = frozenset({"balance_below", "bucket_below_percent", "expiry_warning_days"})
BALANCE_BELOW_MAX = 8  # levels per tenant (each CCR carries them to the ledger script)
BUCKET_BELOW_MAX = 4  # percent levels per tenant (as balance levels: sent with each CCR)
EXPIRY_WARNING_DAYS_MAX = 90
SERVICE_KEYS = frozenset(
    {
        "context",
        "unit",
        "rating_groups",
        "service_identifiers",
        "default",
        "default_grant",
        "max_grant",
    }
)
ZONE_KEYS = frozenset({"plmns", "mccs", "default"})
BAND_KEYS = frozenset({"days", "from", "to", "default"})
RATE_KEYS = frozenset(
    {
        "service",
        "zone",
        "dest",
        "band",
        "price",
        "cost",
        "per",
        "first_increment",
        "increment",
        "connect_fee",
        "minimum",
        "leg",
    }
)
CARD_KEYS = frozenset({"version", "effective_from", "rates"})
BUNDLE_KEYS = frozenset(
    {"id", "fee", "validity", "priority", "on_exhaust", "allowances", "rollover_cap"}
)
ALLOWANCE_KEYS = frozenset({"name", "service", "rating_groups", "zones", "amount"})
SUBSCRIBERS_KEYS = frozenset({"opening_balance", "bundles", "ranges", "entries", "plan"})
RANGE_KEYS = frozenset(
    {"imsi_first", "imsi_last", "msisdn_first", "msisdn_last", "opening_balance", "bundles", "plan"}
)
ENTRY_KEYS = frozenset({"msisdn", "imsi", "opening_balance", "bundles", "plan"})
FINAL_UNIT_KEYS = frozenset({"action", "redirect_url", "filter_id"})


class Claim:
    """An IMSI or MSISDN range a tenant claims, kept for the deployment-wide overlap check."""

    __slots__ = ("file", "first", "kind", "last", "line", "tenant")

    def __init__(self, kind: str, first: str, last: str, tenant: str, file: str, line: int):
        self.kind, self.first, self.last = kind, first, last
        self.tenant, self.file, self.line = tenant, file, line


def clock_minutes(text: str) -> int:
    if not CLOCK_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00..24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def weekday_range(text: str) -> list[int]:
    """``mon``, ``mon-fri``, ``sat-sun``, ``all`` → weekday numbers (0 = Monday)."""
    text = text.strip().lower()
    if text == "all":
        return list(range(7))
    first, _, last = text.partition("-")
    if first not in WEEKDAYS or (last and last not in WEEKDAYS):
        raise ValueError(f"{text!r} is not a weekday or range (mon..sun, e.g. mon-fri, all)")
    start = WEEKDAYS.index(first)
    end = WEEKDAYS.index(last) if last else start
    return [(start + i) % 7 for i in range((end - start) % 7 + 1)]


def instant(text: str) -> int:
    """ISO 8601 date-time with an offset (``2026-01-01T00:00:00+01:00``) → epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (write e.g. 2026-01-01T00:00:00+01:00)")
    return int(moment.timestamp())

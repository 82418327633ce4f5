"""Text → integers at the edge: money amounts, ISO 8601 durations and telephone numbers.

Everything past this module is integers: money in micro-units, time in epoch seconds, numbers as
E.164 digit strings without ``+``.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

import msgspec

MICRO_PER_UNIT = 1_000_000
# Larger amounts than this cannot be held exactly by the Lua ledger (IEEE doubles).
MONEY_MICRO_MAX = 2**53 - 1

_MONEY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Z]{3})?\s*$")


def parse_money(text: str, currency: str | None) -> int:
    """``"0.09"``, ``"12"`` or ``"0.09 EUR"`` → micro-units. Raises ``ValueError`` with a reason.

    A currency written next to the amount must be the tenant's; more than 6 decimals would need
    a finer unit than the ledger keeps; negative amounts are refused.
    """
    match = _MONEY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an amount (e.g. 0.09 or '0.09 EUR')")
    amount_text, written_currency = match.groups()
    if written_currency is not None and currency is not None and written_currency != currency:
        raise ValueError(f"currency {written_currency} does not match the tenant's {currency}")
    try:
        amount = Decimal(amount_text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{text!r} is not an amount") from exc
    if amount < 0:
        raise ValueError(f"{amount_text} is negative; prices and fees must be >= 0")
    micro = amount * MICRO_PER_UNIT
    if micro != micro.to_integral_value():
        raise ValueError(f"{amount_text} has more than 6 decimals (finer than a micro-unit)")
    if micro > MONEY_MICRO_MAX:
        raise ValueError(f"{amount_text} is too large for the ledger")
    return int(micro)


class Duration(msgspec.Struct, frozen=True):
    """An ISO 8601 duration: calendar months (years are 12 months) plus exact seconds."""

    months: int = 0
    seconds: int = 0

    def add_to(self, epoch_s: int) -> int:
        """``epoch_s`` + this duration; months move the UTC calendar date (clamped to month end)."""
        moment = datetime.fromtimestamp(epoch_s, UTC)
        if self.months:
            month_index = moment.month - 1 + self.months
            year = moment.year + month_index // 12
            month = month_index % 12 + 1
            day = min(moment.day, calendar.monthrange(year, month)[1])
            moment = moment.replace(year=year, month=month, day=day)
        return int((moment + timedelta(seconds=self.seconds)).timestamp())


_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
DURATION_SECONDS_MAX = 100 * 366 * 86400


def parse_duration(text: str) -> Duration:
    """``P30D``, ``PT1H``, ``P1M``, ``P1Y2M3DT4H5M6S``, ``P2W`` → Duration; positive only."""
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration (e.g. P30D, PT24H, P1M)")
    part = {k: int(v) if v else 0 for k, v in match.groupdict().items()}
    months = part["y"] * 12 + part["mo"]
    seconds = (
        part["w"] * 7 * 86400 + part["d"] * 86400 + part["h"] * 3600 + part["mi"] * 60 + part["s"]
    )
    if months == 0 and seconds == 0:
        raise ValueError(f"{text!r} is zero; a validity must be positive")
    if months > 1200 or seconds > DURATION_SECONDS_MAX:
        raise ValueError(f"{text!r} is longer than 100 years")
    return Duration(months=months, seconds=seconds)


_VISUAL_SEPARATORS = str.maketrans("", "", " -.()/")


def normalise_e164(
    number: str,
    country_code: str,
    *,
    international_prefix: str = "00",
    national_prefix: str = "0",
) -> str | None:
    """A dialled number or tel:/sip: URI → E.164 digits without ``+``, or None if it is not one.

    ``tel:+49 30 123``, ``sip:+4930123@host;user=phone``, ``+4930123``, ``004930123`` and (with
    country code 49) ``030123`` all give ``"4930123"``. Digits with no prefix are taken as already
    international (what gateways usually send in Called-Party-Address).
    """
    if number[:1] == "+" and number[1:].isdigit() and number.isascii() and len(number) <= 16:
        return number[1:]  # the common case, answered without the general parse below
    text = number.strip()
    lowered = text[:5].lower()
    if lowered.startswith(("sip:", "tel:")):
        text = text[4:]
    elif lowered.startswith("sips:"):
        text = text[5:]
    text = text.split("@", 1)[0].split(";", 1)[0].translate(_VISUAL_SEPARATORS)
    if text.startswith("+"):
        digits = text[1:]
    elif international_prefix and text.startswith(international_prefix):
        digits = text[len(international_prefix) :]
    elif national_prefix and text.startswith(national_prefix):
        digits = country_code + text[len(national_prefix) :]
    else:
        digits = text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 15:
        return None
    return digits

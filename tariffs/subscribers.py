"""Who a request is for: Subscription-Id values → (tenant, canonical subscriber id).

The canonical subscriber id is the MSISDN in E.164 digits without ``+`` (``4917099000042``):
stable across SIM swaps, the same for Diameter and SIP, and what operators read in reports.
An IMSI in a range maps to the MSISDN at the same offset in that range's MSISDN range.

Lookups are a dict probe for explicit entries and a bisect over sorted range starts (per digit
count), so they cost O(log ranges), never a scan.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from enum import IntEnum

import msgspec

from tariffs.model import Catalog

ID_DIGITS_MAX = 15


class SubscriptionIdType(IntEnum):
    """Subscription-Id-Type (RFC 4006 §8.47)."""

    END_USER_E164 = 0
    END_USER_IMSI = 1
    END_USER_SIP_URI = 2
    END_USER_NAI = 3
    END_USER_PRIVATE = 4


class SubscriberRef(msgspec.Struct, frozen=True):
    tenant: str
    subscriber_id: str  # MSISDN, E.164 digits without "+"
    imsi: str | None
    plan: str = ""  # the catalog plan of the range or entry ("" = none)


class _Ranges:
    """Disjoint digit ranges of one identifier kind, searchable by bisect per digit count."""

    def __init__(self) -> None:
        self._pending: dict[int, list[tuple[int, int, int, str, str, str]]] = {}
        self._starts: dict[int, list[int]] = {}
        self._rows: dict[int, list[tuple[int, int, int, str, str, str]]] = {}

    def add(self, first: str, last: str, other_first: str, tenant: str, plan: str = "") -> None:
        """``first..last`` maps onto ``other_first..`` (the aligned range of the other kind)."""
        self._pending.setdefault(len(first), []).append(
            (int(first), int(last), int(other_first), other_first, tenant, plan)
        )

    def freeze(self) -> None:
        for digits, rows in self._pending.items():
            rows.sort()
            self._rows[digits] = rows
            self._starts[digits] = [row[0] for row in rows]
        self._pending = {}

    def find(self, value: str) -> tuple[str, str, str] | None:
        """(tenant, aligned identifier of the other kind, plan) for ``value``, or None."""
        starts = self._starts.get(len(value))
        if starts is None:
            return None
        number = int(value)
        position = bisect_right(starts, number) - 1
        if position < 0:
            return None
        first, last, other_first, other_text, tenant, plan = self._rows[len(value)][position]
        if number > last:
            return None
        return tenant, str(other_first + number - first).zfill(len(other_text)), plan


class Resolver:
    """Deployment-wide subscriber directory built from a Catalog (immutable once built)."""

    def __init__(self, catalog: Catalog) -> None:
        self._by_msisdn: dict[str, SubscriberRef] = {}
        self._by_imsi: dict[str, SubscriberRef] = {}
        self._msisdn_ranges = _Ranges()
        self._imsi_ranges = _Ranges()
        for tenant in catalog.tenants:
            for entry in tenant.entries:
                ref = SubscriberRef(tenant.id, entry.msisdn, entry.imsi, entry.plan)
                self._by_msisdn[entry.msisdn] = ref
                if entry.imsi is not None:
                    self._by_imsi[entry.imsi] = ref
            for block in tenant.ranges:
                self._msisdn_ranges.add(
                    block.msisdn_first, block.msisdn_last, block.imsi_first, tenant.id, block.plan
                )
                self._imsi_ranges.add(
                    block.imsi_first, block.imsi_last, block.msisdn_first, tenant.id, block.plan
                )
        self._msisdn_ranges.freeze()
        self._imsi_ranges.freeze()

    def by_msisdn(self, msisdn: str) -> SubscriberRef | None:
        """An E.164 number (``+``, ``tel:`` and separators allowed) → its subscriber."""
        digits = _digits(msisdn)
        if digits is None:
            return None
        ref = self._by_msisdn.get(digits)
        if ref is not None:
            return ref
        found = self._msisdn_ranges.find(digits)
        return None if found is None else SubscriberRef(found[0], digits, found[1], found[2])

    def by_imsi(self, imsi: str) -> SubscriberRef | None:
        digits = _digits(imsi)
        if digits is None:
            return None
        ref = self._by_imsi.get(digits)
        if ref is not None:
            return ref
        found = self._imsi_ranges.find(digits)
        return None if found is None else SubscriberRef(found[0], found[1], digits, found[2])

    def resolve(self, id_type: int, data: str) -> SubscriberRef | None:
        """One Subscription-Id (type, data) → its subscriber, or None (unknown: 5030)."""
        if id_type == SubscriptionIdType.END_USER_E164:
            return self.by_msisdn(data)
        if id_type == SubscriptionIdType.END_USER_IMSI:
            return self.by_imsi(data)
        if id_type in (SubscriptionIdType.END_USER_SIP_URI, SubscriptionIdType.END_USER_NAI):
            return self.by_uri(data)
        return None

    def resolve_any(self, ids: Iterable[tuple[int, str]]) -> SubscriberRef | None:
        """The first Subscription-Id of a request that names a known subscriber."""
        for id_type, data in ids:
            ref = self.resolve(id_type, data)
            if ref is not None:
                return ref
        return None

    def by_uri(self, uri: str) -> SubscriberRef | None:
        """``sip:+4917099000042@host;user=phone``, ``tel:+49...`` or ``imsi@realm`` style NAI:
        the user part as an international number, else as an IMSI."""
        text = uri.strip()
        lowered = text[:5].lower()
        if lowered.startswith(("sip:", "tel:")):
            text = text[4:]
        elif lowered.startswith("sips:"):
            text = text[5:]
        user = text.split("@", 1)[0].split(";", 1)[0]
        return self.by_msisdn(user) or self.by_imsi(user)


_SEPARATORS = str.maketrans("", "", " -.()")


def normalise_digits(value: str) -> str | None:
    """An MSISDN or IMSI as its digits (``+``, ``tel:`` and separators removed), or None."""
    return _digits(value)


def _digits(value: str) -> str | None:
    text = value.strip()
    if text[:4].lower() == "tel:":
        text = text[4:].split(";", 1)[0]
    text = text.translate(_SEPARATORS).removeprefix("+")
    if not text or len(text) > ID_DIGITS_MAX or not (text.isascii() and text.isdigit()):
        return None
    return text

"""The wholesale side of the catalog: host MNOs with their price lists, and each MVNO's contract
with the aggregator. Frozen and integer-only, built by ``settlement.catalog`` from YAML.

Money is micro-units of the stated currency; percentages are parts per million (12.5 % is
125_000 ppm) so that margins stay integer arithmetic.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Unit = Literal["byte", "second", "event"]
RejectedDisputes = Literal["absorb", "pass_through"]
PPM = 1_000_000


class MnoZone(msgspec.Struct, frozen=True):
    """An invoice zone of the MNO: visited PLMNs (MCC+MNC) and/or whole countries (MCC)."""

    name: str
    plmns: tuple[str, ...] = ()
    mccs: tuple[str, ...] = ()
    default: bool = False


class WholesalePrice(msgspec.Struct, frozen=True):
    """``amount`` micro-units per ``per`` units of ``service`` used in ``zone``."""

    service: str
    zone: str
    amount: int
    per: int


class Tolerance(msgspec.Struct, frozen=True):
    """How far our figure and the MNO's may differ and still count as agreeing.

    A difference is within tolerance when it is at most ``absolute`` OR at most ``relative_ppm``
    of the larger figure; both apply separately to quantities (service units) and money.
    """

    quantity_absolute: int = 0
    quantity_relative_ppm: int = 0
    money_absolute: int = 0
    money_relative_ppm: int = 0

    def quantity_ok(self, ours: int, theirs: int) -> bool:
        return _within(ours, theirs, self.quantity_absolute, self.quantity_relative_ppm)

    def money_ok(self, ours: int, theirs: int) -> bool:
        return _within(ours, theirs, self.money_absolute, self.money_relative_ppm)


def _within(ours: int, theirs: int, absolute: int, relative_ppm: int) -> bool:
    gap = abs(ours - theirs)
    if gap <= absolute:
        return True
    # gap / max <= ppm / 1e6, in integers
    return gap * PPM <= relative_ppm * max(abs(ours), abs(theirs))


class Matching(msgspec.Struct, frozen=True):
    """Record-level pairing window: same IMSI and service, start times within ``start_s``."""

    start_s: int = 5


class HostMno(msgspec.Struct, frozen=True):
    id: str
    name: str
    currency: str
    timezone: str  # invoice days and period months are in this zone
    home_zone: str  # the zone of usage with no visited network
    services: dict[str, Unit]
    zones: tuple[MnoZone, ...]
    prices: tuple[WholesalePrice, ...]
    tolerances: dict[str, Tolerance]  # by service; a service absent here has zero tolerance
    matching: Matching
    source: str = ""

    def price(self, service: str, zone: str) -> WholesalePrice | None:
        exact = next((p for p in self.prices if p.service == service and p.zone == zone), None)
        if exact is not None:
            return exact
        return next((p for p in self.prices if p.service == service and p.zone == "*"), None)

    def tolerance(self, service: str) -> Tolerance:
        return self.tolerances.get(service, Tolerance())

    def zone_of(self, visited_plmn: str) -> str:
        """The invoice zone of usage in ``visited_plmn`` ("" = at home)."""
        if not visited_plmn:
            return self.home_zone
        for zone in self.zones:
            if visited_plmn in zone.plmns:
                return zone.name
        for zone in self.zones:
            if visited_plmn[:3] in zone.mccs:
                return zone.name
        return next((z.name for z in self.zones if z.default), self.home_zone)


class Markup(msgspec.Struct, frozen=True):
    """A per-unit markup: ``amount`` micro-units per ``per`` units of ``service``."""

    service: str
    amount: int
    per: int


class Contract(msgspec.Struct, frozen=True):
    """What an MVNO pays the aggregator each month on top of its wholesale cost."""

    tenant: str
    currency: str
    host_mnos: tuple[str, ...]
    margin_ppm: int  # of the wholesale allocated
    markups: tuple[Markup, ...]
    platform_fee: int  # per active subscriber per month
    minimum_commitment: int  # least monthly total (wholesale + margin + platform fee)
    rejected_disputes: RejectedDisputes = "absorb"
    source: str = ""


class SettlementCatalog(msgspec.Struct, frozen=True):
    mnos: tuple[HostMno, ...]
    contracts: tuple[Contract, ...]

    def mno(self, mno_id: str) -> HostMno | None:
        return next((m for m in self.mnos if m.id == mno_id), None)

    def contract(self, tenant: str) -> Contract | None:
        return next((c for c in self.contracts if c.tenant == tenant), None)

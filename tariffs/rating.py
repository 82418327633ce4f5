"""Rating: a usage request → which buckets may pay, the money ``Price``, and what decided them.

``Rater`` is the catalog compiled for lookups (dicts, a prefix table, a band schedule per tenant).
Its answers depend only on the catalog and the request (time is ``request.now``, epoch seconds);
internally it memoises resolved rate rows and bucket scopes, which never changes an answer.

Rules, in the order they are applied:
1. Service: an explicit ``service`` name wins (the SIP credit check knows it is voice). Otherwise
   the Service-Context-Id suffix gives the charging domain (32251 data, 32260 ims, 32270 mms,
   32274 sms, 32275 mmtel); then the Rating-Group picks the tenant's service in that domain, else
   the Service-Identifier, else the domain's ``default`` service. An unknown rating group or
   service identifier is a rating failure (5031): usage is never free by omission, unless the
   catalog's ``context_defaults`` names the service that charges that domain's unknown ids.
2. Zone: the zone listing the visited PLMN (MCC+MNC), else the zone listing its MCC, else the
   default zone; no visited network means the tenant's ``home_zone``.
3. Destination: the called number normalised to E.164, then the longest prefix.
4. Band: weekday and local time in the tenant's time zone; ``next_change_at`` is the next band
   change or rate-card start, so the caller can end a grant (Validity-Time) at a boundary.
5. Rate card: the last card whose ``effective_from`` <= now. Row: the first that exists of
   (zone, dest, band), (zone, dest), (dest, band), (dest), (zone, band), (zone), (band), () —
   a destination match beats a zone match beats a band match. No row: rating failure (5031).
   A terminating leg (``terminating``) looks only at the ``leg: mt`` rows, which have no
   destination: free at home, charged when roaming, per zone, as the catalog says; a tenant
   without mt rows refuses terminating legs (5031) rather than pricing them as outgoing calls.
6. Buckets: the allowances of the service whose rating-group and zone scope admit the request,
   ordered by bundle priority (higher first), then kind name.
"""

from __future__ import annotations

from bisect import bisect_right
from zoneinfo import ZoneInfo

import msgspec

from tariffs.errors import RatingError
from tariffs.model import (
    CONTEXT_SUFFIXES,
    Catalog,
    ContextKind,
    OnExhaust,
    RateCard,
    Service,
    Tenant,
    Unit,
    bucket_kind,
)
from tariffs.numbers import normalise_e164
from tariffs.prefixes import PrefixTable
from tariffs.price import Price
from tariffs.quota import size_grant
from tariffs.timebands import BandSchedule

CONTEXT_MEMO_MAX = 4096
# Distinct (card, service, rating group, zone, destination, band, next change) results kept per
# tenant; the memo is cleared when full, so memory stays bounded whatever the traffic.
RATING_MEMO_MAX = 65_536


class UsageRequest(msgspec.Struct, frozen=True):
    """What is known about one usage leg when it is rated (one MSCC, one SMS, one call)."""

    tenant: str
    now: int
    service_context_id: str = ""
    rating_group: int | None = None
    service_identifier: int | None = None
    service: str | None = None
    visited_plmn: str | None = None
    called_number: str | None = None
    # A terminating leg (the subscriber is called): priced by the ``leg: mt`` rows, by zone and
    # band; the called number is the subscriber's own and is not a destination.
    terminating: bool = False
    # The subscriber's plan ("" = none: the tenant's own rate cards), resolved at ingestion.
    plan: str = ""


class Rating(msgspec.Struct, frozen=True):
    """Everything the ledger's reserve needs for one leg, and what a usage record stores.

    ``bucket_kinds``: kinds that may pay, in order, scope already applied (the account may hold
    none of them). Money pays after them unless the account holds a live bucket of a kind in
    ``block_kinds`` (its bundle says ``on_exhaust: block``); ``on_exhaust`` is ``block`` when any
    kind blocks. ``price_key`` (``tenant:version:row``) names the exact rate row used.
    """

    tenant: str
    service: str
    unit: Unit
    rating_group: int | None
    zone: str
    destination: str | None
    band: str
    price: Price
    version: str
    price_key: str
    bucket_kinds: tuple[str, ...]
    on_exhaust: OnExhaust
    block_kinds: tuple[str, ...]
    next_change_at: int | None
    default_grant_units: int
    max_grant_units: int
    default_grant: int
    """What ``tariffs.quota.size_grant`` offers a request that names no amount: the default
    grant capped and rounded to the increments, sized once per rating instead of per MSCC."""


def context_kind(service_context_id: str) -> ContextKind | None:
    """``32251@3gpp.org`` or ``ext.01.001.8.32260@3gpp.org`` → its charging domain, by suffix."""
    head = service_context_id.partition("@")[0]
    return CONTEXT_SUFFIXES.get(head.rpartition(".")[2])


_Scope = tuple[tuple[str, ...], OnExhaust, tuple[str, ...]]
_RowKey = tuple[int, str, bool, str, str | None, str]


class _TenantIndex:
    """One tenant's catalog arranged for constant-time lookups."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.services = {s.name: s for s in tenant.services}
        self.by_group: dict[tuple[str, int], Service] = {}
        self.by_ident: dict[tuple[str, int], Service] = {}
        self.default_service: dict[str, Service] = {}
        for service in tenant.services:
            for group in service.rating_groups:
                self.by_group[(service.context, group)] = service
            for ident in service.service_identifiers:
                self.by_ident[(service.context, ident)] = service
            if service.default:
                self.default_service[service.context] = service
        # The policy for ids no service lists (and for a bare request of a context with no
        # ``default`` service): ``context_defaults`` of the catalog.
        self.context_default: dict[str, Service] = {
            context: self.services[name] for context, name in tenant.context_defaults
        }
        self.home_zone = tenant.home_zone
        self.zone_by_plmn: dict[str, str] = {}
        self.zone_by_mcc: dict[str, str] = {}
        self.default_zone: str | None = None
        for zone in tenant.zones:
            for plmn in zone.plmns:
                self.zone_by_plmn[plmn] = zone.name
            for mcc in zone.mccs:
                self.zone_by_mcc[mcc] = zone.name
            if zone.default:
                self.default_zone = zone.name
        self.prefixes = PrefixTable(
            (prefix, dest.name) for dest in tenant.destinations for prefix in dest.prefixes
        )
        self.bands = BandSchedule(tenant.time_bands, ZoneInfo(tenant.timezone))
        self.cards: tuple[RateCard, ...] = tenant.rate_cards
        self.card_starts = tuple(card.effective_from for card in tenant.rate_cards)
        self.rows: list[dict[tuple[str, bool, str | None, str | None, str | None], int]] = [
            {
                (r.service, r.leg == "mt", r.zone, r.dest, r.band): i
                for i, r in enumerate(card.rates)
            }
            for card in tenant.rate_cards
        ]
        self.row_memo: dict[_RowKey, tuple[Price, str]] = {}
        self.scope_memo: dict[tuple[str, int | None, str], _Scope] = {}
        self.service_memo: dict[tuple[str, int | None, int | None, str | None], Service] = {}
        self.rating_memo: dict[
            tuple[int, str, int | None, str, str | None, str, int | None, bool], Rating
        ] = {}

    def zone(self, visited_plmn: str | None) -> str:
        if not visited_plmn:
            return self.tenant.home_zone
        zone = self.zone_by_plmn.get(visited_plmn) or self.zone_by_mcc.get(visited_plmn[:3])
        if zone is None:
            zone = self.default_zone
            if zone is None:
                raise RatingError(
                    f"visited network {visited_plmn} is in no zone of {self.tenant.id}"
                )
        return zone

    def row(
        self,
        card_index: int,
        service: str,
        zone: str,
        dest: str | None,
        band: str,
        terminating: bool = False,
    ) -> tuple[Price, str]:
        key = (card_index, service, terminating, zone, dest, band)
        found = self.row_memo.get(key)
        if found is not None:
            return found
        rows = self.rows[card_index]
        card = self.cards[card_index]
        candidates = (
            (zone, dest, band),
            (zone, dest, None),
            (None, dest, band),
            (None, dest, None),
            (zone, None, band),
            (zone, None, None),
            (None, None, band),
            (None, None, None),
        )
        for cand_zone, cand_dest, cand_band in candidates:
            index = rows.get((service, terminating, cand_zone, cand_dest, cand_band))
            if index is not None:
                found = (card.rates[index].price, f"{self.tenant.id}:{card.version}:{index}")
                self.row_memo[key] = found
                return found
        if terminating:
            raise RatingError(
                f"no mt rate for {service} in zone {zone}, band {band} (tenant "
                f"{self.tenant.id}, rate card {card.version}): terminating legs need leg: mt rows"
            )
        raise RatingError(
            f"no rate for {service} in zone {zone}, destination {dest or '-'}, band {band} "
            f"(tenant {self.tenant.id}, rate card {card.version})"
        )

    def scope(self, service: str, rating_group: int | None, zone: str) -> _Scope:
        key = (service, rating_group, zone)
        found = self.scope_memo.get(key)
        if found is not None:
            return found
        matches: list[tuple[int, str, OnExhaust]] = []
        for bundle in self.tenant.bundles:
            for allowance in bundle.allowances:
                if allowance.service != service:
                    continue
                if allowance.rating_groups and rating_group not in allowance.rating_groups:
                    continue
                if allowance.zones and zone not in allowance.zones:
                    continue
                kind = bucket_kind(bundle.id, allowance.name)
                matches.append((-bundle.priority, kind, bundle.on_exhaust))
        matches.sort()
        kinds = tuple(kind for _, kind, _ in matches)
        blocking = tuple(kind for _, kind, policy in matches if policy == "block")
        scope: _Scope = (kinds, "block" if blocking else "payg", blocking)
        self.scope_memo[key] = scope
        return scope


class Rater:
    """A catalog compiled for rating. Build once per catalog version; not thread-safe (memos)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._tenants = {t.id: _TenantIndex(t) for t in catalog.tenants}
        # A plan is its tenant with the plan's rate cards: same services, zones, bundles.
        self._plans = {
            (t.id, plan.id): _TenantIndex(msgspec.structs.replace(t, rate_cards=plan.rate_cards))
            for t in catalog.tenants
            for plan in t.plans
        }
        self._contexts: dict[str, ContextKind | None] = {}

    def tenant(self, tenant_id: str) -> Tenant | None:
        index = self._tenants.get(tenant_id)
        return None if index is None else index.tenant

    def classify(self, request: UsageRequest) -> Service:
        """The tenant's service for this request (rule 1), or RatingError 5031."""
        index = self._index(request.tenant)
        return self._classify(index, request)

    def rate(self, request: UsageRequest) -> Rating:
        """Rate one usage leg; raises RatingError (5031) when it cannot be priced."""
        # The common cases are inlined (a Python call costs ~0.1 µs; this runs per MSCC).
        index = (
            self._tenants.get(request.tenant)
            if not request.plan
            else self._plans.get((request.tenant, request.plan))
        )
        if index is None:
            if request.plan:
                raise RatingError(
                    f"plan {request.plan!r} of {request.tenant!r} is not in the catalog"
                )
            raise RatingError(f"tenant {request.tenant!r} is not in the catalog")
        service_key = (
            request.service_context_id,
            request.rating_group,
            request.service_identifier,
            request.service,
        )
        service = index.service_memo.get(service_key)
        if service is None:
            service = self._classify(index, request)
            if len(index.service_memo) >= CONTEXT_MEMO_MAX:
                index.service_memo.clear()
            index.service_memo[service_key] = service
        visited = request.visited_plmn
        zone = index.zone(visited) if visited else index.home_zone
        dest: str | None = None
        called = request.called_number
        terminating = request.terminating
        if called and not terminating:
            if called[:1] == "+" and called[1:].isdigit() and called.isascii() and len(called) < 17:
                dest = index.prefixes.longest(called[1:])
            else:
                tenant = index.tenant
                number = normalise_e164(
                    called,
                    tenant.country_code,
                    international_prefix=tenant.international_prefix,
                    national_prefix=tenant.national_prefix,
                )
                if number is not None:
                    dest = index.prefixes.longest(number)
        now = request.now
        valid_from, valid_until, band = index.bands.memo
        if valid_from <= now and (now < valid_until or valid_until == -1):
            change: int | None = None if valid_until == -1 else valid_until
        else:
            band, change = index.bands.band_at(now)
        starts = index.card_starts
        if len(starts) == 1 and starts[0] <= now:
            card_index = 0
        else:
            card_index = bisect_right(starts, now) - 1
            if card_index < 0:
                raise RatingError(f"no rate card of {request.tenant} is in effect at {now}")
            if card_index + 1 < len(starts) and (change is None or starts[card_index + 1] < change):
                change = starts[card_index + 1]
        # Identical inputs give an identical (frozen) Rating: reuse it.
        key = (
            card_index,
            service.name,
            request.rating_group,
            zone,
            dest,
            band,
            change,
            terminating,
        )
        rating = index.rating_memo.get(key)
        if rating is None:
            rating = self._build(index, request, service, card_index, zone, dest, band, change)
            if len(index.rating_memo) >= RATING_MEMO_MAX:
                index.rating_memo.clear()
            index.rating_memo[key] = rating
        return rating

    @staticmethod
    def _build(
        index: _TenantIndex,
        request: UsageRequest,
        service: Service,
        card_index: int,
        zone: str,
        dest: str | None,
        band: str,
        change: int | None,
    ) -> Rating:
        price, price_key = index.row(
            card_index, service.name, zone, dest, band, request.terminating
        )
        kinds, on_exhaust, blocking = index.scope(service.name, request.rating_group, zone)
        return Rating(
            tenant=request.tenant,
            service=service.name,
            unit=service.unit,
            rating_group=request.rating_group,
            zone=zone,
            destination=dest,
            band=band,
            price=price,
            version=index.cards[card_index].version,
            price_key=price_key,
            bucket_kinds=kinds,
            on_exhaust=on_exhaust,
            block_kinds=blocking,
            next_change_at=change,
            default_grant_units=service.default_grant_units,
            max_grant_units=service.max_grant_units,
            default_grant=size_grant(
                None, service.default_grant_units, service.max_grant_units, price
            ),
        )

    def _index(self, tenant_id: str) -> _TenantIndex:
        index = self._tenants.get(tenant_id)
        if index is None:
            raise RatingError(f"tenant {tenant_id!r} is not in the catalog")
        return index

    def _context(self, service_context_id: str) -> ContextKind | None:
        contexts = self._contexts
        if service_context_id in contexts:
            return contexts[service_context_id]
        kind = context_kind(service_context_id)
        if len(contexts) < CONTEXT_MEMO_MAX:
            contexts[service_context_id] = kind
        return kind

    def _classify(self, index: _TenantIndex, request: UsageRequest) -> Service:
        if request.service is not None:
            service = index.services.get(request.service)
            if service is None:
                raise RatingError(f"tenant {request.tenant} has no service {request.service!r}")
            return service
        kind = self._context(request.service_context_id)
        if kind is None:
            raise RatingError(f"unknown Service-Context-Id {request.service_context_id!r}")
        if request.rating_group is not None:
            found = index.by_group.get((kind, request.rating_group))
            if found is None:
                found = index.context_default.get(kind)
            if found is None:
                raise RatingError(
                    f"rating group {request.rating_group} is not a {kind} service of "
                    f"{request.tenant}"
                )
            return found
        if request.service_identifier is not None:
            found = index.by_ident.get((kind, request.service_identifier))
            if found is None:
                found = index.context_default.get(kind)
            if found is None:
                raise RatingError(
                    f"service identifier {request.service_identifier} is not a {kind} service "
                    f"of {request.tenant}"
                )
            return found
        found = index.default_service.get(kind) or index.context_default.get(kind)
        if found is None:
            raise RatingError(
                f"{request.tenant} has no default {kind} service; a rating group is needed"
            )
        return found

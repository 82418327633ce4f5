"""The validated catalog: frozen, typed, integers only. Built by ``tariffs.loader`` from YAML.

Units: money in micro-units of the tenant currency; time in epoch seconds; usage in the service's
unit (``byte``, ``second`` or ``event``). Telephone numbers are E.164 digits without ``+``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from tariffs.numbers import Duration
from tariffs.price import Price
from tariffs.timebands import TimeBand

Unit = Literal["byte", "second", "event"]
ContextKind = Literal["data", "ims", "mms", "sms", "mmtel"]
OnExhaust = Literal["payg", "block"]
FinalAction = Literal["TERMINATE", "REDIRECT", "RESTRICT_ACCESS"]
TenantStatus = Literal["active", "suspended"]
# Which leg of a call a rate row prices: "mo" the subscriber's own outgoing usage (priced by
# destination), "mt" a terminating leg, the subscriber being called (priced by zone only).
Leg = Literal["mo", "mt"]
# The two statuses as module constants: the loader stores these very objects, so the charging
# hot path's ``tenant.status is SUSPENDED`` is one identity check.
ACTIVE: TenantStatus = "active"
SUSPENDED: TenantStatus = "suspended"
# The largest single top-up (micro-units) when a tenant's catalog does not set ``topup_max``:
# a typo of a few zeros (``1e9``) is refused instead of credited.
TOPUP_MAX_DEFAULT = 1_000_000_000  # 1,000.00 in the tenant currency

# Service-Context-Id suffixes (3GPP TS 32.299 §7.1.12, the spec number of each charging domain).
CONTEXT_SUFFIXES: dict[str, ContextKind] = {
    "32251": "data",
    "32260": "ims",
    "32270": "mms",
    "32274": "sms",
    "32275": "mmtel",
}


class Service(msgspec.Struct, frozen=True):
    """A chargeable service of a tenant and how requests are recognised as it.

    A request belongs to this service when its Service-Context-Id is of ``context`` and its
    Rating-Group is in ``rating_groups`` (or, with no Rating-Group, its Service-Identifier is in
    ``service_identifiers``; with neither, when this service is the context's ``default``).
    """

    name: str
    unit: Unit
    context: ContextKind
    rating_groups: tuple[int, ...] = ()
    service_identifiers: tuple[int, ...] = ()
    default: bool = False
    default_grant_units: int = 0
    max_grant_units: int = 0


class Zone(msgspec.Struct, frozen=True):
    """Where the subscriber is: visited PLMNs (MCC+MNC) and/or whole countries (MCC)."""

    name: str
    plmns: tuple[str, ...] = ()
    mccs: tuple[str, ...] = ()
    default: bool = False


class Destination(msgspec.Struct, frozen=True):
    """A named set of E.164 prefixes; the longest matching prefix over all sets wins."""

    name: str
    prefixes: tuple[str, ...]


class RateRow(msgspec.Struct, frozen=True):
    """The price of ``service`` usage; ``None`` in zone/dest/band means any. ``leg`` "mt" rows
    price terminating legs (IMS Role-Of-Node TERMINATING) and never name a destination."""

    service: str
    zone: str | None
    dest: str | None
    band: str | None
    price: Price
    leg: Leg = "mo"


class RateCard(msgspec.Struct, frozen=True):
    """One version of the tenant's rates, used for usage at or after ``effective_from``."""

    version: str
    effective_from: int
    rates: tuple[RateRow, ...]


class Allowance(msgspec.Struct, frozen=True):
    """Units a bundle gives; its ledger bucket kind is ``<bundle id>.<name>``."""

    name: str
    service: str
    unit: Unit
    amount: int
    rating_groups: tuple[int, ...] = ()  # empty: all of the service's rating groups
    zones: tuple[str, ...] = ()  # empty: every zone


class Bundle(msgspec.Struct, frozen=True):
    id: str
    fee: int
    validity: Duration
    priority: int
    on_exhaust: OnExhaust
    allowances: tuple[Allowance, ...]
    # At a renewal: units of each allowance carried into the new bucket (0: the rest expires).
    rollover_cap: int = 0


def bucket_kind(bundle_id: str, allowance_name: str) -> str:
    """The name the ledger stores bucket instances of an allowance under."""
    return f"{bundle_id}.{allowance_name}"


class SubscriberRange(msgspec.Struct, frozen=True):
    """IMSIs ``imsi_first..imsi_last`` paired in order with MSISDNs from ``msisdn_first``."""

    imsi_first: str
    imsi_last: str
    msisdn_first: str
    msisdn_last: str
    opening_balance: int
    bundles: tuple[str, ...]
    plan: str = ""  # "" = the tenant's own rate cards, no plan

    @property
    def size(self) -> int:
        return int(self.imsi_last) - int(self.imsi_first) + 1


class SubscriberEntry(msgspec.Struct, frozen=True):
    """One subscriber listed explicitly (IMSI optional: e.g. a SIP-only line)."""

    msisdn: str
    imsi: str | None
    opening_balance: int
    bundles: tuple[str, ...]
    plan: str = ""


Cycle = Literal["monthly", "calendar_month", "weekly", "daily"]


class Plan(msgspec.Struct, frozen=True):
    """A product a subscriber is on: the rate cards that price its usage and the bundles it
    includes. ``rate_cards`` is already resolved: the plan's own cards, or the tenant's cards
    with the plan's overriding rows applied (each version then named ``<card>@<plan>``, so the
    price key on every usage record names the plan)."""

    id: str
    rate_cards: tuple[RateCard, ...]
    bundles: tuple[str, ...] = ()
    fee: int = 0  # micro-units per cycle
    cycle: Cycle | None = None  # None: the plan has no recurring fee


class RenewalPolicy(msgspec.Struct, frozen=True):
    """What happens when a renewal's fee cannot be paid: the subscriber keeps service in a grace
    state for ``grace_s`` (renewal retried every ``retry_s``), then is suspended (blocked) until
    a retry succeeds, which unblocks it."""

    grace_s: int = 3 * 86_400
    retry_s: int = 6 * 3600


Proration = Literal["none", "daily"]
BucketsOnChange = Literal["keep", "expire", "replace"]


class PlanChangePolicy(msgspec.Struct, frozen=True):
    """A tenant's rules for an immediate plan change: how the fees are prorated (``none``: the
    new plan's fee in full, nothing back for the old plan; ``daily``: whole days, see
    ``tariffs.proration``) and what happens to the buckets the subscriber has (``keep`` them
    until their own expiry, ``expire`` them now, or ``replace`` them: their remainder moves into
    the new plan's bucket of the same unit)."""

    proration: Proration = "none"
    buckets: BucketsOnChange = "expire"


SwitchMode = Literal["tariff_time_change", "validity_cap"]


class TariffSwitch(msgspec.Struct, frozen=True):
    """How a grant crossing a tariff boundary is signalled (``tariffs.tariff_switch``)."""

    mode: SwitchMode = "tariff_time_change"
    jitter_s: int = 0  # validity_cap: grants end up to this much before the boundary


class FinalUnitAction(msgspec.Struct, frozen=True):
    """What the gateway does when the last grant is used (RFC 4006 Final-Unit-Action)."""

    action: FinalAction = "TERMINATE"
    redirect_url: str | None = None
    filter_id: str | None = None


class Tenant(msgspec.Struct, frozen=True):
    id: str
    currency: str
    country_code: str
    timezone: str
    home_zone: str
    services: tuple[Service, ...]
    zones: tuple[Zone, ...]
    destinations: tuple[Destination, ...]
    time_bands: tuple[TimeBand, ...]
    rate_cards: tuple[RateCard, ...]
    bundles: tuple[Bundle, ...]
    ranges: tuple[SubscriberRange, ...]
    entries: tuple[SubscriberEntry, ...]
    final_unit: FinalUnitAction
    national_prefix: str = "0"
    international_prefix: str = "00"
    # An aggregator suspends a tenant (unpaid, being offboarded) without touching its
    # subscribers: no new service, usage already consumed is still charged, refunds still paid.
    status: TenantStatus = ACTIVE
    topup_max: int = TOPUP_MAX_DEFAULT  # micro-units: the largest single top-up
    # Charging domain -> the service that charges a request of that domain whose Rating-Group /
    # Service-Identifier no service lists (a stock client's fixed ids, e.g. Kamailio
    # ims_charging's 100 / 1000 on 32260). A domain absent here refuses such a request (5031).
    context_defaults: tuple[tuple[ContextKind, str], ...] = ()
    # "Balance below" notification levels (micro-units): the ledger scripts write one
    # balance_below event per downward crossing of each (depleted / negative always).
    notify_balance_below: tuple[int, ...] = ()
    # "Bucket below N % of its size" levels (whole percents, descending): one bucket_below
    # event per bucket and downward crossing, decided in the same scripts.
    notify_bucket_below: tuple[int, ...] = ()
    # One bundle_expiring event per bucket this long before it expires (0: none), written by
    # the scheduled sweep (ocs.expiry_warnings).
    expiry_warning_s: int = 0
    # A new or SIM-swapped subscriber gets no grants (4010) until the host MNO's provisioning
    # plug-in confirms it (the dispatcher's confirms_provisioning plug-in answering ok).
    provisioning_hold: bool = False
    # How long the ledger recognises a retransmitted operation (and an event debit stays
    # refundable), in seconds; 0 = the deployment's [ledger] idempotency_ttl_s.
    idempotency_ttl_s: int = 0
    source: str = ""
    plans: tuple[Plan, ...] = ()
    # Bundles a subscriber may buy (``ocs account buy``), each at its bundle's ``fee``.
    addons: tuple[str, ...] = ()
    renewal: RenewalPolicy = RenewalPolicy()
    plan_change: PlanChangePolicy = PlanChangePolicy()
    tariff_switch: TariffSwitch = TariffSwitch()

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def bundle(self, bundle_id: str) -> Bundle | None:
        return next((b for b in self.bundles if b.id == bundle_id), None)

    def plan(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)


class Catalog(msgspec.Struct, frozen=True):
    """A deployment's tenants (one YAML file each), checked together."""

    tenants: tuple[Tenant, ...]

    def tenant(self, tenant_id: str) -> Tenant | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

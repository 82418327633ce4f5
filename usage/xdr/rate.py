"""An ``XdrRecord`` → who pays and the priced ledger legs, with the catalog online uses.

Resolution and rating are the online ones (``tariffs.subscribers.Resolver``,
``tariffs.rating.Rater``), so the same usage costs the same offline and online:

- the tenant and subscriber come from the IMSI (else the MSISDN) against the catalog's ranges
  and entries; a mapping bound to one tenant refuses subscribers of another;
- voice seconds run from the start time and are split at tariff boundaries (time band, new
  rate card) exactly as an online call's seconds are (``balance.legs.time_legs``, the same
  function online charging uses);
- data volume and SMS count are priced at the start time (online prices a report within the
  tariff period its grant was bounded to; a record is one such period).
"""

from __future__ import annotations

import msgspec

from balance.legs import time_legs
from balance.records import OnExhaust, RecordContext, UsedLeg
from tariffs.errors import RatingError
from tariffs.model import Catalog
from tariffs.price import retail, wholesale
from tariffs.rating import Rater, Rating, UsageRequest
from tariffs.subscribers import Resolver, SubscriberRef
from usage.xdr.records import XdrRecord
from usage.xdr.rejects import Reason, Rejected


class RatedRecord(msgspec.Struct, frozen=True):
    """A record ready for the ledger. ``retail`` / ``wholesale`` are the full prices of the
    usage (what ``--rate-only`` reports); the ledger then says how much bundles paid."""

    record: XdrRecord
    tenant: str
    subscriber: str
    service: str
    rating_group: int
    legs: tuple[UsedLeg, ...]
    kinds: tuple[str, ...]
    on_exhaust: OnExhaust
    block_kinds: tuple[str, ...]
    retail: int
    wholesale: int
    rate_card_version: str
    zone: str
    destination: str
    currency: str
    msisdn: str
    imsi: str

    def op_id(self, mno: str) -> str:
        return f"xdr:{mno}:{self.record.record_id}"

    def context(self, mno: str, file: str) -> RecordContext:
        record = self.record
        return RecordContext(
            source="offline",
            host_mno=mno,
            msisdn=self.msisdn,
            imsi=self.imsi,
            started_at_s=float(record.started_at_s),
            called=record.called,
            calling=record.calling,
            visited_plmn=record.visited_plmn,
            apn=record.apn,
            charging_id=record.charging_id,
            rate_card_version=self.rate_card_version,
            currency=self.currency,
            source_ref=f"{file}:{record.line}",
        )


class XdrRater:
    """Resolves and rates the records of one import against one catalog snapshot."""

    def __init__(self, catalog: Catalog, *, tenant: str | None = None) -> None:
        self.catalog = catalog
        self.resolver = Resolver(catalog)
        self.rater = Rater(catalog)
        self.only_tenant = tenant
        self.currencies = {t.id: t.currency for t in catalog.tenants}

    def resolve(self, record: XdrRecord) -> SubscriberRef:
        ref = None
        if record.imsi:
            ref = self.resolver.by_imsi(record.imsi)
        if ref is None and record.msisdn:
            ref = self.resolver.by_msisdn(record.msisdn)
        if ref is None:
            who = f"IMSI {record.imsi}" if record.imsi else f"MSISDN {record.msisdn}"
            raise Rejected(Reason.UNKNOWN_SUBSCRIBER, f"{who} is in no tenant's ranges")
        if self.only_tenant is not None and ref.tenant != self.only_tenant:
            raise Rejected(
                Reason.UNKNOWN_SUBSCRIBER,
                f"subscriber {ref.subscriber_id} belongs to {ref.tenant}, not {self.only_tenant}",
            )
        return ref

    def rate(self, record: XdrRecord, ref: SubscriberRef | None = None) -> RatedRecord:
        """Price ``record`` (``ref``: its subscriber when the caller resolved it already)."""
        if ref is None:
            ref = self.resolve(record)
        tenant = self.rater.tenant(ref.tenant)
        service_name = record.service.service
        service = tenant.service(service_name) if tenant is not None else None
        if tenant is None or service is None:
            raise Rejected(
                Reason.UNKNOWN_SERVICE, f"tenant {ref.tenant} has no service {service_name!r}"
            )
        group = record.rating_group
        if group is None and service.rating_groups:
            group = service.rating_groups[0]

        def rate_at(at: int) -> Rating:
            return self.rater.rate(
                UsageRequest(
                    tenant=ref.tenant,
                    now=at,
                    service=service_name,
                    rating_group=group,
                    visited_plmn=record.visited_plmn or None,
                    called_number=f"+{record.called}" if record.called else None,
                    plan=ref.plan,  # the subscriber's plan, resolved with its tenant
                )
            )

        start = record.started_at_s
        try:
            first = rate_at(start)
            if service.unit == "second" and record.quantity > 0:
                legs = time_legs(record.quantity, start + record.quantity, rate_at)
            else:
                legs = [UsedLeg(first.price_key, record.quantity, first.price)]
        except RatingError as exc:
            raise Rejected(Reason.NO_RATE, str(exc)) from None
        full_retail = full_wholesale = 0
        for leg in legs:
            full_retail += retail(leg.price, leg.units)
            full_wholesale += wholesale(leg.price, leg.units)
        return RatedRecord(
            record=record,
            tenant=ref.tenant,
            subscriber=ref.subscriber_id,
            service=service_name,
            rating_group=group or 0,
            legs=tuple(legs),
            kinds=first.bucket_kinds,
            on_exhaust=OnExhaust(first.on_exhaust),
            block_kinds=first.block_kinds,
            retail=full_retail,
            wholesale=full_wholesale,
            rate_card_version=first.version,
            zone=first.zone,
            destination=first.destination or "",
            currency=self.currencies.get(ref.tenant, ""),
            msisdn=ref.subscriber_id,
            imsi=ref.imsi or record.imsi,
        )

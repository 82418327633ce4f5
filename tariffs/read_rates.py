"""Catalog sections that say what usage costs: time bands, effective-dated rate cards and their
rate rows."""

from __future__ import annotations

from typing import cast

from yaml.nodes import Node

from tariffs.catalog_schema import (
    BAND_KEYS,
    CARD_KEYS,
    RATE_KEYS,
    VERSION_RE,
    clock_minutes,
    instant,
    weekday_range,
)
from tariffs.model import (
    Destination,
    Leg,
    RateCard,
    RateRow,
    Service,
)
from tariffs.price import Price, PriceError, rate_fraction
from tariffs.section_reader import SectionReader
from tariffs.timebands import (
    MINUTES_PER_DAY,
    TimeBand,
    describe_minute,
    find_overlaps,
    first_gap,
)


class RateSections(SectionReader):
    """Reads ``time_bands`` and ``rate_cards`` (with their ``rates`` rows)."""

    def _bands(self, node: Node | None) -> list[TimeBand]:
        r = self.r
        if node is None:
            return [TimeBand("any", default=True)]
        bands: list[TimeBand] = []
        band_nodes: dict[str, Node] = {}
        default_band: str | None = None
        for name, _key, value in self._named(node, "time_bands"):
            field = f"time_bands.{name}"
            m = r.mapping(value, field, BAND_KEYS)
            if m is None:
                continue
            band_nodes[name] = value
            is_default = r.boolean(m["default"], f"{field}.default") if "default" in m else False
            if is_default:
                if set(m) - {"default"}:
                    r.problem(value, field, "the default band takes no days, from or to")
                if default_band is not None:
                    r.problem(
                        m["default"],
                        f"{field}.default",
                        f"band {default_band} is already the default",
                    )
                default_band = name
                bands.append(TimeBand(name, default=True))
                continue
            missing = [k for k in ("days", "from", "to") if k not in m]
            if missing:
                r.problem(value, field, f"needs {', '.join(missing)} (or default: true)")
                continue
            day_lists = r.list_of(
                m["days"], f"{field}.days", lambda n, f: r.convert(n, f, weekday_range)
            )
            start = r.convert(m["from"], f"{field}.from", clock_minutes)
            end = r.convert(m["to"], f"{field}.to", clock_minutes)
            if day_lists is None or start is None or end is None:
                continue
            if start in (end, MINUTES_PER_DAY):
                r.problem(m["from"], f"{field}.from", "from and to make an empty window")
                continue
            days = tuple(sorted({d for ds in day_lists for d in ds}))
            bands.append(TimeBand(name, days, start, end))
        for name, other, minute in find_overlaps(bands):
            r.problem(
                band_nodes[name],
                f"time_bands.{name}",
                f"overlaps band {other} at {describe_minute(minute)}",
            )
        if bands and default_band is None:
            gap = first_gap(bands)
            if gap is not None:
                r.problem(
                    node,
                    "time_bands",
                    f"no band covers {describe_minute(gap)} and none is default: true",
                )
        return bands

    def _cards(
        self,
        top: dict[str, Node],
        root: Node,
        services: dict[str, Service],
        zones: set[str],
        destinations: dict[str, Destination],
        bands: list[TimeBand],
    ) -> list[RateCard]:
        r = self.r
        band_names = {b.name for b in bands}
        if "rates" in top and "rate_cards" in top:
            r.problem(top["rate_cards"], "rate_cards", "give either rates or rate_cards, not both")
            return []
        if "rates" in top:
            version = "1"
            if "version" in top:
                version = r.string(top["version"], "version", VERSION_RE, "a version name") or "1"
            rows = self._rates(top["rates"], "rates", services, zones, destinations, band_names)
            return [RateCard(version, 0, tuple(rows))]
        if "version" in top:
            r.problem(
                top["version"], "version", "version belongs to rates; use rate_cards[].version"
            )
        if "rate_cards" not in top:
            r.problem(root, "rates", "a tenant needs rates (or rate_cards)")
            return []
        cards: list[RateCard] = []
        card_nodes = r.sequence(top["rate_cards"], "rate_cards") or []
        seen_versions: set[str] = set()
        for index, card_node in enumerate(card_nodes):
            field = f"rate_cards[{index}]"
            m = r.mapping(card_node, field, CARD_KEYS, ("version", "effective_from", "rates"))
            if m is None or len(m) < 3:
                continue
            card_version = r.string(m["version"], f"{field}.version", VERSION_RE, "a version name")
            effective = r.convert(m["effective_from"], f"{field}.effective_from", instant)
            rows = self._rates(
                m["rates"], f"{field}.rates", services, zones, destinations, band_names
            )
            if card_version is None or effective is None:
                continue
            if card_version in seen_versions:
                r.problem(
                    m["version"], f"{field}.version", f"version {card_version} is given twice"
                )
            if cards and effective <= cards[-1].effective_from:
                r.problem(
                    m["effective_from"],
                    f"{field}.effective_from",
                    "rate cards must be in order of strictly later effective_from",
                )
            seen_versions.add(card_version)
            cards.append(RateCard(card_version, effective, tuple(rows)))
        if not cards and not card_nodes:
            r.problem(top["rate_cards"], "rate_cards", "at least one rate card is needed")
        return cards

    def _rates(
        self,
        node: Node,
        field: str,
        services: dict[str, Service],
        zones: set[str],
        destinations: dict[str, Destination],
        bands: set[str],
    ) -> list[RateRow]:
        r = self.r
        rows: list[RateRow] = []
        dest_names = set(destinations)
        seen: dict[tuple[str, str, str | None, str | None, str | None], int] = {}
        for index, row_node in enumerate(r.sequence(node, field) or []):
            where = f"{field}[{index}]"
            m = r.mapping(row_node, where, RATE_KEYS, ("service", "price", "cost"))
            if m is None or not {"service", "price", "cost"} <= set(m):
                continue
            ok = True
            service = r.string(m["service"], f"{where}.service")
            if service is not None and service not in services:
                r.problem(m["service"], f"{where}.service", f"service {service!r} is not defined")
                ok = False
            refs: dict[str, str | None] = {}
            for key, known, what in (
                ("zone", zones, "zones"),
                ("dest", dest_names, "destinations"),
                ("band", bands, "time_bands"),
            ):
                refs[key] = None
                if key in m:
                    name = r.string(m[key], f"{where}.{key}")
                    if name is not None and name not in known:
                        r.problem(m[key], f"{where}.{key}", f"{name!r} is not defined under {what}")
                        ok = False
                    refs[key] = name
            leg = r.string(m["leg"], f"{where}.leg") if "leg" in m else "mo"
            if leg not in ("mo", "mt"):
                if leg is not None:
                    r.problem(m["leg"], f"{where}.leg", f"{leg!r} is not mo or mt")
                ok = False
            elif leg == "mt" and refs["dest"] is not None:
                # The subscriber is the called party: the number in the request is their own.
                r.problem(
                    m["dest"], f"{where}.dest", "an mt row prices by zone and band, not destination"
                )
                ok = False
            price = r.money(m["price"], f"{where}.price", self.currency)
            cost = r.money(m["cost"], f"{where}.cost", self.currency)
            per = r.integer(m["per"], f"{where}.per", 1) if "per" in m else 1
            first = (
                r.integer(m["first_increment"], f"{where}.first_increment", 0)
                if ("first_increment" in m)
                else 0
            )
            step = r.integer(m["increment"], f"{where}.increment", 1) if "increment" in m else 1
            fee = (
                r.money(m["connect_fee"], f"{where}.connect_fee", self.currency)
                if ("connect_fee" in m)
                else 0
            )
            minimum = (
                r.money(m["minimum"], f"{where}.minimum", self.currency) if ("minimum" in m) else 0
            )
            if None in (service, price, cost, per, first, step, fee, minimum) or not ok:
                continue
            assert service is not None and price is not None and cost is not None
            assert per is not None and first is not None and step is not None
            assert fee is not None and minimum is not None
            the_price = Price(
                *rate_fraction(price, per),
                *rate_fraction(cost, per),
                first_units=first,
                step_units=step,
                connect_fee=fee,
                min_charge=minimum,
            )
            try:
                the_price.check()
            except PriceError as exc:
                r.problem(m["price"], f"{where}.price", f"{exc} (price {price}/{per} units)")
                continue
            row_key = (service, cast(str, leg), refs["zone"], refs["dest"], refs["band"])
            if row_key in seen:
                r.problem(
                    row_node, where, f"same service/leg/zone/dest/band as {field}[{seen[row_key]}]"
                )
                continue
            seen[row_key] = index
            rows.append(
                RateRow(
                    service,
                    refs["zone"],
                    refs["dest"],
                    refs["band"],
                    the_price,
                    cast(Leg, leg),
                )
            )
        return rows

"""Catalog loader: one YAML file per tenant (a directory of them for a deployment) → ``Catalog``.

Every problem is collected and reported together as ``file:line: field: what is wrong``; the
only exception this module raises is ``CatalogError``. This module reads a file's top level and
checks claims across the deployment; the sections are read by ``tariffs.read_services``,
``tariffs.read_rates``, ``tariffs.read_subscribers`` and ``tariffs.plans``, on the shared helpers
of ``tariffs.section_reader`` and the vocabulary of ``tariffs.catalog_schema``. The format is
documented field by field in ``docs/reference/`` and the commented demo in ``examples/catalog/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from yaml.nodes import Node

from tariffs.catalog_schema import (
    CATALOG_FILE_BYTES_MAX,
    CATALOG_FILES_MAX,
    COUNTRY_CODE_RE,
    DIGITS_RE,
    NAME_RE,
    TENANT_KEYS,
    Claim,
)
from tariffs.currencies import ISO_4217
from tariffs.errors import CatalogError, Problem
from tariffs.model import (
    TOPUP_MAX_DEFAULT,
    Catalog,
    FinalUnitAction,
    Tenant,
)
from tariffs.plans import read_addons, read_plan_change, read_plans, read_renewal
from tariffs.read_notifications import read_notifications
from tariffs.read_rates import RateSections
from tariffs.read_services import ServiceSections
from tariffs.read_subscribers import SubscriberSections
from tariffs.tariff_switch import read_tariff_switch
from tariffs.yamlread import compose, read_files


class TenantReader(ServiceSections, RateSections, SubscriberSections):
    """Reads one tenant file; problems go to the shared list, the Tenant is None if any."""

    def read(self, root: Node) -> Tenant | None:
        start = len(self.problems)
        r = self.r
        top = r.mapping(root, "", TENANT_KEYS, ("tenant", "currency", "country_code", "timezone"))
        if top is None:
            return None
        get = top.get
        tenant_id = self._opt(
            get("tenant"),
            "tenant",
            lambda n, f: r.string(
                n, f, NAME_RE, "a tenant id (lowercase letters, digits, - and _)"
            ),
        )
        self.currency = self._opt(
            get("currency"),
            "currency",
            lambda n, f: r.string(n, f, ISO_4217, "an ISO 4217 currency code like EUR"),
        )
        country = self._opt(
            get("country_code"),
            "country_code",
            lambda n, f: r.string(n, f, COUNTRY_CODE_RE, "a country calling code like 49"),
        )
        national = self._opt(
            get("national_prefix"),
            "national_prefix",
            lambda n, f: r.string(n, f, DIGITS_RE, "digits"),
        )
        international = self._opt(
            get("international_prefix"),
            "international_prefix",
            lambda n, f: r.string(n, f, DIGITS_RE, "digits"),
        )
        timezone = self._opt(get("timezone"), "timezone", self._timezone)
        final_unit = self._final_unit(get("final_unit"))
        status = self._status(get("status"))
        window = self._idempotency_window(get("idempotency_window"))
        services = self._services(get("services"))
        context_defaults = self._context_defaults(get("context_defaults"), services)
        zones = self._zones(get("zones"))
        zone_names = {z.name for z in zones}
        home_zone = "home"
        if "home_zone" in top:
            home_zone = r.string(top["home_zone"], "home_zone") or home_zone
        if home_zone not in zone_names:
            where = top.get("home_zone", root)
            r.problem(where, "home_zone", f"zone {home_zone!r} is not defined under zones")
        destinations = self._destinations(get("destinations"))
        bands = self._bands(get("time_bands"))
        cards = self._cards(top, root, services, zone_names, destinations, bands)
        bundles = self._bundles(get("bundles"), services, zone_names)
        band_names = {b.name for b in bands}
        plans = read_plans(
            self,
            get("plans"),
            cards,
            bundles,
            lambda n, f: self._rates(n, f, services, zone_names, destinations, band_names),
            lambda n: self._cards({"rate_cards": n}, n, services, zone_names, destinations, bands),
        )
        addons = read_addons(self, get("addons"), bundles)
        renewal = read_renewal(self, get("renewal"))
        plan_change = read_plan_change(self, get("plan_change"))
        tariff_switch = read_tariff_switch(self.r, get("tariff_switch"))
        ranges, entries = self._subscribers(
            get("subscribers"), bundles, tenant_id or "?", set(plans)
        )
        topup_max = TOPUP_MAX_DEFAULT
        if "topup_max" in top:
            amount = r.money(top["topup_max"], "topup_max", self.currency)
            if amount is not None and amount <= 0:
                r.problem(top["topup_max"], "topup_max", "must be a positive amount")
            topup_max = amount or TOPUP_MAX_DEFAULT
        notify = read_notifications(r, top.get("notifications"), self.currency)
        hold = top.get("provisioning_hold")
        provisioning_hold = bool(hold is not None and r.boolean(hold, "provisioning_hold"))
        if len(self.problems) > start or tenant_id is None:
            return None
        return Tenant(
            id=tenant_id,
            currency=cast(str, self.currency),
            country_code=cast(str, country),
            timezone=cast(str, timezone),
            home_zone=home_zone,
            services=tuple(services.values()),
            zones=tuple(zones),
            destinations=tuple(destinations.values()),
            time_bands=tuple(bands),
            rate_cards=tuple(cards),
            bundles=tuple(bundles.values()),
            ranges=tuple(ranges),
            entries=tuple(entries),
            final_unit=final_unit or FinalUnitAction(),
            national_prefix="0" if national is None else national,
            international_prefix="00" if international is None else international,
            status=status,
            topup_max=topup_max,
            context_defaults=context_defaults,
            notify_balance_below=notify.balance_below,
            notify_bucket_below=notify.bucket_below,
            expiry_warning_s=notify.expiry_warning_s,
            provisioning_hold=provisioning_hold,
            idempotency_ttl_s=window,
            source=self.file,
            plans=tuple(plans.values()),
            addons=addons,
            renewal=renewal,
            plan_change=plan_change,
            tariff_switch=tariff_switch,
        )


def _check_claims(claims: list[Claim], problems: list[Problem]) -> None:
    """IMSIs and MSISDNs are each claimed by at most one range or entry in the deployment."""
    for kind in ("IMSI", "MSISDN"):
        ordered = sorted(
            (c for c in claims if c.kind == kind), key=lambda c: (len(c.first), int(c.first))
        )
        reach: Claim | None = None
        for claim in ordered:
            if (
                reach is not None
                and len(reach.first) == len(claim.first)
                and int(claim.first) <= int(reach.last)
            ):
                owner = "tenant " + reach.tenant if reach.tenant != claim.tenant else "this tenant"
                problems.append(
                    Problem(
                        claim.file,
                        claim.line,
                        f"subscribers ({kind})",
                        f"{kind} {claim.first}..{claim.last} overlaps {reach.first}..{reach.last} "
                        f"claimed by {owner} at {reach.file}:{reach.line}",
                    )
                )
                if int(claim.last) <= int(reach.last):
                    continue
            reach = claim


def read_sources(path: str | Path) -> tuple[list[tuple[str, str]], list[Problem]]:
    """The ``(file name, text)`` of a tenant file or of a directory's ``*.yaml``/``*.yml``
    files, and the problems met reading them (a missing path raises CatalogError)."""
    root = Path(path)
    problems: list[Problem] = []
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if not files:
            raise CatalogError([Problem(str(root), 0, "(catalog)", "no *.yaml tenant files here")])
        if len(files) > CATALOG_FILES_MAX:
            raise CatalogError([Problem(str(root), 0, "(catalog)", "too many tenant files")])
    elif root.is_file():
        files = [root]
    else:
        raise CatalogError([Problem(str(root), 0, "(catalog)", "no such file or directory")])
    sources = read_files(files, CATALOG_FILE_BYTES_MAX, problems)
    return sources, problems


def load_catalog(path: str | Path) -> Catalog:
    """A tenant file, or a directory of ``*.yaml``/``*.yml`` tenant files → a checked Catalog."""
    return load_catalog_sources(path)[0]


def load_catalog_sources(path: str | Path) -> tuple[Catalog, list[tuple[str, str]]]:
    """``load_catalog``, also returning the texts it was built from (to share them)."""
    sources, problems = read_sources(path)
    try:
        catalog = load_texts(sources)
    except CatalogError as exc:
        raise CatalogError([*problems, *exc.problems]) from None
    if problems:
        raise CatalogError(problems)
    return catalog, sources


def load_texts(sources: list[tuple[str, str]]) -> Catalog:
    """``[(file name, YAML text)]`` → a checked Catalog (what ``load_catalog`` does after I/O)."""
    problems: list[Problem] = []
    tenants: list[Tenant] = []
    claims: list[Claim] = []
    owners: dict[str, str] = {}
    for file, text in sources:
        node = compose(text, file, problems)
        if node is None:
            if not any(p.file == file for p in problems):
                problems.append(Problem(file, 1, "(file)", "empty: a tenant file is a mapping"))
            continue
        reader = TenantReader(file, problems)
        tenant = reader.read(node)
        claims.extend(reader.claims)
        if tenant is None:
            continue
        if tenant.id in owners:
            problems.append(
                Problem(
                    file, 1, "tenant", f"tenant {tenant.id} is also defined in {owners[tenant.id]}"
                )
            )
            continue
        owners[tenant.id] = file
        tenants.append(tenant)
    _check_claims(claims, problems)
    if problems:
        order = {file: index for index, (file, _) in enumerate(sources)}
        problems.sort(key=lambda p: (order.get(p.file, -1), p.line))
        raise CatalogError(problems)
    return Catalog(tuple(tenants))

"""Loader of the wholesale side of the catalog, beside the tenant files and in the same style:
every problem is collected and reported as ``file:line: field: what is wrong``.

Layout (kept out of the tenant files, which stay about retail)::

    <catalog>/wholesale/<mno>.yaml    one host MNO: zones, wholesale price list, tolerances
    <catalog>/contracts/<tenant>.yaml one MVNO's contract with the aggregator

The tenant loader reads only ``<catalog>/*.yaml``, so these sub-directories never disturb it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import Node, ScalarNode

from settlement.model import (
    PPM,
    Contract,
    HostMno,
    Markup,
    Matching,
    MnoZone,
    SettlementCatalog,
    Tolerance,
    Unit,
    WholesalePrice,
)
from tariffs.errors import CatalogError, Problem
from tariffs.model import Catalog
from tariffs.yamlread import Reader, compose, read_files

FILE_BYTES_MAX = 4 * 1024 * 1024
FILES_MAX = 1000
PRICES_MAX = 10_000
MATCH_WINDOW_S_MAX = 3600

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_PLMN = re.compile(r"[0-9]{5,6}")
_MCC = re.compile(r"[0-9]{3}")
_UNITS: tuple[Unit, ...] = ("byte", "second", "event")

MNO_KEYS = frozenset(
    {
        "host_mno",
        "name",
        "currency",
        "timezone",
        "home_zone",
        "services",
        "zones",
        "prices",
        "tolerances",
        "matching",
    }
)
ZONE_KEYS = frozenset({"plmns", "mccs", "default"})
PRICE_KEYS = frozenset({"service", "zone", "price", "per"})
TOLERANCE_KEYS = frozenset({"quantity", "quantity_percent", "money", "money_percent"})
MATCHING_KEYS = frozenset({"start_s"})
CONTRACT_KEYS = frozenset(
    {
        "tenant",
        "currency",
        "host_mnos",
        "margin_percent",
        "markups",
        "platform_fee",
        "minimum_commitment",
        "rejected_disputes",
    }
)
MARKUP_KEYS = frozenset({"service", "amount", "per"})


def parse_percent(text: str) -> int:
    """``"12.5"`` or ``"12.5%"`` → parts per million (125_000); at most 4 decimals, 0..100."""
    body = text.strip().removesuffix("%").strip()
    try:
        value = Decimal(body)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r} is not a percentage (e.g. 12.5)") from exc
    if not value.is_finite() or value < 0 or value > 100:
        raise ValueError(f"{text!r} is not a percentage between 0 and 100")
    ppm = value * (PPM // 100)
    if ppm != ppm.to_integral_value():
        raise ValueError(f"{text!r} has more than 4 decimals")
    return int(ppm)


class _Files:
    """Common readers for both file kinds."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.r = Reader(file, problems)
        self.file = file

    def name(self, node: Node, field: str) -> str | None:
        return self.r.string(node, field, _NAME, "a name (lowercase letters, digits, - and _)")

    def named(self, node: Node, field: str) -> list[tuple[str, Node]]:
        entries = self.r.mapping(node, field)
        if entries is None:
            return []
        out: list[tuple[str, Node]] = []
        for name, value in entries.items():
            if not _NAME.fullmatch(name):
                self.r.problem(
                    value, f"{field}.{name}", "names are lowercase letters, digits, -, _"
                )
                continue
            out.append((name, value))
        return out

    def timezone(self, node: Node, field: str) -> str | None:
        name = self.r.string(node, field)
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.r.problem(node, field, f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)")
            return None
        return name


class _MnoReader(_Files):
    def read(self, root: Node) -> HostMno | None:
        r = self.r
        start = len(r.problems)
        top = r.mapping(root, "", MNO_KEYS, ("host_mno", "currency", "services", "zones", "prices"))
        if top is None:
            return None
        mno_id = self.name(top["host_mno"], "host_mno") if "host_mno" in top else None
        label = r.string(top["name"], "name") if "name" in top else None
        currency = (
            r.string(top["currency"], "currency", _CURRENCY, "an ISO 4217 code")
            if "currency" in top
            else None
        )
        tz = self.timezone(top["timezone"], "timezone") if "timezone" in top else "UTC"
        services = self._services(top["services"]) if "services" in top else {}
        zones = self._zones(top["zones"]) if "zones" in top else []
        zone_names = {z.name for z in zones}
        home = "home"
        if "home_zone" in top:
            home = self.name(top["home_zone"], "home_zone") or home
            node = top["home_zone"]
        else:
            node = root
        if zones and home not in zone_names:
            r.problem(node, "home_zone", f"zone {home!r} is not defined in zones")
        prices = (
            self._prices(top["prices"], services, zone_names, currency) if "prices" in top else []
        )
        tolerances = (
            self._tolerances(top["tolerances"], services, currency) if "tolerances" in top else {}
        )
        matching = Matching()
        if "matching" in top:
            m = r.mapping(top["matching"], "matching", MATCHING_KEYS)
            if m and "start_s" in m:
                start_s = r.integer(m["start_s"], "matching.start_s", 0, MATCH_WINDOW_S_MAX)
                matching = Matching(start_s=start_s if start_s is not None else 5)
        if len(r.problems) > start or mno_id is None or currency is None or tz is None:
            return None
        return HostMno(
            id=mno_id,
            name=label or mno_id,
            currency=currency,
            timezone=tz,
            home_zone=home,
            services=services,
            zones=tuple(zones),
            prices=tuple(prices),
            tolerances=tolerances,
            matching=matching,
            source=self.file,
        )

    def _services(self, node: Node) -> dict[str, Unit]:
        out: dict[str, Unit] = {}
        for name, value in self.named(node, "services"):
            unit = self.r.scalar_text(value, f"services.{name}")
            if unit is None:
                continue
            if unit not in _UNITS:
                self.r.problem(value, f"services.{name}", f"{unit!r} is not byte, second or event")
                continue
            out[name] = unit  # type: ignore[assignment]
        if not out:
            self.r.problem(node, "services", "at least one service is needed")
        return out

    def _zones(self, node: Node) -> list[MnoZone]:
        r = self.r
        zones: list[MnoZone] = []
        owner: dict[str, str] = {}
        default: str | None = None
        for name, value in self.named(node, "zones"):
            field = f"zones.{name}"
            m = r.mapping(value, field, ZONE_KEYS)
            if m is None:
                continue
            plmns = (
                r.list_of(
                    m["plmns"], f"{field}.plmns", lambda n, f: r.string(n, f, _PLMN, "a PLMN")
                )
                if "plmns" in m
                else []
            ) or []
            mccs = (
                r.list_of(m["mccs"], f"{field}.mccs", lambda n, f: r.string(n, f, _MCC, "an MCC"))
                if "mccs" in m
                else []
            ) or []
            for key in (*plmns, *mccs):
                other = owner.setdefault(key, name)
                if other != name:
                    r.problem(value, field, f"{key} is also in zone {other}")
            is_default = (
                bool(r.boolean(m["default"], f"{field}.default")) if "default" in m else False
            )
            if is_default:
                if default is not None:
                    r.problem(m["default"], f"{field}.default", f"zone {default} is the default")
                default = name
            zones.append(MnoZone(name, tuple(plmns), tuple(mccs), is_default))
        if not zones:
            r.problem(node, "zones", "at least one zone is needed")
        return zones

    def _prices(
        self, node: Node, services: dict[str, Unit], zones: set[str], currency: str | None
    ) -> list[WholesalePrice]:
        r = self.r
        rows: list[WholesalePrice] = []
        seen: dict[tuple[str, str], int] = {}
        items = r.sequence(node, "prices") or []
        if len(items) > PRICES_MAX:
            r.problem(node, "prices", f"more than {PRICES_MAX} rows")
            return rows
        for index, item in enumerate(items):
            field = f"prices[{index}]"
            m = r.mapping(item, field, PRICE_KEYS, ("service", "price"))
            if m is None or "service" not in m or "price" not in m:
                continue
            service = r.string(m["service"], f"{field}.service")
            if service is not None and service not in services:
                r.problem(m["service"], f"{field}.service", f"service {service!r} is not defined")
                service = None
            zone = r.string(m["zone"], f"{field}.zone") if "zone" in m else "*"
            if zone is not None and zone != "*" and zone not in zones:
                r.problem(m["zone"], f"{field}.zone", f"zone {zone!r} is not defined")
                zone = None
            amount = r.money(m["price"], f"{field}.price", currency)
            per = r.integer(m["per"], f"{field}.per", 1, 2**40) if "per" in m else 1
            if service is None or zone is None or amount is None or per is None:
                continue
            key = (service, zone)
            if key in seen:
                r.problem(
                    item, field, f"{service} in zone {zone} is already priced in row {seen[key]}"
                )
                continue
            seen[key] = index
            rows.append(WholesalePrice(service, zone, amount, per))
        return rows

    def _tolerances(
        self, node: Node, services: dict[str, Unit], currency: str | None
    ) -> dict[str, Tolerance]:
        r = self.r
        out: dict[str, Tolerance] = {}
        for service, value in self.named(node, "tolerances"):
            field = f"tolerances.{service}"
            if service not in services:
                r.problem(value, field, f"service {service!r} is not defined")
                continue
            m = r.mapping(value, field, TOLERANCE_KEYS)
            if m is None:
                continue
            q = r.integer(m["quantity"], f"{field}.quantity") if "quantity" in m else 0
            qp = (
                r.convert(m["quantity_percent"], f"{field}.quantity_percent", parse_percent)
                if "quantity_percent" in m
                else 0
            )
            money = r.money(m["money"], f"{field}.money", currency) if "money" in m else 0
            mp = (
                r.convert(m["money_percent"], f"{field}.money_percent", parse_percent)
                if "money_percent" in m
                else 0
            )
            if q is None or qp is None or money is None or mp is None:
                continue
            out[service] = Tolerance(q, qp, money, mp)
        return out


class _ContractReader(_Files):
    def read(self, root: Node) -> tuple[Contract, dict[str, int]] | None:
        """The contract and the line of each key (for the cross-file checks)."""
        r = self.r
        start = len(r.problems)
        top = r.mapping(root, "", CONTRACT_KEYS, ("tenant", "currency", "host_mnos"))
        if top is None:
            return None
        # the line of each key (not of its value, which may start on the next line)
        lines = {
            str(k.value): int(k.start_mark.line) + 1
            for k, _ in getattr(root, "value", [])
            if isinstance(k, ScalarNode)
        }
        tenant = self.name(top["tenant"], "tenant") if "tenant" in top else None
        currency = (
            r.string(top["currency"], "currency", _CURRENCY, "an ISO 4217 code")
            if "currency" in top
            else None
        )
        mnos = (
            r.list_of(top["host_mnos"], "host_mnos", self.name) if "host_mnos" in top else []
        ) or []
        if "host_mnos" in top and not mnos:
            r.problem(top["host_mnos"], "host_mnos", "at least one host MNO is needed")
        margin = (
            r.convert(top["margin_percent"], "margin_percent", parse_percent)
            if "margin_percent" in top
            else 0
        )
        markups: list[Markup] = []
        if "markups" in top:
            for index, item in enumerate(r.sequence(top["markups"], "markups") or []):
                field = f"markups[{index}]"
                m = r.mapping(item, field, MARKUP_KEYS, ("service", "amount"))
                if m is None or "service" not in m or "amount" not in m:
                    continue
                service = r.string(m["service"], f"{field}.service")
                amount = r.money(m["amount"], f"{field}.amount", currency)
                per = r.integer(m["per"], f"{field}.per", 1, 2**40) if "per" in m else 1
                if service is None or amount is None or per is None:
                    continue
                if any(x.service == service for x in markups):
                    r.problem(item, field, f"service {service} has a markup already")
                    continue
                markups.append(Markup(service, amount, per))
        fee = r.money(top["platform_fee"], "platform_fee", currency) if "platform_fee" in top else 0
        commitment = (
            r.money(top["minimum_commitment"], "minimum_commitment", currency)
            if "minimum_commitment" in top
            else 0
        )
        rejected = "absorb"
        if "rejected_disputes" in top:
            text = r.scalar_text(top["rejected_disputes"], "rejected_disputes")
            if text not in ("absorb", "pass_through"):
                r.problem(
                    top["rejected_disputes"], "rejected_disputes", "expected absorb or pass_through"
                )
            else:
                rejected = text
        if len(r.problems) > start or tenant is None or currency is None:
            return None
        assert margin is not None and fee is not None and commitment is not None
        contract = Contract(
            tenant=tenant,
            currency=currency,
            host_mnos=tuple(mnos),
            margin_ppm=margin,
            markups=tuple(markups),
            platform_fee=fee,
            minimum_commitment=commitment,
            rejected_disputes=rejected,  # type: ignore[arg-type]
            source=self.file,
        )
        return contract, lines


def _sources(directory: Path, problems: list[Problem]) -> list[tuple[str, str]]:
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if len(files) > FILES_MAX:
        problems.append(Problem(str(directory), 0, "(catalog)", f"more than {FILES_MAX} files"))
        return []
    return read_files(files, FILE_BYTES_MAX, problems)


def load_settlement_texts(
    mno_sources: list[tuple[str, str]],
    contract_sources: list[tuple[str, str]],
    tenants: Catalog | None = None,
) -> SettlementCatalog:
    """Parse and cross-check; ``tenants`` (when given) checks that contracts name real tenants
    in their currency and that markups name the tenant's services."""
    problems: list[Problem] = []
    mnos: dict[str, HostMno] = {}
    for file, text in mno_sources:
        node = compose(text, file, problems)
        if node is None:
            if not any(p.file == file for p in problems):
                problems.append(Problem(file, 1, "(file)", "empty: a host MNO file is a mapping"))
            continue
        mno = _MnoReader(file, problems).read(node)
        if mno is None:
            continue
        if mno.id in mnos:
            problems.append(
                Problem(file, 1, "host_mno", f"{mno.id} is also defined in {mnos[mno.id].source}")
            )
            continue
        mnos[mno.id] = mno
    contracts: dict[str, Contract] = {}
    for file, text in contract_sources:
        node = compose(text, file, problems)
        if node is None:
            if not any(p.file == file for p in problems):
                problems.append(Problem(file, 1, "(file)", "empty: a contract file is a mapping"))
            continue
        read = _ContractReader(file, problems).read(node)
        if read is None:
            continue
        contract, lines = read
        _cross_check(contract, lines, mnos, tenants, problems)
        if contract.tenant in contracts:
            problems.append(
                Problem(
                    file,
                    lines["tenant"],
                    "tenant",
                    f"{contract.tenant} has a contract in {contracts[contract.tenant].source}",
                )
            )
            continue
        contracts[contract.tenant] = contract
    if problems:
        raise CatalogError(problems)
    return SettlementCatalog(tuple(mnos.values()), tuple(contracts.values()))


def _cross_check(
    contract: Contract,
    lines: dict[str, int],
    mnos: dict[str, HostMno],
    tenants: Catalog | None,
    problems: list[Problem],
) -> None:
    file = contract.source
    for mno_id in contract.host_mnos:
        mno = mnos.get(mno_id)
        if mno is None:
            problems.append(
                Problem(
                    file, lines["host_mnos"], "host_mnos", f"host MNO {mno_id!r} is not defined"
                )
            )
        elif mno.currency != contract.currency:
            problems.append(
                Problem(
                    file,
                    lines["currency"],
                    "currency",
                    f"{contract.currency} differs from host MNO {mno_id}'s {mno.currency} "
                    "(settlement does not convert currencies)",
                )
            )
    if tenants is None:
        return
    tenant = tenants.tenant(contract.tenant)
    if tenant is None:
        problems.append(
            Problem(file, lines["tenant"], "tenant", f"tenant {contract.tenant!r} is not defined")
        )
        return
    if tenant.currency != contract.currency:
        problems.append(
            Problem(
                file,
                lines["currency"],
                "currency",
                f"{contract.currency} differs from tenant {tenant.id}'s {tenant.currency}",
            )
        )
    for markup in contract.markups:
        if tenant.service(markup.service) is None:
            problems.append(
                Problem(
                    file,
                    lines["markups"],
                    "markups",
                    f"service {markup.service!r} is not a service of tenant {tenant.id}",
                )
            )


def load_settlement_catalog(path: str | Path, tenants: Catalog | None = None) -> SettlementCatalog:
    """``<path>/wholesale/*.yaml`` and ``<path>/contracts/*.yaml`` → a checked catalog."""
    root = Path(path)
    if root.is_file():
        root = root.parent
    problems: list[Problem] = []
    mno_sources = _sources(root / "wholesale", problems)
    contract_sources = _sources(root / "contracts", problems)
    if not mno_sources and not problems:
        problems.append(
            Problem(str(root / "wholesale"), 0, "(catalog)", "no host MNO files (wholesale/*.yaml)")
        )
    try:
        catalog = load_settlement_texts(mno_sources, contract_sources, tenants)
    except CatalogError as exc:
        raise CatalogError([*problems, *exc.problems]) from None
    if problems:
        raise CatalogError(problems)
    return catalog

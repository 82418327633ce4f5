"""Catalog loader: one YAML file per tenant (a directory of them for a deployment) → ``Catalog``.

Every problem is collected and reported together as ``file:line: field: what is wrong``; the
only exception this module raises is ``CatalogError``. The format is documented field by field
in the README (catalog section) and the commented demo in ``examples/catalog/``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import Node, ScalarNode

from tariffs.currencies import ISO_4217
from tariffs.errors import CatalogError, Problem
from tariffs.model import (
    ACTIVE,
    SUSPENDED,
    TOPUP_MAX_DEFAULT,
    Allowance,
    Bundle,
    Catalog,
    ContextKind,
    Destination,
    FinalAction,
    FinalUnitAction,
    Leg,
    OnExhaust,
    RateCard,
    RateRow,
    Service,
    SubscriberEntry,
    SubscriberRange,
    Tenant,
    TenantStatus,
    Unit,
    Zone,
)
from tariffs.numbers import parse_duration
from tariffs.plans import read_addons, read_plan_ref, read_plans, read_renewal, read_rollover
from tariffs.price import Price, PriceError, rate_fraction
from tariffs.timebands import (
    MINUTES_PER_DAY,
    WEEKDAYS,
    TimeBand,
    describe_minute,
    find_overlaps,
    first_gap,
)
from tariffs.yamlread import Reader, compose, line_of, read_files

CATALOG_FILE_BYTES_MAX = 64 * 1024 * 1024
CATALOG_FILES_MAX = 10_000
# Bounds of a tenant's idempotency window: a minute (Diameter retransmissions) to 90 days (each
# operation's record is kept that long in Redis: memory grows with the window).
IDEMPOTENCY_WINDOW_S = (60, 90 * 86400)
# IANA zone names: ASCII words joined by "/" (the longest is 32 characters).
TIMEZONE_CHARS_MAX = 64
_TIMEZONE_RE = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
SUBSCRIBER_RANGE_SIZE_MAX = 100_000_000

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_DIGITS = re.compile(r"[0-9]{1,15}")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
_PLMN = re.compile(r"[0-9]{5,6}")
_MCC = re.compile(r"[0-9]{3}")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00")
_STR_TAG = "tag:yaml.org,2002:str"
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")

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
        "plans",
        "addons",
        "renewal",
    }
)
NOTIFICATION_KEYS = frozenset({"balance_below"})
BALANCE_BELOW_MAX = 8  # levels per tenant (each CCR carries them to the ledger script)
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


class _Claim:
    """An IMSI or MSISDN range a tenant claims, kept for the deployment-wide overlap check."""

    __slots__ = ("file", "first", "kind", "last", "line", "tenant")

    def __init__(self, kind: str, first: str, last: str, tenant: str, file: str, line: int):
        self.kind, self.first, self.last = kind, first, last
        self.tenant, self.file, self.line = tenant, file, line


def _clock_minutes(text: str) -> int:
    if not _CLOCK.fullmatch(text):
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00..24:00)")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _days(text: str) -> list[int]:
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


def _instant(text: str) -> int:
    """ISO 8601 date-time with an offset (``2026-01-01T00:00:00+01:00``) → epoch seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (write e.g. 2026-01-01T00:00:00+01:00)")
    return int(moment.timestamp())


class _TenantReader:
    """Reads one tenant file; problems go to the shared list, the Tenant is None if any."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.r = Reader(file, problems)
        self.file = file
        self.problems = problems
        self.claims: list[_Claim] = []
        self.currency: str | None = None

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
            lambda n, f: r.string(n, f, _NAME, "a tenant id (lowercase letters, digits, - and _)"),
        )
        self.currency = self._opt(
            get("currency"),
            "currency",
            lambda n, f: r.string(n, f, ISO_4217, "an ISO 4217 currency code like EUR"),
        )
        country = self._opt(
            get("country_code"),
            "country_code",
            lambda n, f: r.string(n, f, _COUNTRY_CODE, "a country calling code like 49"),
        )
        national = self._opt(
            get("national_prefix"),
            "national_prefix",
            lambda n, f: r.string(n, f, _DIGITS, "digits"),
        )
        international = self._opt(
            get("international_prefix"),
            "international_prefix",
            lambda n, f: r.string(n, f, _DIGITS, "digits"),
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
        ranges, entries = self._subscribers(
            get("subscribers"), bundles, tenant_id or "?", set(plans)
        )
        topup_max = TOPUP_MAX_DEFAULT
        if "topup_max" in top:
            amount = r.money(top["topup_max"], "topup_max", self.currency)
            if amount is not None and amount <= 0:
                r.problem(top["topup_max"], "topup_max", "must be a positive amount")
            topup_max = amount or TOPUP_MAX_DEFAULT
        balance_below = self._notifications(top.get("notifications"))
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
            notify_balance_below=balance_below,
            idempotency_ttl_s=window,
            source=self.file,
            plans=tuple(plans.values()),
            addons=addons,
            renewal=renewal,
        )

    def _notifications(self, node: Node | None) -> tuple[int, ...]:
        """``notifications: {balance_below: [5.00, 1.00]}``: levels whose downward crossing
        sends the subscriber one notification (edge-triggered in the ledger scripts)."""
        r = self.r
        if node is None:
            return ()
        top = r.mapping(node, "notifications", NOTIFICATION_KEYS)
        if top is None or "balance_below" not in top:
            return ()
        items = r.sequence(top["balance_below"], "notifications.balance_below")
        if items is None:
            return ()
        if len(items) > BALANCE_BELOW_MAX:
            r.problem(top["balance_below"], "notifications.balance_below",
                      f"at most {BALANCE_BELOW_MAX} levels")  # fmt: skip
            return ()
        levels: list[int] = []
        for item in items:
            amount = r.money(item, "notifications.balance_below", self.currency)
            if amount is not None and amount <= 0:
                r.problem(item, "notifications.balance_below", "levels must be positive amounts")
            elif amount is not None:
                levels.append(amount)
        return tuple(sorted(set(levels)))

    # -- small helpers ---------------------------------------------------------------------

    @staticmethod
    def _opt(node: Node | None, field: str, read: object) -> str | None:
        if node is None:
            return None
        return cast("str | None", read(node, field))  # type: ignore[operator]

    def _idempotency_window(self, node: Node | None) -> int:
        """How long the ledger recognises a retransmission (and a debit stays refundable):
        an ISO 8601 duration of whole days, hours, minutes or seconds; 0 = the default."""
        if node is None:
            return 0
        field = "idempotency_window"
        duration = self.r.convert(node, field, parse_duration)
        if duration is None:
            return 0
        low, high = IDEMPOTENCY_WINDOW_S
        if duration.months or not low <= duration.seconds <= high:
            self.r.problem(
                node, field, f"must be {low} s to {high // 86400} days, in D/H/M/S (e.g. P7D)"
            )
            return 0
        return duration.seconds

    def _timezone(self, node: Node, field: str) -> str | None:
        name = self.r.string(node, field)
        if name is None:
            return None
        try:
            # The name becomes a path under the tz database: check its shape before zoneinfo
            # opens it ("Europe" is a directory, 300 characters are too long for a file name).
            if len(name) > TIMEZONE_CHARS_MAX or not _TIMEZONE_RE.fullmatch(name):
                raise ValueError(name)
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.r.problem(node, field, f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)")
            return None
        return name

    def _named(self, node: Node | None, field: str) -> list[tuple[str, Node, Node]]:
        """A mapping of ``name: definition`` → [(name, name node, definition node)]."""
        if node is None:
            return []
        entries = self.r.mapping(node, field)
        if entries is None:
            return []
        out = []
        assert hasattr(node, "value")
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, ScalarNode) else ""
            if name not in entries or entries[name] is not value_node:
                continue
            if not _NAME.fullmatch(name):
                self.r.problem(
                    key_node, f"{field}.{name}", "names are lowercase letters, digits, - and _"
                )
                continue
            out.append((name, key_node, value_node))
        return out

    def _int_list(self, node: Node | None, field: str) -> tuple[int, ...]:
        if node is None:
            return ()
        values = self.r.list_of(node, field, lambda n, f: self.r.integer(n, f, 0, 2**32 - 1))
        return tuple(values or ())

    def _name_list(self, node: Node | None, field: str) -> tuple[str, ...]:
        if node is None:
            return ()
        values = self.r.list_of(node, field, lambda n, f: self.r.string(n, f))
        return tuple(values or ())

    # -- sections --------------------------------------------------------------------------

    def _final_unit(self, node: Node | None) -> FinalUnitAction | None:
        if node is None:
            return None
        r = self.r
        m = r.mapping(node, "final_unit", FINAL_UNIT_KEYS, ("action",))
        if m is None or "action" not in m:
            return None
        action = r.string(m["action"], "final_unit.action")
        if action not in ("TERMINATE", "REDIRECT", "RESTRICT_ACCESS"):
            if action is not None:
                r.problem(
                    m["action"],
                    "final_unit.action",
                    f"{action!r} is not TERMINATE, REDIRECT or RESTRICT_ACCESS",
                )
            return None
        url = (
            r.string(m["redirect_url"], "final_unit.redirect_url") if "redirect_url" in m else None
        )
        filter_id = r.string(m["filter_id"], "final_unit.filter_id") if "filter_id" in m else None
        if action == "REDIRECT" and url is None:
            r.problem(node, "final_unit.redirect_url", "REDIRECT needs the top-up URL")
        if action == "RESTRICT_ACCESS" and filter_id is None:
            r.problem(node, "final_unit.filter_id", "RESTRICT_ACCESS needs a filter id")
        return FinalUnitAction(cast(FinalAction, action), url, filter_id)

    def _status(self, node: Node | None) -> TenantStatus:
        """``active`` (the default) or ``suspended``, as the model's own constants."""
        if node is None:
            return ACTIVE
        text = self.r.string(node, "status")
        if text == SUSPENDED:
            return SUSPENDED
        if text != ACTIVE and text is not None:
            self.r.problem(node, "status", f"{text!r} is not active or suspended")
        return ACTIVE

    def _services(self, node: Node | None) -> dict[str, Service]:
        r = self.r
        services: dict[str, Service] = {}
        claimed_groups: dict[tuple[str, int], str] = {}
        claimed_ids: dict[tuple[str, int], str] = {}
        defaults: dict[str, str] = {}
        if node is None:
            self.r.problem(1, "services", "required key is missing")
            return services
        for name, _key_node, value in self._named(node, "services"):
            field = f"services.{name}"
            m = r.mapping(value, field, SERVICE_KEYS, ("context", "unit"))
            if m is None:
                continue
            context = r.string(m["context"], f"{field}.context") if "context" in m else None
            if context is not None and context not in CONTEXTS:
                r.problem(
                    m["context"],
                    f"{field}.context",
                    f"{context!r} is not one of {', '.join(CONTEXTS)}",
                )
                context = None
            unit = r.string(m["unit"], f"{field}.unit") if "unit" in m else None
            if unit is not None and unit not in UNITS:
                r.problem(m["unit"], f"{field}.unit", f"{unit!r} is not one of {', '.join(UNITS)}")
                unit = None
            groups = self._int_list(m.get("rating_groups"), f"{field}.rating_groups")
            ids = self._int_list(m.get("service_identifiers"), f"{field}.service_identifiers")
            is_default = r.boolean(m["default"], f"{field}.default") if "default" in m else False
            grant_default, grant_max = DEFAULT_GRANTS.get(unit or "", (1, 1))
            if "default_grant" in m:
                grant_default = r.integer(m["default_grant"], f"{field}.default_grant", 1) or 1
            if "max_grant" in m:
                grant_max = r.integer(m["max_grant"], f"{field}.max_grant", 1) or grant_max
            if grant_default > grant_max:
                r.problem(
                    m.get("default_grant", value),
                    f"{field}.default_grant",
                    f"{grant_default} is above max_grant {grant_max}",
                )
            if context is None or unit is None:
                continue
            for group in groups:
                other = claimed_groups.setdefault((context, group), name)
                if other != name:
                    r.problem(
                        m["rating_groups"],
                        f"{field}.rating_groups",
                        f"rating group {group} is already service {other!r}'s in context {context}",
                    )
            for ident in ids:
                other = claimed_ids.setdefault((context, ident), name)
                if other != name:
                    r.problem(
                        m["service_identifiers"],
                        f"{field}.service_identifiers",
                        f"service identifier {ident} is already service {other!r}'s",
                    )
            if is_default:
                other = defaults.setdefault(context, name)
                if other != name:
                    r.problem(
                        m["default"],
                        f"{field}.default",
                        f"service {other!r} is already the default of context {context}",
                    )
            services[name] = Service(
                name=name,
                unit=cast(Unit, unit),
                context=cast(ContextKind, context),
                rating_groups=groups,
                service_identifiers=ids,
                default=bool(is_default),
                default_grant_units=grant_default,
                max_grant_units=grant_max,
            )
        if not services and not any(p.field.startswith("services") for p in self.problems):
            r.problem(node, "services", "at least one service is needed")
        return services

    def _context_defaults(
        self, node: Node | None, services: dict[str, Service]
    ) -> tuple[tuple[ContextKind, str], ...]:
        """``context_defaults: {ims: voice}``: which service charges a request of a context whose
        Rating-Group / Service-Identifier no service lists (unlisted contexts refuse: 5031)."""
        out: list[tuple[ContextKind, str]] = []
        for context, key_node, value in self._named(node, "context_defaults"):
            field = f"context_defaults.{context}"
            if context not in CONTEXTS:
                self.r.problem(key_node, field, f"{context!r} is not one of {', '.join(CONTEXTS)}")
                continue
            name = self.r.string(value, field)
            if name is None:
                continue
            if name not in services:
                if not any(p.field.startswith(f"services.{name}") for p in self.problems):
                    self.r.problem(value, field, f"service {name!r} is not defined under services")
                continue
            out.append((cast(ContextKind, context), name))
        return tuple(out)

    def _zones(self, node: Node | None) -> list[Zone]:
        r = self.r
        zones: list[Zone] = []
        plmn_owner: dict[str, str] = {}
        mcc_owner: dict[str, str] = {}
        default_zone: str | None = None
        if node is None:
            r.problem(1, "zones", "required key is missing")
            return zones
        for name, _key, value in self._named(node, "zones"):
            field = f"zones.{name}"
            m = r.mapping(value, field, ZONE_KEYS)
            if m is None:
                continue
            plmns = (
                r.list_of(
                    m["plmns"],
                    f"{field}.plmns",
                    lambda n, f: r.string(n, f, _PLMN, "an MCC+MNC of 5 or 6 digits"),
                )
                if "plmns" in m
                else []
            )
            mccs = (
                r.list_of(
                    m["mccs"], f"{field}.mccs", lambda n, f: r.string(n, f, _MCC, "a 3-digit MCC")
                )
                if "mccs" in m
                else []
            )
            is_default = r.boolean(m["default"], f"{field}.default") if "default" in m else False
            for plmn in plmns or ():
                other = plmn_owner.setdefault(plmn, name)
                if other != name:
                    r.problem(m["plmns"], f"{field}.plmns", f"PLMN {plmn} is also in zone {other}")
            for mcc in mccs or ():
                other = mcc_owner.setdefault(mcc, name)
                if other != name:
                    r.problem(m["mccs"], f"{field}.mccs", f"MCC {mcc} is also in zone {other}")
            if is_default:
                if default_zone is not None:
                    r.problem(
                        m["default"],
                        f"{field}.default",
                        f"zone {default_zone} is already the default",
                    )
                default_zone = name
            zones.append(Zone(name, tuple(plmns or ()), tuple(mccs or ()), bool(is_default)))
        return zones

    def _destinations(self, node: Node | None) -> dict[str, Destination]:
        r = self.r
        out: dict[str, Destination] = {}
        owner: dict[str, str] = {}
        for name, _key, value in self._named(node, "destinations"):
            field = f"destinations.{name}"
            items: list[Node] | None
            if isinstance(value, ScalarNode) and value.tag == _STR_TAG:
                # Compact form for big tables: "4915 4916 4917" (one YAML node, not thousands).
                items = [
                    ScalarNode(_STR_TAG, text, value.start_mark, value.end_mark)
                    for text in str(value.value).split()
                ]
            else:
                items = r.sequence(value, field)
            if items is None:
                continue
            texts = [item.value for item in items if type(item) is ScalarNode]
            # Fast path for big tables: all distinct digit strings no other destination holds.
            fresh = set(texts)
            if (
                len(texts) == len(items) == len(fresh)
                and all(0 < len(t) <= 15 for t in texts)
                and "".join(texts).isdigit()
                and "".join(texts).isascii()
                and owner.keys().isdisjoint(fresh)
            ):
                owner.update(dict.fromkeys(texts, name))
                out[name] = Destination(name, tuple(texts))
                continue
            prefixes: list[str] = []
            for index, item in enumerate(items):
                text = item.value if isinstance(item, ScalarNode) else None
                if (
                    not isinstance(text, str)
                    or not (text.isascii() and text.isdigit())
                    or (len(text) > 15)
                ):
                    r.problem(item, f"{field}[{index}]", "a prefix is 1 to 15 digits (E.164)")
                    continue
                other = owner.setdefault(text, name)
                if other != name:
                    r.problem(item, f"{field}[{index}]", f"prefix {text} is also in {other}")
                    continue
                if text in prefixes:
                    r.problem(item, f"{field}[{index}]", f"prefix {text} is given twice")
                    continue
                prefixes.append(text)
            out[name] = Destination(name, tuple(prefixes))
        return out

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
            day_lists = r.list_of(m["days"], f"{field}.days", lambda n, f: r.convert(n, f, _days))
            start = r.convert(m["from"], f"{field}.from", _clock_minutes)
            end = r.convert(m["to"], f"{field}.to", _clock_minutes)
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
                version = r.string(top["version"], "version", _VERSION, "a version name") or "1"
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
            card_version = r.string(m["version"], f"{field}.version", _VERSION, "a version name")
            effective = r.convert(m["effective_from"], f"{field}.effective_from", _instant)
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

    def _bundles(
        self, node: Node | None, services: dict[str, Service], zones: set[str]
    ) -> dict[str, Bundle]:
        r = self.r
        bundles: dict[str, Bundle] = {}
        if node is None:
            return bundles
        for index, bundle_node in enumerate(r.sequence(node, "bundles") or []):
            field = f"bundles[{index}]"
            m = r.mapping(bundle_node, field, BUNDLE_KEYS, ("id", "validity", "allowances"))
            if m is None or not {"id", "validity", "allowances"} <= set(m):
                continue
            bundle_id = r.string(m["id"], f"{field}.id", _NAME, "a name (a-z, 0-9, - and _)")
            fee = r.money(m["fee"], f"{field}.fee", self.currency) if "fee" in m else 0
            validity = r.convert(m["validity"], f"{field}.validity", parse_duration)
            priority = (
                r.integer(m["priority"], f"{field}.priority", 0, 1_000_000)
                if ("priority" in m)
                else 0
            )
            on_exhaust = (
                r.string(m["on_exhaust"], f"{field}.on_exhaust") if ("on_exhaust" in m) else "payg"
            )
            if on_exhaust not in (None, "payg", "block"):
                r.problem(
                    m["on_exhaust"], f"{field}.on_exhaust", f"{on_exhaust!r} is not payg or block"
                )
                on_exhaust = None
            allowances = self._allowances(m["allowances"], f"{field}.allowances", services, zones)
            if bundle_id is not None and bundle_id in bundles:
                r.problem(m["id"], f"{field}.id", f"bundle {bundle_id} is defined twice")
                continue
            if None in (bundle_id, fee, validity, priority, on_exhaust) or allowances is None:
                continue
            assert bundle_id is not None and fee is not None and validity is not None
            assert priority is not None
            bundles[bundle_id] = Bundle(
                bundle_id,
                fee,
                validity,
                priority,
                cast(OnExhaust, on_exhaust),
                tuple(allowances),
                read_rollover(self, m, field),
            )
        return bundles

    def _allowances(
        self, node: Node, field: str, services: dict[str, Service], zones: set[str]
    ) -> list[Allowance] | None:
        r = self.r
        items = r.sequence(node, field)
        if items is None:
            return None
        if not items:
            r.problem(node, field, "a bundle needs at least one allowance")
            return None
        out: list[Allowance] = []
        names: set[str] = set()
        failed = False
        for index, item in enumerate(items):
            where = f"{field}[{index}]"
            m = r.mapping(item, where, ALLOWANCE_KEYS, ("service", "amount"))
            if m is None or not {"service", "amount"} <= set(m):
                failed = True
                continue
            service_name = r.string(m["service"], f"{where}.service")
            service = services.get(service_name or "")
            if service_name is not None and service is None:
                r.problem(
                    m["service"],
                    f"{where}.service",
                    f"no service {service_name!r}: the allowance could never be used",
                )
            name = (
                r.string(m["name"], f"{where}.name", _NAME, "a name")
                if "name" in m
                else (service_name)
            )
            amount = r.integer(m["amount"], f"{where}.amount", 1)
            groups = self._int_list(m.get("rating_groups"), f"{where}.rating_groups")
            scope_zones = self._name_list(m.get("zones"), f"{where}.zones")
            for zone in scope_zones:
                if zone not in zones:
                    r.problem(m["zones"], f"{where}.zones", f"zone {zone!r} is not defined")
                    failed = True
            if service is not None:
                stray = [g for g in groups if g not in service.rating_groups]
                if stray:
                    r.problem(
                        m["rating_groups"],
                        f"{where}.rating_groups",
                        f"rating groups {stray} are not service {service.name!r}'s",
                    )
                    failed = True
            if name is not None and name in names:
                r.problem(item, f"{where}.name", f"allowance {name!r} is given twice in the bundle")
                failed = True
            if service is None or name is None or amount is None:
                failed = True
                continue
            names.add(name)
            out.append(Allowance(name, service.name, service.unit, amount, groups, scope_zones))
        return None if failed else out

    def _subscribers(
        self,
        node: Node | None,
        bundles: dict[str, Bundle],
        tenant: str,
        plans: set[str] | None = None,
    ) -> tuple[list[SubscriberRange], list[SubscriberEntry]]:
        r = self.r
        ranges: list[SubscriberRange] = []
        entries: list[SubscriberEntry] = []
        if node is None:
            return ranges, entries
        m = r.mapping(node, "subscribers", SUBSCRIBERS_KEYS)
        if m is None:
            return ranges, entries
        balance, bundle_ids = self._opening(m, "subscribers", 0, (), bundles)
        plan_ids = plans or set()
        plan = read_plan_ref(self, m, "subscribers", "", plan_ids)
        for index, item in enumerate(
            r.sequence(m["ranges"], "subscribers.ranges") or [] if "ranges" in m else []
        ):
            field = f"subscribers.ranges[{index}]"
            rm = r.mapping(
                item, field, RANGE_KEYS, ("imsi_first", "imsi_last", "msisdn_first", "msisdn_last")
            )
            if (
                rm is None
                or len({"imsi_first", "imsi_last", "msisdn_first", "msisdn_last"} & set(rm)) < 4
            ):
                continue
            ends = {
                k: r.string(rm[k], f"{field}.{k}", _DIGITS, "1 to 15 digits")
                for k in ("imsi_first", "imsi_last", "msisdn_first", "msisdn_last")
            }
            own_balance, own_bundles = self._opening(rm, field, balance, bundle_ids, bundles)
            own_plan = read_plan_ref(self, rm, field, plan, plan_ids)
            if None in ends.values():
                continue
            imsi_first, imsi_last = cast(str, ends["imsi_first"]), cast(str, ends["imsi_last"])
            msisdn_first, msisdn_last = (
                cast(str, ends["msisdn_first"]),
                cast(str, ends["msisdn_last"]),
            )
            if len(imsi_first) != len(imsi_last) or int(imsi_last) < int(imsi_first):
                r.problem(
                    rm["imsi_last"],
                    f"{field}.imsi_last",
                    "must have as many digits as imsi_first and not be below it",
                )
                continue
            if len(msisdn_first) != len(msisdn_last) or int(msisdn_last) < int(msisdn_first):
                r.problem(
                    rm["msisdn_last"],
                    f"{field}.msisdn_last",
                    "must have as many digits as msisdn_first and not be below it",
                )
                continue
            size = int(imsi_last) - int(imsi_first) + 1
            if int(msisdn_last) - int(msisdn_first) + 1 != size:
                r.problem(
                    rm["msisdn_last"],
                    f"{field}.msisdn_last",
                    f"the MSISDN range must be as long as the IMSI range ({size})",
                )
                continue
            if size > SUBSCRIBER_RANGE_SIZE_MAX:
                r.problem(item, field, f"a range holds at most {SUBSCRIBER_RANGE_SIZE_MAX}")
                continue
            line = line_of(item)
            self.claims.append(_Claim("IMSI", imsi_first, imsi_last, tenant, self.file, line))
            self.claims.append(_Claim("MSISDN", msisdn_first, msisdn_last, tenant, self.file, line))
            ranges.append(
                SubscriberRange(
                    imsi_first,
                    imsi_last,
                    msisdn_first,
                    msisdn_last,
                    own_balance,
                    own_bundles,
                    own_plan,
                )
            )
        for index, item in enumerate(
            r.sequence(m["entries"], "subscribers.entries") or [] if "entries" in m else []
        ):
            field = f"subscribers.entries[{index}]"
            em = r.mapping(item, field, ENTRY_KEYS, ("msisdn",))
            if em is None or "msisdn" not in em:
                continue
            msisdn = r.string(em["msisdn"], f"{field}.msisdn", _DIGITS, "1 to 15 digits (E.164)")
            imsi = (
                r.string(em["imsi"], f"{field}.imsi", _DIGITS, "1 to 15 digits")
                if ("imsi" in em)
                else None
            )
            own_balance, own_bundles = self._opening(em, field, balance, bundle_ids, bundles)
            own_plan = read_plan_ref(self, em, field, plan, plan_ids)
            if msisdn is None or ("imsi" in em and imsi is None):
                continue
            line = line_of(item)
            self.claims.append(_Claim("MSISDN", msisdn, msisdn, tenant, self.file, line))
            if imsi is not None:
                self.claims.append(_Claim("IMSI", imsi, imsi, tenant, self.file, line))
            entries.append(SubscriberEntry(msisdn, imsi, own_balance, own_bundles, own_plan))
        return ranges, entries

    def _opening(
        self,
        m: dict[str, Node],
        field: str,
        balance: int,
        bundle_ids: tuple[str, ...],
        bundles: dict[str, Bundle],
    ) -> tuple[int, tuple[str, ...]]:
        """The opening balance and bundles, inherited from ``subscribers`` unless overridden."""
        r = self.r
        if "opening_balance" in m:
            balance = r.money(m["opening_balance"], f"{field}.opening_balance", self.currency) or 0
        if "bundles" in m:
            bundle_ids = self._name_list(m["bundles"], f"{field}.bundles")
            for bundle_id in bundle_ids:
                if bundle_id not in bundles:
                    r.problem(
                        m["bundles"], f"{field}.bundles", f"bundle {bundle_id!r} is not defined"
                    )
        return balance, bundle_ids


def _check_claims(claims: list[_Claim], problems: list[Problem]) -> None:
    """IMSIs and MSISDNs are each claimed by at most one range or entry in the deployment."""
    for kind in ("IMSI", "MSISDN"):
        ordered = sorted(
            (c for c in claims if c.kind == kind), key=lambda c: (len(c.first), int(c.first))
        )
        reach: _Claim | None = None
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
    claims: list[_Claim] = []
    owners: dict[str, str] = {}
    for file, text in sources:
        node = compose(text, file, problems)
        if node is None:
            if not any(p.file == file for p in problems):
                problems.append(Problem(file, 1, "(file)", "empty: a tenant file is a mapping"))
            continue
        reader = _TenantReader(file, problems)
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

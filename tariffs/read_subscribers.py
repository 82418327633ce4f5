"""Catalog sections that say who is charged and what they hold: bundles with their allowances,
subscriber ranges and entries, opening balances."""

from __future__ import annotations

from typing import cast

from yaml.nodes import Node

from tariffs.catalog_schema import (
    ALLOWANCE_KEYS,
    BUNDLE_KEYS,
    DIGITS_RE,
    ENTRY_KEYS,
    NAME_RE,
    RANGE_KEYS,
    SUBSCRIBER_RANGE_SIZE_MAX,
    SUBSCRIBERS_KEYS,
    Claim,
)
from tariffs.model import (
    Allowance,
    Bundle,
    OnExhaust,
    Service,
    SubscriberEntry,
    SubscriberRange,
)
from tariffs.numbers import parse_duration
from tariffs.plans import read_plan_ref, read_rollover
from tariffs.section_reader import SectionReader
from tariffs.yamlread import line_of


class SubscriberSections(SectionReader):
    """Reads ``bundles`` and ``subscribers`` (ranges, entries, opening balances and bundles)."""

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
            bundle_id = r.string(m["id"], f"{field}.id", NAME_RE, "a name (a-z, 0-9, - and _)")
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
                r.string(m["name"], f"{where}.name", NAME_RE, "a name")
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
                k: r.string(rm[k], f"{field}.{k}", DIGITS_RE, "1 to 15 digits")
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
            self.claims.append(Claim("IMSI", imsi_first, imsi_last, tenant, self.file, line))
            self.claims.append(Claim("MSISDN", msisdn_first, msisdn_last, tenant, self.file, line))
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
            msisdn = r.string(em["msisdn"], f"{field}.msisdn", DIGITS_RE, "1 to 15 digits (E.164)")
            imsi = (
                r.string(em["imsi"], f"{field}.imsi", DIGITS_RE, "1 to 15 digits")
                if ("imsi" in em)
                else None
            )
            own_balance, own_bundles = self._opening(em, field, balance, bundle_ids, bundles)
            own_plan = read_plan_ref(self, em, field, plan, plan_ids)
            if msisdn is None or ("imsi" in em and imsi is None):
                continue
            line = line_of(item)
            self.claims.append(Claim("MSISDN", msisdn, msisdn, tenant, self.file, line))
            if imsi is not None:
                self.claims.append(Claim("IMSI", imsi, imsi, tenant, self.file, line))
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

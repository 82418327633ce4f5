"""Catalog sections that say what is charged and where: services, context defaults, zones and
destinations."""

from __future__ import annotations

from typing import cast

from yaml.nodes import Node, ScalarNode

from tariffs.catalog_schema import (
    CONTEXTS,
    DEFAULT_GRANTS,
    MCC_RE,
    PLMN_RE,
    SERVICE_KEYS,
    STR_TAG,
    UNITS,
    ZONE_KEYS,
)
from tariffs.model import (
    ContextKind,
    Destination,
    Service,
    Unit,
    Zone,
)
from tariffs.section_reader import SectionReader


class ServiceSections(SectionReader):
    """Reads ``services``, ``context_defaults``, ``zones`` and ``destinations``."""

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
                    lambda n, f: r.string(n, f, PLMN_RE, "an MCC+MNC of 5 or 6 digits"),
                )
                if "plmns" in m
                else []
            )
            mccs = (
                r.list_of(
                    m["mccs"], f"{field}.mccs", lambda n, f: r.string(n, f, MCC_RE, "a 3-digit MCC")
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
            if isinstance(value, ScalarNode) and value.tag == STR_TAG:
                # Compact form for big tables: "4915 4916 4917" (one YAML node, not thousands).
                items = [
                    ScalarNode(STR_TAG, text, value.start_mark, value.end_mark)
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

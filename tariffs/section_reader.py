"""The state and small helpers every section reader of a tenant file shares."""

from __future__ import annotations

from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yaml.nodes import Node, ScalarNode

from tariffs.catalog_schema import (
    FINAL_UNIT_KEYS,
    IDEMPOTENCY_WINDOW_S,
    NAME_RE,
    TIMEZONE_CHARS_MAX,
    TIMEZONE_RE,
    Claim,
)
from tariffs.errors import Problem
from tariffs.model import (
    ACTIVE,
    SUSPENDED,
    FinalAction,
    FinalUnitAction,
    TenantStatus,
)
from tariffs.numbers import parse_duration
from tariffs.yamlread import Reader


class SectionReader:
    """State and small helpers shared by the section readers of one tenant file: problems go to
    the shared list, claims of IMSI/MSISDN ranges are kept for the deployment-wide check."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        self.r = Reader(file, problems)
        self.file = file
        self.problems = problems
        self.claims: list[Claim] = []
        self.currency: str | None = None

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
            if len(name) > TIMEZONE_CHARS_MAX or not TIMEZONE_RE.fullmatch(name):
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
            if not NAME_RE.fullmatch(name):
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

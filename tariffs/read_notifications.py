"""The ``notifications`` section of a tenant file: the thresholds whose crossing sends a
subscriber one notification, and the provisioning hold.

```yaml
notifications:
  balance_below: [5.00, 1.00]     # amounts in the tenant's currency
  bucket_below_percent: [50, 20]  # a bucket below N % of its size
  expiry_warning_days: 3          # a bucket expiring within D days
```

The first two are evaluated edge-triggered inside the ledger scripts; the expiry warning by the
scheduled sweep (``ocs.expiry_warnings``).
"""

from __future__ import annotations

import msgspec
from yaml.nodes import Node

from tariffs.catalog_schema import (
    BALANCE_BELOW_MAX,
    BUCKET_BELOW_MAX,
    EXPIRY_WARNING_DAYS_MAX,
    NOTIFICATION_KEYS,
)
from tariffs.yamlread import Reader

DAY_S = 86_400


class Notifications(msgspec.Struct, frozen=True):
    balance_below: tuple[int, ...] = ()  # micro-units, ascending
    bucket_below: tuple[int, ...] = ()  # whole percents, descending
    expiry_warning_s: int = 0  # 0: no warning


def read_notifications(r: Reader, node: Node | None, currency: str | None) -> Notifications:
    if node is None:
        return Notifications()
    top = r.mapping(node, "notifications", NOTIFICATION_KEYS)
    if top is None:
        return Notifications()
    return Notifications(
        _balance_levels(r, top.get("balance_below"), currency),
        _percents(r, top.get("bucket_below_percent")),
        _expiry_window(r, top.get("expiry_warning_days")),
    )


def _balance_levels(r: Reader, node: Node | None, currency: str | None) -> tuple[int, ...]:
    field = "notifications.balance_below"
    items = None if node is None else r.sequence(node, field)
    if node is None or items is None:
        return ()
    if len(items) > BALANCE_BELOW_MAX:
        r.problem(node, field, f"at most {BALANCE_BELOW_MAX} levels")
        return ()
    levels: list[int] = []
    for item in items:
        amount = r.money(item, field, currency)
        if amount is not None and amount <= 0:
            r.problem(item, field, "levels must be positive amounts")
        elif amount is not None:
            levels.append(amount)
    return tuple(sorted(set(levels)))


def _percents(r: Reader, node: Node | None) -> tuple[int, ...]:
    field = "notifications.bucket_below_percent"
    items = None if node is None else r.sequence(node, field)
    if node is None or items is None:
        return ()
    if len(items) > BUCKET_BELOW_MAX:
        r.problem(node, field, f"at most {BUCKET_BELOW_MAX} levels")
        return ()
    found = (r.integer(item, field, 1, 99) for item in items)
    return tuple(sorted({p for p in found if p is not None}, reverse=True))


def _expiry_window(r: Reader, node: Node | None) -> int:
    if node is None:
        return 0
    days = r.integer(node, "notifications.expiry_warning_days", 1, EXPIRY_WARNING_DAYS_MAX)
    return 0 if days is None else days * DAY_S

"""Usage rows for the store tests."""

from __future__ import annotations

from usage.row import UsageRow

# 2025-11-15T12:00:00Z, 2025-12-02T08:00:00Z and 2026-03-05T00:00:00Z
NOV_15 = 1_763_208_000.0
DEC_02 = 1_764_662_400.0
MAR_05 = 1_772_668_800.0


def make_row(tenant: str, n: int, *, ended_at_s: float = NOV_15, **fields: object) -> UsageRow:
    values: dict[str, object] = {
        "tenant": tenant,
        "vshard": n % 1024,
        "entry_id": f"{1_700_000_000_000 + n}-0",
        "kind": "usage",
        "source": "gy",
        "op_id": f"sess-{n};1",
        "session_id": f"sess-{n}",
        "subscriber": f"3361000{n:04d}",
        "msisdn": f"3361000{n:04d}",
        "service": "data",
        "rating_group": 10,
        "started_at_s": ended_at_s - 60.0,
        "ended_at_s": ended_at_s + n / 1000.0,
        "units": 1_000_000 + n,
        "unit": "bytes",
        "retail": 1_000 + n,
        "wholesale": 400 + n,
        "currency": "EUR",
        "leakage_money": n % 3,
        "money_delta": -(1_000 + n),
    }
    values.update(fields)
    return UsageRow(**values)  # type: ignore[arg-type]


def make_rows(tenant: str, count: int, *, first: int = 0, **fields: object) -> list[UsageRow]:
    return [make_row(tenant, n, **fields) for n in range(first, first + count)]

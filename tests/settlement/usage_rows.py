"""Usage rows on the demo host MNO for the settlement store tests."""

from __future__ import annotations

import itertools

from usage.row import UsageRow

_ids = itertools.count(1)

IMSI = {"acme": "2620199000000", "globex": "2620199100000"}  # + 2 digits: 15 digits
MSISDN = {"acme": "49170990000", "globex": "49171990000"}


def usage(
    tenant: str,
    sub: int,
    service: str,
    started_at_s: float,
    units: int,
    wholesale: int,
    *,
    visited_plmn: str = "",
    host_mno: str = "telco-de",
    kind: str = "usage",
) -> UsageRow:
    n = next(_ids)
    unit = {"data": "bytes", "voice": "seconds", "sms": "events"}[service]
    return UsageRow(
        tenant=tenant,
        vshard=n % 1024,
        entry_id=f"{1_760_000_000_000 + n}-0",
        kind=kind,
        source="gy",
        op_id=f"op-{n}",
        session_id=f"s-{n}",
        host_mno=host_mno,
        subscriber=f"{MSISDN[tenant]}{sub:02d}",
        msisdn=f"{MSISDN[tenant]}{sub:02d}",
        imsi=f"{IMSI[tenant]}{sub:02d}",
        service=service,
        started_at_s=started_at_s,
        ended_at_s=started_at_s + 30.0,
        units=units,
        unit=unit,
        retail=wholesale * 4,
        wholesale=wholesale,
        currency="EUR",
        visited_plmn=visited_plmn,
    )

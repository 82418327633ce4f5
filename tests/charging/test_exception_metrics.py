"""Exception counters of ``ocs serve``'s /metrics (rating failures, leakage money, wholesale
above retail), counted where the CCR result is handled."""

from __future__ import annotations

import asyncio

from ocs.charging.credit_control import CreditControlHandler
from ocs.config import ChargingConfig
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics
from tests.charging.conftest import Charging
from tests.support.gy import INITIAL, TERMINATION, Mscc, ccr, msccs_of

ACME_1 = "4917099000001"
GIB = 1 << 30


def value(metrics: Metrics, name: str, tenant: str) -> float:
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name and sample.labels.get("tenant") == tenant:
                return float(sample.value)
    return 0.0


async def test_rating_failures_and_leakage_are_counted_per_tenant(charging: Charging) -> None:
    metrics = Metrics()
    handler = CreditControlHandler(
        charging.directory, ChargingConfig(), origin_host="ocs.test.local",
        origin_realm="test.local", sessions=charging.sessions, log=make_logger("warning"),
        clock=charging.clock, metrics=metrics,
    )  # fmt: skip
    charging.handler = handler
    cca = await charging.send(ccr("s;exc", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10), Mscc(99)]))
    assert msccs_of(cca)[99]["result_code"] == 5031
    assert value(metrics, "ocs_cc_rating_failures_total", "acme") == 1
    assert value(metrics, "ocs_cc_leakage_money_total", "acme") == 0
    # Far more used than granted and than the bundle plus the balance can pay: leakage.
    await charging.send(
        ccr("s;exc", TERMINATION, 1, msisdn=ACME_1,
            msccs=[Mscc(10, requested=None, used=[{"cc_total_octets": 50 * GIB}])])
    )  # fmt: skip
    await asyncio.sleep(0)
    record = (await charging.records("acme", ACME_1))[-1]
    assert record.leakage_money > 0
    assert value(metrics, "ocs_cc_leakage_money_total", "acme") == record.leakage_money
    assert value(metrics, "ocs_cc_rating_failures_total", "globex") == 0

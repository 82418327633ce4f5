"""The credit-control handler times each ledger call into ocs_ledger_call_seconds{kind}."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ocs.charging.credit_control import CreditControlHandler
from ocs.config import ChargingConfig
from ocs.logging_setup import make_logger
from ocs.metrics import Metrics
from tests.charging.conftest import Charging
from tests.support.gy import (
    DIRECT_DEBITING,
    EVENT,
    INITIAL,
    SMS_CONTEXT,
    TERMINATION,
    Mscc,
    ccr,
    result_code,
)

ACME_1 = "4917099000001"


async def test_each_ledger_call_is_observed_once_by_kind(charging: Charging) -> None:
    metrics = Metrics()
    charging.handler = CreditControlHandler(
        charging.directory,
        ChargingConfig(),
        origin_host="ocs.test.local",
        origin_realm="test.local",
        sessions=charging.sessions,
        log=make_logger("warning"),
        clock=charging.clock,
        metrics=metrics,
    )
    opened = await charging.send(ccr("s;lat", INITIAL, 0, msisdn=ACME_1, msccs=[Mscc(10)]))
    closed = await charging.send(ccr("s;lat", TERMINATION, 1, msisdn=ACME_1, msccs=[]))
    sms = ccr(
        "s;lat-sms",
        EVENT,
        0,
        msisdn=ACME_1,
        context=SMS_CONTEXT,
        requested_action=DIRECT_DEBITING,
        msccs=[Mscc(None, {"cc_service_specific_units": 1})],
    )
    debited = await charging.send(sms)
    assert [result_code(a) for a in (opened, closed, debited)] == [2001, 2001, 2001]
    got = {
        (s.name, s.labels.get("kind"), s.labels.get("le")): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "ocs_ledger_call_seconds"
        for s in family.samples
    }
    assert got[("ocs_ledger_call_seconds_count", "session", None)] == 2
    assert got[("ocs_ledger_call_seconds_count", "event", None)] == 1
    assert got[("ocs_ledger_call_seconds_sum", "session", None)] > 0
    # Generous: a loaded machine may take long, but not beyond the last finite bucket's +Inf.
    assert got[("ocs_ledger_call_seconds_bucket", "session", "+Inf")] == 2

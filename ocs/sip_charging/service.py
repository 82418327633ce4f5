"""SIP credit check with real charging, assembled for one server process.

``SipCharging`` ties the SIP redirect server (``ocs.sip``) to the ledger: the authorizer for
INVITEs, the call-end / re-authorisation routes on the HTTP listener, the auto-end sweeper and
the SIP counters on ``/metrics``. ``OcsApp`` starts it after the HTTP listener and stops it
before Redis goes away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ocs.charging.directory import TenantDirectory
from ocs.config import SipConfig
from ocs.http_server import HttpRouter
from ocs.metrics import Metrics
from ocs.proxy_keys import ProxyKeyVerifier
from ocs.sip.metrics import SipMetrics
from ocs.sip.transport import SipServer
from ocs.sip_charging.accounting import CallAccounting
from ocs.sip_charging.authorizer import LedgerAuthorizer
from ocs.sip_charging.http_api import CallApi
from ocs.sip_charging.metrics import SipMetricsCollector
from ocs.sip_charging.policy import CallPolicy
from ocs.sip_charging.sweeper import AutoEndSweeper

Log = structlog.typing.FilteringBoundLogger


class SipCharging:
    def __init__(
        self,
        config: SipConfig,
        directory: TenantDirectory,
        *,
        clock: Callable[[], float],
        ping: Callable[[], Awaitable[Any]],
        log: Log,
        on_auto_ended: Callable[[str, int], None] | None = None,
        keys: ProxyKeyVerifier,
    ) -> None:
        self.config = config
        self.policy = CallPolicy.from_config(config)
        self.sip_metrics = SipMetrics()
        self.authorizer = LedgerAuthorizer(directory, self.policy, clock=clock, ping=ping, log=log)
        self.accounting = CallAccounting(
            directory,
            self.policy,
            clock=clock,
            log=log,
            on_closed=lambda _tenant: self.sip_metrics.reservation_closed(),
        )
        self.api = CallApi(self.accounting, keys)
        self.sweeper = AutoEndSweeper(
            directory,
            self.accounting,
            interval_s=self.policy.sweep_interval_s,
            clock=clock,
            log=log,
            on_ended=on_auto_ended,
        )
        self.server: SipServer | None = None
        self.log = log

    def register(self, router: HttpRouter, metrics: Metrics | None = None) -> None:
        """The call routes on ``router``; the SIP counters on ``metrics``' registry."""
        self.api.register(router)
        if metrics is not None:
            metrics.registry.register(SipMetricsCollector(self.sip_metrics))

    async def start(self) -> tuple[str, int] | None:
        """Start the sweeper and, when ``[sip] enabled``, the SIP listener (UDP + TCP)."""
        self.sweeper.start()
        if not self.config.enabled:
            return None
        self.server = SipServer(
            self.authorizer, self.config, metrics=self.sip_metrics, log=self.log
        )
        await self.server.start()
        return self.server.host, self.server.port

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
        await self.sweeper.stop()

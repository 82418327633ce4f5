"""Operator settings of SIP call charging (from ``[sip]``), checked once at start-up."""

from __future__ import annotations

import string

import msgspec

from ocs.config import ConfigError, SipConfig

ROUTE_FIELDS = frozenset({"callee", "caller", "tenant"})
# The ledger keeps a call's reservation this long past its auto-end deadline, so the auto-end
# sweeper commits it before Tcc supervision could merely release it (at least a minute, and at
# least four sweeps).
EXPIRY_MARGIN_MIN_S = 60
# A change that stalled half-way (server died between ledger and call record) is retried by
# the sweeper after this long.
PENDING_RETRY_S = 30


class CallPolicy(msgspec.Struct, frozen=True):
    route_uri: str = ""
    call_duration_max_s: int = 0
    grace_s: int = 180
    sweep_interval_s: float = 5.0
    record_ttl_s: int = 604800

    @classmethod
    def from_config(cls, config: SipConfig) -> CallPolicy:
        policy = cls(
            route_uri=config.route_uri,
            call_duration_max_s=config.call_duration_max_s,
            grace_s=config.call_end_grace_s,
            sweep_interval_s=config.call_sweep_interval_s,
            record_ttl_s=config.call_record_ttl_s,
        )
        policy.check()
        return policy

    def check(self) -> None:
        for _, field, spec, conversion in string.Formatter().parse(self.route_uri):
            if field is None:
                continue
            if field not in ROUTE_FIELDS or spec or conversion:
                raise ConfigError(
                    f"sip.route_uri: unknown placeholder {{{field}}}; use {{callee}}, {{caller}} "
                    "or {tenant}"
                )
        if self.route_uri and not self.route_uri.lower().startswith(("sip:", "sips:", "tel:")):
            raise ConfigError("sip.route_uri: must be a sip:, sips: or tel: URI template")
        if self.call_duration_max_s < 0 or self.grace_s < 0:
            raise ConfigError("sip.call_duration_max_s and call_end_grace_s must not be negative")
        if self.sweep_interval_s <= 0 or self.record_ttl_s <= 0:
            raise ConfigError("sip.call_sweep_interval_s and call_record_ttl_s must be positive")

    @property
    def expiry_margin_s(self) -> int:
        return max(EXPIRY_MARGIN_MIN_S, int(4 * self.sweep_interval_s) + 1)

    def route(self, *, callee: str, caller: str, tenant: str) -> str | None:
        """The 302's Contact URI, or None to echo the Request-URI."""
        if not self.route_uri:
            return None
        return self.route_uri.format(callee=callee, caller=caller, tenant=tenant)

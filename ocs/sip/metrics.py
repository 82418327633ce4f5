"""Plain counters of the SIP front end; the server's metrics endpoint renders them.

No registry, no globals: one ``SipMetrics`` per ``SipServer``, incremented by the sans-IO core
(which is why nothing here reads a clock: latencies arrive already measured). Label sets are
bounded: tenants come from the catalog, statuses and methods from a fixed set, drop reasons
from the constants below.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Upper bounds of the latency histogram buckets, seconds; a last implicit bucket is +Inf.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)

DROP_MALFORMED = "malformed"  # not SIP, no Via, truncated start line: nobody to answer
DROP_RESPONSE = "response"  # a response sent to us; a server never answers one
DROP_STRAY_ACK = "stray_ack"  # ACK matching no transaction
DROP_SOURCE = "source_not_allowed"  # unlisted source with reject_unknown_sources = false
DROP_UNFRAMEABLE = "unframeable"  # TCP stream that could not be cut into messages
DROP_CONNECTIONS = "connections_max"  # TCP connection refused: too many open

UNKNOWN_TENANT = "-"


@dataclass
class SipMetrics:
    # INVITE final answers by (tenant, SIP status); tenant "-" when none was resolved.
    invites: Counter[tuple[str, int]] = field(default_factory=Counter)
    requests_by_method: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[int] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    # Requests recognised as retransmissions and answered from the transaction layer.
    retransmissions_absorbed: int = 0
    # Final INVITE responses re-sent on Timer G, and transactions that hit Timer H.
    responses_retransmitted: int = 0
    ack_timeouts: int = 0
    # Requests answered 503 because in-flight authorizations or transactions were at the limit.
    shed: int = 0
    authorizer_calls: int = 0
    authorizer_failures: int = 0  # raised, timed out, or returned an invalid decision
    reservations_granted: int = 0
    # +1 per 302; the call-end handler calls reservation_closed(). Per process, not durable.
    active_reservations: int = 0
    latency_bucket_counts: list[int] = field(
        default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1)
    )
    latency_sum_s: float = 0.0
    latency_count: int = 0

    def observe_latency(self, seconds: float) -> None:
        """INVITE receipt → final answer sent."""
        self.latency_bucket_counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum_s += seconds
        self.latency_count += 1

    def reservation_closed(self) -> None:
        self.active_reservations = max(0, self.active_reservations - 1)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy for the metrics endpoint and tests."""
        return {
            "invites": [
                {"tenant": tenant, "status": status, "count": count}
                for (tenant, status), count in sorted(self.invites.items())
            ],
            "requests_by_method": dict(self.requests_by_method),
            "responses_by_status": {str(k): v for k, v in self.responses_by_status.items()},
            "dropped": dict(self.dropped),
            "retransmissions_absorbed": self.retransmissions_absorbed,
            "responses_retransmitted": self.responses_retransmitted,
            "ack_timeouts": self.ack_timeouts,
            "shed": self.shed,
            "authorizer_calls": self.authorizer_calls,
            "authorizer_failures": self.authorizer_failures,
            "reservations_granted": self.reservations_granted,
            "active_reservations": self.active_reservations,
            "latency_buckets_s": list(LATENCY_BUCKETS_S),
            "latency_bucket_counts": list(self.latency_bucket_counts),
            "latency_sum_s": self.latency_sum_s,
            "latency_count": self.latency_count,
        }

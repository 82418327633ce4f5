"""Prometheus metrics of one server process, held in its own registry (no module globals).

Label values are bounded sets (command names, Result-Codes, tenants from the catalog), never
free text from the wire, so a misbehaving peer cannot blow up the series count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds; a CCR budget is single-digit milliseconds, so the interesting buckets are small.
LATENCY_BUCKETS_S = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class Metrics:
    """Every metric the server exports; components get this object passed in."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.peers_connected = Gauge(
            "ocs_diameter_peers_connected", "Diameter peers in the Open state", registry=r
        )
        self.connections_total = Counter(
            "ocs_diameter_connections", "Diameter TCP connections accepted", registry=r
        )
        self.requests_total = Counter(
            "ocs_diameter_requests",
            "Diameter requests received, by command",
            ["command"],
            registry=r,
        )
        self.answers_total = Counter(
            "ocs_diameter_answers",
            "Diameter answers sent, by command and Result-Code",
            ["command", "result_code"],
            registry=r,
        )
        self.decode_errors_total = Counter(
            "ocs_diameter_decode_errors",
            "Diameter messages refused by the codec or framer, by Result-Code or 'closed'",
            ["reason"],
            registry=r,
        )
        self.duplicates_total = Counter(
            "ocs_diameter_duplicates",
            "Retransmitted requests answered from the duplicate cache",
            registry=r,
        )
        self.deviations_total = Counter(
            "ocs_diameter_protocol_deviations",
            "Requests accepted under the lenient profile despite a deviation",
            registry=r,
        )
        self.latency_seconds = Histogram(
            "ocs_diameter_request_latency_seconds",
            "Time from a request's arrival to its answer being written, by command",
            ["command"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.ccr_total = Counter(
            "ocs_cc_requests",
            "Credit-Control-Requests by CC-Request-Type and tenant ('' when unresolved)",
            ["type", "tenant"],
            registry=r,
        )
        self.cc_results_total = Counter(
            "ocs_cc_results",
            "Result-Codes of CCAs and of their MSCCs, by level (session or mscc)",
            ["level", "result_code"],
            registry=r,
        )
        self.granted_units_total = Counter(
            "ocs_cc_granted_units",
            "Units granted, by tenant and service (bytes, seconds or events)",
            ["tenant", "service"],
            registry=r,
        )
        self.used_units_total = Counter(
            "ocs_cc_used_units",
            "Units reported as used and committed, by tenant and service",
            ["tenant", "service"],
            registry=r,
        )
        self.open_sessions = Gauge(
            "ocs_cc_open_sessions", "Credit-control sessions owned by this process", registry=r
        )
        self.reservations_expired_total = Counter(
            "ocs_cc_reservations_expired",
            "Reservations released by Tcc supervision, by tenant",
            ["tenant"],
            registry=r,
        )
        self.http_requests_total = Counter(
            "ocs_http_requests",
            "HTTP requests on the admin listener, by status",
            ["status"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)

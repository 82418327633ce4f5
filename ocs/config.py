"""The one frozen configuration of a server process.

Sources, later ones win: built-in defaults < TOML file (``--config``) < ``OCS_<SECTION>_<KEY>``
environment variables < command-line flags. The result is validated once by msgspec and passed
explicitly to whatever needs it; nothing reads the environment after start-up.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


class ConfigError(ValueError):
    """The configuration is wrong; the message names the key and what is wrong with it."""


class DiameterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Diameter credit-control listener (Gy/Ro, TCP) and the base-protocol limits."""

    # Address the Diameter listener binds (--diameter-listen HOST:PORT).
    listen_host: str = "127.0.0.1"
    # TCP port of the Diameter listener; 0 picks a free port.
    listen_port: int = 3868
    # Our Origin-Host in CEA and every answer (--origin-host).
    origin_host: str = "ocs.mvna.local"
    # Our Origin-Realm; requests must name it as Destination-Realm, else 3003 (--origin-realm).
    origin_realm: str = "mvna.local"
    # Product-Name sent in the CEA.
    product_name: str = "mvna-ocs"
    # Vendor-Id sent in the CEA (0: none registered).
    vendor_id: int = 0
    # Empty means any peer may connect; otherwise CER Origin-Hosts not listed get 3010.
    allowed_peers: tuple[str, ...] = ()
    # Tw: a DWR is sent after this long without traffic (RFC 3539; at least 6 s).
    watchdog_s: float = 30.0
    # Random jitter added to or taken from Tw.
    watchdog_jitter_s: float = 2.0
    # Largest message accepted; a larger header length closes the connection unread.
    message_bytes_max: int = 65536
    # Most AVPs in one AVP list (message body or one Grouped AVP); more gives 5012.
    avps_max: int = 1024
    # Deepest Grouped AVP nesting; deeper gives 5004.
    avp_depth_max: int = 8
    # Accept known real-peer deviations (duplicated Origin-Host, missing M bit) and log them.
    lenient: bool = True
    # Time a graceful shutdown waits for in-flight requests before sending DPR.
    shutdown_grace_s: float = 5.0
    # How long a peer has to send CER after connecting.
    cer_timeout_s: float = 10.0
    # SO_REUSEPORT on the listener: N `ocs serve` processes share listen_port and the kernel
    # spreads connections over them. They must share one external Redis (--redis-url): the
    # embedded Redis is private to each process.
    reuse_port: bool = False
    # Diameter over TLS/TCP (RFC 6733 §13) on its own port beside plain TCP (3869 by
    # convention); None = no TLS listener. Certificate and key: PEM files. With tls_ca_file a
    # client certificate is required and verified, its names bind the CER Origin-Host, and with
    # allowed_peers one of its names must be listed. Files are re-read when they change.
    tls_listen_port: int | None = None
    # The server's certificate chain (PEM); required with tls_listen_port.
    tls_cert_file: str = ""
    # The certificate's private key (PEM); required with tls_listen_port.
    tls_key_file: str = ""
    # CA bundle (PEM) that client certificates must chain to; empty: no client certificate asked.
    tls_ca_file: str = ""


class HttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Admin HTTP listener: /healthz, /metrics and the SIP call API (no authentication: keep it
    on an internal address)."""

    # Address the HTTP listener binds (--http-listen HOST:PORT).
    listen_host: str = "127.0.0.1"
    # TCP port of the HTTP listener; 0 picks a free port.
    listen_port: int = 8080
    # Largest request head and largest body accepted; a larger body gets 413.
    request_bytes_max: int = 65536
    # A request must arrive whole within this of its first byte (else 408 and close).
    request_timeout_s: float = 10.0
    # A keep-alive connection with no request for this long is closed.
    idle_timeout_s: float = 60.0
    # Open HTTP connections at once; a further one is closed at once.
    connections_max: int = 512


class RedisConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ledger's Redis: an external one (url) or a private embedded redis-server."""

    # External Redis, redis://[user:pass@]host:port/db (a cluster is detected); unset: start
    # the embedded private redis-server under data_dir (--redis-url).
    url: str | None = None
    # Embedded Redis data, the redis.url file CLI commands read, and tenant.secret
    # (--redis-data-dir).
    data_dir: str = "var/redis"
    # Embedded Redis fsync policy: always, everysec or no.
    appendfsync: str = "everysec"
    # Port of the embedded Redis; 0 picks a free loopback port.
    embedded_port: int = 0
    # Per-call timeout; a call not answered in time fails as "ledger unavailable" (3004).
    timeout_s: float = 1.0
    # Connections (ledger calls in flight) per tenant.
    pool_size: int = 64
    # Replicas that must have each ledger write before its answer leaves: every pipelined batch
    # of ledger calls ends with WAIT (docs: guarantees); 0 answers once the primary has it.
    wait_replicas: int = 0
    # How long that WAIT may hold the answers; after it they leave as charged and are counted
    # (ocs_ledger_replica_wait_short). Must stay below timeout_s.
    wait_timeout_ms: int = 100
    # With wait_replicas: WAITAOF, the replicas' AOF fsynced too (Redis >= 7.2, replicas with
    # appendonly yes); an older Redis gets WAIT and a warning at start.
    wait_aof: bool = False


class SipConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """SIP credit check: a redirect server on UDP and TCP, and its call accounting."""

    # Serve SIP at all (--no-sip turns it off).
    enabled: bool = True
    # Address of the SIP listener, UDP and TCP (--sip-listen HOST:PORT).
    listen_host: str = "127.0.0.1"
    # Port of the SIP listener, UDP and TCP; 0 picks a free port.
    listen_port: int = 5060
    # Empty means any source may ask; otherwise others are answered 403 or dropped.
    allowed_sources: tuple[str, ...] = ()
    # Sources not allowed get 403 Source Not Allowed (true) or no answer at all (false).
    reject_unknown_sources: bool = True
    # Larger messages get 513 Message Too Large (or are dropped when they cannot be answered).
    message_bytes_max: int = 8192
    # More header lines get 400 Too Many Headers.
    headers_max: int = 64
    # INVITE/OPTIONS waiting for the ledger at once; beyond it: 503 (X-OCS-Result 3004).
    receive_queue_max: int = 1024
    # Retry-After of every 503 answer.
    retry_after_s: int = 5
    # How long one authorization (or OPTIONS health check) may take before a 503.
    authorize_timeout_s: float = 5.0
    # Live server transactions (≈ requests in the last 32 s); beyond it new requests get 503.
    transactions_max: int = 100000
    # Open TCP connections; further ones are closed at once.
    tcp_connections_max: int = 1024
    # Contact of the 302: a URI template ({callee}, {caller}, {tenant} are E.164 digits / the
    # tenant id), e.g. "sip:+{callee}@gw.example.net"; empty echoes the INVITE's Request-URI.
    route_uri: str = ""
    # Longest grant per INVITE or re-authorisation; 0 = the voice service's max_grant.
    call_duration_max_s: int = 0
    # A call with no end event by its granted time + this grace is committed in full
    # (auto-end); it must exceed the longest ringing time the proxy allows.
    call_end_grace_s: int = 180
    # How often the auto-end sweeper looks for overdue calls.
    call_sweep_interval_s: float = 5.0
    # How long a call record is kept after its last change (a repeated end event within it
    # gets the stored answer, after it 404).
    call_record_ttl_s: int = 604800
    # A proxy key's check on the call-end / reauth endpoints is remembered this long in memory:
    # a revoked proxy key stops working within it (docs/api.md, "Proxy keys").
    call_key_cache_s: float = 10.0


class ChargingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How grants are sized and supervised in credit control."""

    # Validity-Time of a grant (capped at the next tariff boundary); the client reports by then.
    validity_time_s: int = 3600
    # A reservation silent for validity + grace is released by the server (Tcc supervision).
    tcc_grace_s: int = 60
    # Quota-Holding-Time in grants; 0 leaves it out (the client's default applies).
    quota_holding_time_s: int = 0
    # Volume-/Time-/Unit-Quota-Threshold as a percentage of the grant; 0 leaves it out.
    threshold_percent: int = 20
    # How often the Tcc sweeper looks for expired reservations.
    sweep_interval_s: float = 5.0
    # Answer timeout for server-initiated RAR/ASR.
    server_request_timeout_s: float = 5.0
    # How often a server reads the durable RAR/ASR notices and deliveries (the delay from
    # `ocs account topup|block` to the RAR/ASR; each read costs a few Redis calls while idle).
    server_request_poll_s: float = 0.2


class LedgerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Limits of the ledger in Redis; also read by `ocs catalog load --config`."""

    # How long a request's outcome is kept to answer its retransmissions (RFC 6733 asks that
    # duplicates be recognised for as long as a peer may retransmit; failover takes minutes).
    idempotency_ttl_s: int = 3600
    # A session the ledger has not heard of for this long is forgotten (its holds released).
    session_idle_s: float = 86400.0
    # Open sessions per subscriber account; one more is answered 5006 RESOURCES_EXCEEDED.
    sessions_max: int = 32
    # Buckets (bundle allowances) per account; beyond it, 5006.
    buckets_max: int = 64
    # Ledger calls per tenant that may wait for one of the [redis] pool_size slots; past it a
    # request is answered 3004 TOO_BUSY at once (load shed) instead of queueing into a timeout.
    waiting_max: int = 256

    def limits(self) -> dict[str, Any]:
        """The keyword arguments of ``balance.ledger.Ledger`` these settings stand for."""
        return msgspec.structs.asdict(self)


class ExportConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``ocs export``: the usage streams drained into the store (docs/exporter.md)."""

    # Metrics and /healthz of the exporter process: address and port.
    listen_host: str = "127.0.0.1"
    # The metrics port (0: any free port).
    listen_port: int = 9464
    # Rows per store transaction.
    batch_size: int = 2000
    # While the export keeps up, the streams are read this often (a read walks all 1,024 streams
    # of a tenant in Redis, so not at every arrival): what the exporter adds to the lag at most.
    linger_ms: int = 500
    # While the streams stay empty, reads back off (doubling from linger_ms) up to this apart.
    block_ms: int = 1000
    # Entries per stream per read of all 1,024 shards of a tenant (usage.export_core.ReadPlan).
    read_count: int = 4
    # Streams per XREADGROUP of that read: Redis runs one command at a time, so every command
    # is kept short (a CCR arriving meanwhile waits for it).
    read_streams_max: int = 256
    # Entries one XREADGROUP may deliver while draining a backlog (≈ 2-3 µs of Redis each).
    read_entries_max: int = 4096
    # Pending entries idle this long (their exporter died) are claimed by another (XAUTOCLAIM).
    claim_idle_ms: int = 30000
    # /healthz says degraded when a tenant's oldest unexported record is older than this.
    lag_degraded_s: float = 30.0
    # Alert (ocs_export_stream_bound_exceeded) when a tenant's streams hold more records than
    # this: with the store down they grow by the charging rate (about 300 bytes per record).
    stream_bound_records: int = 5_000_000
    # How often the tenant list (the stored catalog) is read again.
    tenants_refresh_s: float = 10.0
    # How often the lag is measured (and leftovers of a crash trimmed).
    lag_interval_s: float = 5.0
    # Store failures back off exponentially up to this.
    retry_max_s: float = 10.0
    # Batches stored at once per tenant (PostgreSQL inserts them while the next is prepared;
    # at most [store] pool_max).
    store_concurrency: int = 4
    # How often acknowledged entries are trimmed from their streams.
    trim_interval_ms: int = 2000
    # The consumer group every exporter process shares.
    group: str = "ocs-export"
    # CPU priority increment (os.nice) of the exporter process: it is background work and
    # yields the CPU to ocs serve and Redis on a shared machine (0: unchanged; at most 19).
    nice: int = 10
    # Run the exporter under SCHED_IDLE (Linux): it gets only the CPU that ocs serve, Redis and
    # everything else leave idle, so charging latency does not pay for exporting; its lag
    # absorbs the difference. false: ordinary scheduling at ``nice``.
    sched_idle: bool = True
    # The exporter's PostgreSQL backends at this niceness (0: unchanged), when they run on this
    # host under a user this process may renice (the embedded private PostgreSQL of `make run`
    # and the benchmarks); a remote store is left alone (docs/exporter.md: deployment).
    store_backend_nice: int = 19


class StoreConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The usage store of record (PostgreSQL; usage/)."""

    # None: the embedded private PostgreSQL under data_dir (its URL in <data_dir>/store.url).
    url: str | None = None
    # The embedded PostgreSQL's data directory (owned by the postgres system user).
    data_dir: str = "var/pg"
    # 0 picks a free loopback port for the embedded server.
    embedded_port: int = 0
    # Connections each process keeps open to the store, at least ...
    pool_min: int = 1
    # ... and at most (a bounded pool: callers wait for a free connection beyond it).
    pool_max: int = 8
    # Any one statement longer than this is cancelled by the server (exports fetch in chunks).
    statement_timeout_s: float = 30.0
    # How long opening a connection may take before the store counts as unavailable.
    connect_timeout_s: float = 10.0
    # Months of usage kept for a tenant with no retention of its own (`ocs usage retention`).
    retention_months: int = 24


class CatalogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the tenant catalog comes from."""

    # A tenant file or directory installed and shared at start-up (--catalog); unset: the
    # catalog stored in Redis by `ocs catalog load`.
    path: str | None = None
    # With a catalog already stored in Redis, a server started with ``path`` keeps the stored one
    # (and says how they differ) unless this is set: then ``path`` replaces it entirely.
    replace: bool = False


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``ocs api``: the operator / portfolio HTTP API and dashboards (ocs/api/)."""

    # Where the API and dashboards listen (HOST:PORT; --listen).
    listen: str = "127.0.0.1:8480"
    # `ocs apikey create` without --expires.
    key_expires_days: int = 90
    # A key's lookup is remembered this long: a revoked key stops working within it.
    key_cache_s: float = 5.0
    # Largest page of usage records or audit entries one request returns.
    page_max: int = 1000
    # Largest request body (a CSV import included) in bytes.
    body_bytes_max: int = 4 * 1024 * 1024
    # Dashboard login cookie lifetime.
    session_s: int = 8 * 3600
    # Wait for each audit row's disk flush before answering the write (true), or let PostgreSQL
    # flush it within a few wal_writer_delay (false: a crash may lose the last fraction of a
    # second of audit rows, as Redis appendfsync everysec may lose ledger writes; docs/api.md).
    audit_sync_commit: bool = False
    # Largest CSV a bulk subscriber import accepts, in bytes (at most body_bytes_max).
    import_bytes_max: int = 2 * 1024 * 1024
    # Most data rows one import may hold.
    import_rows_max: int = 20_000
    # Rows worked between two progress commits (the most a killed process works again).
    import_batch_rows: int = 100
    # Imports one tenant may have queued or running at once.
    imports_open_max: int = 3
    # A claimed import job's lease: a process that dies leaves it to another after this long.
    import_lease_s: float = 60.0
    # How often an idle API process looks for an import job another process left.
    import_poll_s: float = 5.0


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Logging on stderr."""

    # debug, info, warning or error; per-request lines only at debug (--log-level).
    level: str = "info"
    # JSON lines (true) or human-readable console lines (false).
    json: bool = True


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    diameter: DiameterConfig = DiameterConfig()
    http: HttpConfig = HttpConfig()
    redis: RedisConfig = RedisConfig()
    sip: SipConfig = SipConfig()
    catalog: CatalogConfig = CatalogConfig()
    store: StoreConfig = StoreConfig()
    charging: ChargingConfig = ChargingConfig()
    ledger: LedgerConfig = LedgerConfig()
    api: ApiConfig = ApiConfig()
    log: LogConfig = LogConfig()
    export: ExportConfig = ExportConfig()


SECTIONS: dict[str, type[msgspec.Struct]] = {
    "diameter": DiameterConfig,
    "http": HttpConfig,
    "redis": RedisConfig,
    "sip": SipConfig,
    "catalog": CatalogConfig,
    "store": StoreConfig,
    "charging": ChargingConfig,
    "ledger": LedgerConfig,
    "api": ApiConfig,
    "log": LogConfig,
    "export": ExportConfig,
}

ENV_PREFIX = "OCS_"


def parse_host_port(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port), with a message naming ``what`` on error."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port_text)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``OCS_DIAMETER_ORIGIN_HOST=x`` → ``{"diameter": {"origin_host": "x"}}`` (strings; msgspec
    converts them with ``strict=False``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in SECTIONS or not key:
            continue  # OCS_* variables of other tools are not ours to reject
        if key not in SECTIONS[section].__struct_fields__:
            raise ConfigError(f"{name}: no key {key!r} in section [{section}]")
        field_type = SECTIONS[section].__annotations__.get(key, "")
        if "tuple" in str(field_type):
            out.setdefault(section, {})[key] = [v for v in value.split(",") if v]
        else:
            out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the frozen Config from file, environment and explicit overrides (CLI flags)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: no such config file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    if overrides:
        data = _merge(data, {k: dict(v) for k, v in overrides.items() if v})
    try:
        config = msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    _check(config)
    return config


def _check(config: Config) -> None:
    problems: list[str] = []
    for section, port in (
        ("diameter.listen_port", config.diameter.listen_port),
        ("http.listen_port", config.http.listen_port),
        ("sip.listen_port", config.sip.listen_port),
        ("redis.embedded_port", config.redis.embedded_port),
        ("export.listen_port", config.export.listen_port),
        ("store.embedded_port", config.store.embedded_port),
    ):
        if not 0 <= port <= 65535:
            problems.append(f"{section}: {port} is not a TCP/UDP port")
    if config.redis.appendfsync not in ("always", "everysec", "no"):
        problems.append(
            f"redis.appendfsync: {config.redis.appendfsync!r} is not always, everysec or no"
        )
    if config.redis.wait_replicas < 0:
        problems.append(f"redis.wait_replicas: {config.redis.wait_replicas} is negative")
    if not 0 < config.redis.wait_timeout_ms < config.redis.timeout_s * 1000:
        problems.append(
            f"redis.wait_timeout_ms: {config.redis.wait_timeout_ms} must be above 0 and below "
            f"redis.timeout_s ({config.redis.timeout_s} s)"
        )
    if config.log.level.lower() not in ("debug", "info", "warning", "error"):
        problems.append(f"log.level: {config.log.level!r} is not debug, info, warning or error")
    for name, value in (
        ("diameter.message_bytes_max", config.diameter.message_bytes_max),
        ("diameter.avps_max", config.diameter.avps_max),
        ("diameter.avp_depth_max", config.diameter.avp_depth_max),
        ("diameter.watchdog_s", config.diameter.watchdog_s),
        ("sip.message_bytes_max", config.sip.message_bytes_max),
        ("sip.call_end_grace_s", config.sip.call_end_grace_s),
        ("sip.call_sweep_interval_s", config.sip.call_sweep_interval_s),
        ("sip.call_record_ttl_s", config.sip.call_record_ttl_s),
        ("sip.call_key_cache_s", config.sip.call_key_cache_s),
        ("redis.pool_size", config.redis.pool_size),
        ("http.request_timeout_s", config.http.request_timeout_s),
        ("http.idle_timeout_s", config.http.idle_timeout_s),
        ("http.connections_max", config.http.connections_max),
        ("charging.validity_time_s", config.charging.validity_time_s),
        ("charging.sweep_interval_s", config.charging.sweep_interval_s),
        ("charging.server_request_timeout_s", config.charging.server_request_timeout_s),
        ("charging.server_request_poll_s", config.charging.server_request_poll_s),
        ("ledger.idempotency_ttl_s", config.ledger.idempotency_ttl_s),
        ("ledger.session_idle_s", config.ledger.session_idle_s),
        ("ledger.sessions_max", config.ledger.sessions_max),
        ("ledger.buckets_max", config.ledger.buckets_max),
        ("ledger.waiting_max", config.ledger.waiting_max),
        ("export.batch_size", config.export.batch_size),
        ("export.block_ms", config.export.block_ms),
        ("export.read_count", config.export.read_count),
        ("export.read_streams_max", config.export.read_streams_max),
        ("export.read_entries_max", config.export.read_entries_max),
        ("export.claim_idle_ms", config.export.claim_idle_ms),
        ("export.lag_degraded_s", config.export.lag_degraded_s),
        ("export.stream_bound_records", config.export.stream_bound_records),
        ("export.tenants_refresh_s", config.export.tenants_refresh_s),
        ("export.lag_interval_s", config.export.lag_interval_s),
        ("export.retry_max_s", config.export.retry_max_s),
        ("export.store_concurrency", config.export.store_concurrency),
        ("export.trim_interval_ms", config.export.trim_interval_ms),
        ("store.pool_min", config.store.pool_min),
        ("store.pool_max", config.store.pool_max),
        ("store.statement_timeout_s", config.store.statement_timeout_s),
        ("store.connect_timeout_s", config.store.connect_timeout_s),
        ("store.retention_months", config.store.retention_months),
        ("api.key_expires_days", config.api.key_expires_days),
        ("api.key_cache_s", config.api.key_cache_s),
        ("api.page_max", config.api.page_max),
        ("api.body_bytes_max", config.api.body_bytes_max),
        ("api.session_s", config.api.session_s),
        ("api.import_bytes_max", config.api.import_bytes_max),
        ("api.import_rows_max", config.api.import_rows_max),
        ("api.import_batch_rows", config.api.import_batch_rows),
        ("api.imports_open_max", config.api.imports_open_max),
        ("api.import_lease_s", config.api.import_lease_s),
        ("api.import_poll_s", config.api.import_poll_s),
    ):
        if value <= 0:
            problems.append(f"{name}: must be positive, got {value}")
    if not 0 <= config.charging.threshold_percent < 100:
        problems.append("charging.threshold_percent: must be 0 to 99")
    if config.charging.tcc_grace_s < 0 or config.charging.quota_holding_time_s < 0:
        problems.append("charging.tcc_grace_s and quota_holding_time_s must not be negative")
    if config.sip.call_duration_max_s < 0:
        problems.append("sip.call_duration_max_s: must not be negative (0 = the service's max)")
    tls = config.diameter
    if tls.tls_listen_port is not None:
        if not 0 <= tls.tls_listen_port <= 65535:
            problems.append(f"diameter.tls_listen_port: {tls.tls_listen_port} is not a TCP port")
        if not tls.tls_cert_file or not tls.tls_key_file:
            problems.append("diameter.tls_listen_port needs tls_cert_file and tls_key_file")
        elif tls.tls_listen_port == tls.listen_port and tls.listen_port != 0:
            problems.append("diameter.tls_listen_port: must differ from listen_port")
    elif tls.tls_cert_file or tls.tls_key_file or tls.tls_ca_file:
        problems.append("diameter.tls_cert_file/tls_key_file/tls_ca_file need tls_listen_port")
    if config.diameter.message_bytes_max < 20:
        problems.append("diameter.message_bytes_max: must be at least 20 (the header)")
    if config.export.linger_ms < 0:
        problems.append("export.linger_ms: must not be negative")
    if not config.export.group:
        problems.append("export.group: must not be empty")
    if not 0 <= config.export.nice <= 19:
        problems.append(f"export.nice: {config.export.nice} is not 0 to 19")
    if not 0 <= config.export.store_backend_nice <= 19:
        problems.append(
            f"export.store_backend_nice: {config.export.store_backend_nice} is not 0 to 19"
        )
    if config.store.pool_min > config.store.pool_max:
        problems.append("store.pool_min: must not exceed store.pool_max")
    if config.api.import_bytes_max > config.api.body_bytes_max:
        problems.append("api.import_bytes_max: must not exceed api.body_bytes_max")
    parse_host_port(config.api.listen, "api.listen")
    if problems:
        raise ConfigError("; ".join(problems))

"""``ocs sim``: offer realistic multi-tenant traffic to a running OCS, show live progress, write
a report and verify the ledger agrees (exit 0 PASS, 1 FAIL, 2 usage or setup error, 3 the run
could not take place)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ocs.config import ConfigError, parse_host_port

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_RUN = 0, 1, 2, 3


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sim",
        help="traffic simulator: Diameter Gy/Ro and SIP load with a verified report",
        description=(
            "Act as Diameter gateways (and a SIP proxy) against a running OCS. Flags override "
            "the --scenario YAML. With the server's Redis (--redis-url, or the redis.url file "
            "under --redis-data-dir) the run ends with a ledger verification: PASS or FAIL."
        ),
    )
    parser.add_argument("--scenario", metavar="FILE", help="scenario YAML (docs: simulator)")
    parser.add_argument("--diameter", metavar="HOST:PORT", help="server (default 127.0.0.1:3868)")
    parser.add_argument("--sip", metavar="HOST:PORT", help="SIP server (default 127.0.0.1:5060)")
    parser.add_argument("--http", metavar="URL", help="HTTP API (default http://127.0.0.1:8080)")
    parser.add_argument(
        "--http-key",
        metavar="KEY",
        help="proxy key the SIP call ends are posted with (ocs apikey create --role proxy)",
    )
    parser.add_argument("--destination-realm", metavar="REALM", help="default: the CEA's realm")
    parser.add_argument("--catalog", metavar="PATH", help="catalog the subscribers come from")
    parser.add_argument("--tenant", action="append", metavar="ID", help="only these tenants")
    parser.add_argument("--subscribers", type=int, metavar="N", help="first N per tenant")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--rate", type=float, metavar="N", help="new sessions (or CCRs) per second")
    load.add_argument("--concurrency", type=int, metavar="N", help="sessions kept in flight")
    parser.add_argument("--rate-unit", choices=("session", "ccr"), help="what --rate counts")
    parser.add_argument("--duration", type=float, metavar="S", help="seconds of arrivals")
    parser.add_argument("--sessions", type=int, metavar="N", help="stop after N sessions")
    parser.add_argument("--ramp", type=float, metavar="S", help="ramp-up seconds")
    parser.add_argument("--mix", metavar="D,V,S,P", help="weights data,voice,sms,sip")
    parser.add_argument("--updates", type=int, metavar="N", help="CCR-U per data session")
    parser.add_argument("--update-interval", type=float, metavar="S", help="seconds between CCRs")
    parser.add_argument("--roaming", type=float, metavar="SHARE", help="roaming share 0..1")
    parser.add_argument("--international", type=float, metavar="SHARE", help="intl calls 0..1")
    parser.add_argument("--duplicates", type=float, metavar="SHARE", help="resend answered CCRs")
    parser.add_argument("--retransmits", type=float, metavar="SHARE", help="T-flag copies")
    parser.add_argument("--abandon", type=float, metavar="SHARE", help="sessions without CCR-T")
    parser.add_argument("--malformed", type=float, metavar="SHARE", help="CCRs missing an AVP")
    parser.add_argument("--workers", type=int, metavar="N", help="simulator processes")
    parser.add_argument("--connections", type=int, metavar="N", help="connections per worker")
    parser.add_argument("--seed", type=int, help="random seed (0: random)")
    parser.add_argument("--redis-url", metavar="URL", help="the server's Redis, for verification")
    parser.add_argument("--redis-data-dir", metavar="DIR", default="var/redis",
                        help="where `ocs serve` wrote redis.url (default var/redis)")  # fmt: skip
    parser.add_argument("--no-verify", action="store_true", help="skip the ledger verification")
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="the usage store: verify it holds the run's records (default: "
        "OCS_STORE_URL or <store-data-dir>/store.url when present)",
    )
    parser.add_argument(
        "--store-data-dir",
        metavar="DIR",
        default="var/pg",
        help="where the embedded store wrote store.url (default var/pg)",
    )
    parser.add_argument("--no-store", action="store_true", help="skip the store verification")
    parser.add_argument(
        "--export-wait",
        type=float,
        default=60.0,
        metavar="S",
        help="how long to wait for the exporter to catch up (default 60)",
    )
    parser.add_argument("--json", type=Path, default=Path("var/sim/report.json"), metavar="FILE")
    parser.add_argument("--html", type=Path, default=Path("var/sim/report.html"), metavar="FILE")
    parser.add_argument("--progress", choices=("auto", "on", "off"), default="auto")
    parser.set_defaults(func=run)


def _put(overrides: dict[str, Any], section: str | None, key: str, value: Any) -> None:
    if value is None:
        return
    if section is None:
        overrides[key] = value
    else:
        overrides.setdefault(section, {})[key] = value


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.diameter:
        host, port = parse_host_port(args.diameter, "--diameter")
        out["target"] = {"diameter_host": host, "diameter_port": port}
    if args.sip:
        host, port = parse_host_port(args.sip, "--sip")
        out.setdefault("target", {}).update(sip_host=host, sip_port=port)
    _put(out, "target", "http_url", args.http)
    _put(out, "target", "http_key", args.http_key)
    _put(out, "target", "destination_realm", args.destination_realm)
    _put(out, None, "catalog", args.catalog)
    _put(out, None, "tenants", args.tenant)
    _put(out, None, "subscribers_per_tenant_max", args.subscribers)
    _put(out, "load", "rate", args.rate)
    if args.rate is not None:
        out["load"]["concurrency"] = 0
    _put(out, "load", "concurrency", args.concurrency)
    _put(out, "load", "rate_unit", args.rate_unit)
    _put(out, "load", "duration_s", args.duration)
    _put(out, "load", "sessions", args.sessions)
    _put(out, "load", "ramp_s", args.ramp)
    if args.mix:
        try:
            weights = [float(w) for w in args.mix.split(",")]
        except ValueError:
            raise ConfigError("--mix: four numbers, e.g. 0.6,0.25,0.15,0") from None
        if len(weights) != 4:
            raise ConfigError("--mix: four numbers, e.g. 0.6,0.25,0.15,0")
        out["mix"] = dict(zip(("data", "voice", "sms", "sip"), weights, strict=True))
    _put(out, "data", "updates", args.updates)
    _put(out, "data", "update_interval_s", args.update_interval)
    _put(out, None, "roaming_share", args.roaming)
    _put(out, None, "international_share", args.international)
    _put(out, "faults", "duplicate_share", args.duplicates)
    _put(out, "faults", "retransmit_share", args.retransmits)
    _put(out, "faults", "abandon_share", args.abandon)
    _put(out, "faults", "malformed_share", args.malformed)
    _put(out, None, "workers", args.workers)
    _put(out, None, "connections_per_worker", args.connections)
    _put(out, None, "seed", args.seed)
    return out


def _redis_url(args: argparse.Namespace) -> str | None:
    if args.no_verify:
        return None
    from ocs.ledger_runtime import RedisSetupError, resolve_redis_url

    try:
        return resolve_redis_url(args.redis_url, data_dir=args.redis_data_dir)
    except RedisSetupError as exc:
        print(f"ocs sim: {exc} (or pass --no-verify)", file=sys.stderr)
        raise


def _store_url(args: argparse.Namespace) -> str | None:
    """The store to verify: --store-url, else one found like the Redis URL; None: no store
    check (the store is optional: a deployment without an exporter keeps its streams)."""
    if args.no_verify or args.no_store:
        return None
    if args.store_url:
        return str(args.store_url)
    from ocs.embedded_postgres import StoreSetupError, resolve_store_url

    try:
        return resolve_store_url(None, data_dir=args.store_data_dir)
    except StoreSetupError:
        return None


def run(args: argparse.Namespace) -> int:
    from ocs.ledger_runtime import RedisSetupError
    from sim.population import PopulationError
    from sim.runner import RunError
    from sim.scenario import ScenarioError, load_scenario
    from sim.simulate import simulate

    try:
        scenario = load_scenario(args.scenario, overrides_from_args(args))
        url = _redis_url(args)
    except (ScenarioError, ConfigError) as exc:
        print(f"ocs sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RedisSetupError:
        return EXIT_USAGE
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    try:
        outcome = simulate(
            scenario,
            redis_url=url,
            progress=progress,
            json_path=args.json,
            html_path=args.html,
            store_url=_store_url(args) if url else None,
            export_wait_s=args.export_wait,
        )
    except PopulationError as exc:
        print(f"ocs sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as exc:
        print(f"ocs sim: the run could not take place: {exc}", file=sys.stderr)
        return EXIT_RUN
    print(f"report: {args.json} and {args.html}")
    if url is None:
        return EXIT_PASS
    return EXIT_PASS if outcome.passed else EXIT_FAIL

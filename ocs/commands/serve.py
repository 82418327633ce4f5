"""``ocs serve``: run the charging server until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ocs.config import Config, ConfigError, load_config, parse_host_port


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the OCS (Diameter Gy/Ro, SIP credit check, admin HTTP)",
        description=(
            "Run the OCS. Without --redis-url a private redis-server is started under "
            "redis.data_dir (default var/redis) and stopped on exit."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file")
    parser.add_argument("--diameter-listen", metavar="HOST:PORT", help="default 127.0.0.1:3868")
    parser.add_argument("--origin-host", metavar="FQDN", help="our Diameter Origin-Host")
    parser.add_argument("--origin-realm", metavar="REALM", help="our Diameter Origin-Realm")
    parser.add_argument("--http-listen", metavar="HOST:PORT", help="default 127.0.0.1:8080")
    parser.add_argument("--sip-listen", metavar="HOST:PORT", help="default 127.0.0.1:5060")
    parser.add_argument("--no-sip", action="store_true", help="do not serve SIP")
    parser.add_argument("--redis-url", metavar="URL", help="external Redis instead of embedded")
    parser.add_argument("--redis-data-dir", metavar="DIR", help="embedded Redis data directory")
    parser.add_argument(
        "--catalog",
        metavar="PATH",
        help="catalog YAML file or directory; used only when Redis holds no catalog yet (a "
        "differing stored catalog is kept and the difference logged), see --catalog-replace",
    )
    parser.add_argument(
        "--catalog-replace",
        action="store_true",
        help="replace the catalog stored in Redis with --catalog (tenants not in it are dropped)",
    )
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Command-line flags as config overrides (only the flags given)."""
    out: dict[str, dict[str, Any]] = {
        "diameter": {},
        "http": {},
        "sip": {},
        "redis": {},
        "catalog": {},
        "log": {},
    }
    if args.diameter_listen:
        host, port = parse_host_port(args.diameter_listen, "--diameter-listen")
        out["diameter"].update(listen_host=host, listen_port=port)
    if args.origin_host:
        out["diameter"]["origin_host"] = args.origin_host
    if args.origin_realm:
        out["diameter"]["origin_realm"] = args.origin_realm
    if args.http_listen:
        host, port = parse_host_port(args.http_listen, "--http-listen")
        out["http"].update(listen_host=host, listen_port=port)
    if args.sip_listen:
        host, port = parse_host_port(args.sip_listen, "--sip-listen")
        out["sip"].update(listen_host=host, listen_port=port)
    if args.no_sip:
        out["sip"]["enabled"] = False
    if args.redis_url:
        out["redis"]["url"] = args.redis_url
    if args.redis_data_dir:
        out["redis"]["data_dir"] = args.redis_data_dir
    if args.catalog:
        out["catalog"]["path"] = args.catalog
    if args.catalog_replace:
        out["catalog"]["replace"] = True
    if args.log_level:
        out["log"]["level"] = args.log_level
    return out


def run(args: argparse.Namespace) -> int:
    try:
        config: Config = load_config(args.config, overrides=overrides_from_args(args))
    except ConfigError as exc:
        print(f"ocs serve: {exc}", file=sys.stderr)
        return 2
    from ocs.app import OcsApp, StartupError  # imported late: `ocs --help` stays fast

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return int(runner(OcsApp(config).run_until_stopped()))
    except StartupError as exc:
        print(f"ocs serve: {exc}", file=sys.stderr)
        return 1

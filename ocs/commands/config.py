"""``ocs config check [--config FILE]``: validate a configuration and print the effective one.

The effective configuration is what ``ocs serve --config FILE`` would run with: the defaults,
overridden by FILE, overridden by ``OCS_<SECTION>_<KEY>`` environment variables. It is printed
as TOML (a valid config file itself) or, with ``--json``, as JSON. An invalid configuration is
reported with the key at fault (``diameter.listen_port: ...``) and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import msgspec

from ocs.config import SECTIONS, Config, ConfigError, load_config

EXIT_OK = 0
EXIT_INVALID = 1


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="check a configuration file")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check",
        help="validate; print the effective configuration (defaults < FILE < OCS_* environment)",
    )
    check.add_argument("--config", metavar="FILE", help="TOML config file (default: none)")
    check.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    check.set_defaults(func=run_check)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def to_toml(config: Config) -> str:
    """The configuration as TOML that ``load_config`` reads back to the same Config; keys with
    no value (``None``) are written as comments."""
    lines: list[str] = []
    for section, values in msgspec.structs.asdict(config).items():
        lines.append(f"[{section}]")
        for key, value in msgspec.to_builtins(values).items():
            if value is None:
                lines.append(f"# {key} = (not set)")
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`(?: - at `\$(?:\.([\w.]+))?`)?")
_AT = re.compile(r"(.*) - at `\$\.([\w.\[\]]+)`")


def describe(exc: ConfigError) -> str:
    """msgspec's ``... - at `$.diameter.port``` as ``diameter.port: ...``, unknown keys with the
    keys the section does have."""
    text = str(exc).removeprefix("invalid configuration: ")
    unknown = _UNKNOWN.fullmatch(text)
    if unknown:
        key, section = unknown.group(1), unknown.group(2)
        if section is None:
            return f"[{key}]: unknown section (expected one of: {', '.join(SECTIONS)})"
        known = ", ".join(SECTIONS[section].__struct_fields__) if section in SECTIONS else ""
        return f"{section}.{key}: unknown key" + (
            f" (section [{section}] has: {known})" if known else ""
        )
    located = _AT.fullmatch(text)
    if located:
        return f"{located.group(2)}: {located.group(1)}"
    return text


def run_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        source = args.config or "the defaults and OCS_* environment"
        message = describe(exc)
        if args.json:
            error = {"kind": "config", "message": message, "file": args.config}
            print(json.dumps({"action": "config check", "error": error}, indent=2))
        else:
            where = "" if message.startswith(source) else f"{source}: "
            print(f"ocs config check: {where}{message}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps(msgspec.to_builtins(config), indent=2, sort_keys=True))
    else:
        where = args.config or "no file"
        print(f"# effective configuration ({where}; defaults < file < OCS_* environment): valid")
        print(to_toml(config), end="")
    return EXIT_OK

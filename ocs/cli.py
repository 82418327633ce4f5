"""``ocs`` command line: one sub-command module per area, registered explicitly here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ocs.commands import account, catalog, export, serve, sim, store, up, usage

# Each module exposes register(subparsers) and sets ``func(args) -> int`` on its parsers.
COMMAND_MODULES = (serve, account, catalog, sim, store, usage, export, up)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocs", description="mvna-ocs: real-time online charging for MVNO aggregators"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())

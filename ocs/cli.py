"""``ocs`` command line: one sub-command module per area, registered explicitly here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from ocs.commands import (
    account,
    api,
    catalog,
    config,
    dispatch,
    events,
    export,
    group,
    renew,
    report,
    serve,
    settle,
    sim,
    store,
    up,
    usage,
    xdr,
)

# Each module exposes register(subparsers) and sets ``func(args) -> int`` on its parsers.
COMMAND_MODULES = (
    *(serve, up, account, catalog, config, renew, sim, store, usage, export, xdr, settle, api),
    *(dispatch, events, report, group),
)
DISTRIBUTION = "mvna-ocs"
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader left


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocs", description="mvna-ocs: real-time online charging for MVNO aggregators"
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {package_version()} ({DISTRIBUTION})"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _stdout_gone() -> int:
    """The reader (``| head``) left: not an error of ours, and no traceback. Point stdout at
    /dev/null so the interpreter's own flush at exit does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit:  # --version, --help and usage errors printed and exit here
            sys.stdout.flush()
            raise
        result: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _stdout_gone()
    return result


if __name__ == "__main__":
    sys.exit(main())

"""`ocs serve`: placeholder until its issue lands; it says so and exits non-zero."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("serve", help="(not available yet)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("ocs serve: not available in this build", file=sys.stderr)
    return 2

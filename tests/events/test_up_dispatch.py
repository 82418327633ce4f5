"""``ocs up`` runs ``ocs dispatch`` as a child only when given a dispatch file."""

from __future__ import annotations

from ocs.cli import build_parser
from ocs.commands.up import child_specs


def _specs(*argv: str) -> dict[str, tuple[str, ...]]:
    args = build_parser().parse_args(["up", *argv])
    return {s.name: s.argv for s in child_specs(args, "redis://r:1", "var/redis", "pg://s")}


def test_no_dispatch_file_no_dispatcher() -> None:
    assert set(_specs()) == {"serve", "export", "api", "renew"}


def test_the_renewal_scheduler_runs_in_a_loop_unless_left_out() -> None:
    argv = _specs()["renew"]
    assert argv[argv.index("renew") + 1 :][:3] == ("--loop", "--redis-url", "redis://r:1")
    assert "renew" not in _specs("--no-renew")


def test_dispatch_file_adds_the_dispatcher_with_a_stable_consumer() -> None:
    argv = _specs("--dispatch", "d.yaml")["dispatch"]
    assert argv[argv.index("dispatch") + 1 :][:4] == (
        "--redis-url",
        "redis://r:1",
        "--plugins",
        "d.yaml",
    )
    consumer = argv[argv.index("--consumer") + 1]
    assert consumer.startswith("up-")
    assert _specs("--dispatch", "d.yaml")["dispatch"] == argv  # same name after a restart


def test_no_dispatch_flag_wins() -> None:
    assert "dispatch" not in _specs("--dispatch", "d.yaml", "--no-dispatch")

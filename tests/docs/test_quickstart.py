"""The README's quick start, run as written against a real ``ocs serve`` (embedded Redis and the
demo catalog, as ``make run`` starts it; free ports instead of the defaults): every command it
shows works and prints what the README says it prints."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CATALOG = str(ROOT / "examples" / "catalog")


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def commands(section: str) -> list[tuple[list[str], str]]:
    """Each ``$ command`` of the console blocks (continuation lines joined) with the output the
    README shows under it."""
    out: list[tuple[list[str], str]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            if not lines[index].startswith("$ "):
                index += 1
                continue
            command = lines[index][2:]
            while command.endswith("\\"):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            index += 1
            shown = []
            while index < len(lines) and not lines[index].startswith("$ "):
                shown.append(lines[index])
                index += 1
            out.append((shlex.split(command), "\n".join(shown)))
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("quickstart"), redis_url=None, catalog=CATALOG)
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()


def _run(argv: list[str], server: ServerProcess) -> str:
    assert argv[0] == ".venv/bin/ocs", argv
    data_dir = ["--data-dir" if argv[1] == "account" else "--redis-data-dir"]
    args = [*argv[1:], *data_dir, str(server.workdir / "redis")]
    if argv[1] == "sim":
        args += [
            "--diameter", f"127.0.0.1:{server.diameter_port}",
            "--sip", f"127.0.0.1:{server.sip_port}",
            "--http", f"http://127.0.0.1:{server.http_port}",
            "--json", str(server.workdir / "report.json"),
            "--html", str(server.workdir / "report.html"),
        ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "ocs", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,  # as in the README: from the checkout (the sim reads examples/catalog)
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _fields(text: str) -> dict[str, str]:
    wanted = ("tenant", "subscriber", "state", "balance", "held", "credit limit")
    out = {}
    for line in text.splitlines():
        for name in wanted:
            if re.match(rf"^{name}\s{{2,}}\S", line):
                out[name] = line[len(name) :].strip()
    return out


def test_the_quick_start_does_what_the_readme_says(server: ServerProcess) -> None:
    steps = commands(quick_start())
    assert [argv[:2] for argv, _ in steps] == [
        ["make", "run"],
        ["curl", "-s"],
        [".venv/bin/ocs", "account"],
        [".venv/bin/ocs", "sim"],
        [".venv/bin/ocs", "account"],
    ]
    (_, _), (_, health_shown), (show, before_shown), (sim, sim_shown), (_, after_shown) = steps
    assert server.health() == json.loads(health_shown)

    before = _fields(_run(show, server))
    assert before == _fields(before_shown)

    sim_out = _run(sim, server)
    for needle in ("PASS", "2001: 2", "I: 1, T: 1", "voice_completed: 1"):
        assert needle in sim_out and needle in sim_shown, needle
    row = re.search(
        r"│ acme\s+│ voice (\d+)\s+│ voice (\d+)\s+│ ([\d,]+)\s+│ ([\d,]+)\s+│ PASS", sim_out
    )
    assert row is not None, sim_out
    reported, recorded, retail, fell = row.groups()
    assert reported == recorded and retail == fell
    # The README's call: one first minute at 0.05 EUR off-peak or 0.09 EUR at peak.
    assert int(retail.replace(",", "")) in (50_000, 90_000)

    after = _fields(_run(show, server))
    charged = Decimal(int(retail.replace(",", ""))) / 1_000_000
    amount = lambda shown: Decimal(shown.split()[0])  # noqa: E731 - "9.95 EUR" -> 9.95
    assert amount(after["balance"]) == amount(before["balance"]) - charged
    assert _fields(after_shown)["balance"] in ("9.95 EUR", "9.91 EUR")

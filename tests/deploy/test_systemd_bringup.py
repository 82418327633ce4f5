"""The systemd units bring the product up the documented way (docs/operator/packaging.md).

There is no systemd to run them under here, so the test does what systemd would with each unit
in ``deploy/systemd/``: a clean environment from its ``EnvironmentFile=`` lines, its
``WorkingDirectory=``, its ``ExecStart=`` command with ``%i`` / ``%H`` expanded, stopped with its
``KillSignal=``. Paths under ``/etc/ocs``, ``/var/lib/ocs`` and ``/opt/mvna-ocs/venv`` are moved
into a private directory, and the environment files get loopback ports and the private Redis and
PostgreSQL URLs appended, as an operator edits them. Then the install steps of the guide run
(secret, store migration, catalog load), two ``ocs serve`` instances share one Diameter port
beside the exporter, the API, the dispatcher and the renewal scheduler; a simulator run is
charged, exported to the store and verified there; a top-up reaches the dispatcher's files.
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from sim.simulate import simulate
from tests.sim.test_end_to_end import CATALOG, short_scenario
from tests.support.http import get_json

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
OCS = str(Path(sys.executable).parent / "ocs")
READY_TIMEOUT_S = 180.0
EVENT_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0


class Unit:
    """One unit file, read the way systemd reads the keys this test honours."""

    def __init__(self, path: Path, instance: str = "") -> None:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        # systemd allows repeated keys (EnvironmentFile=): configparser keeps the last one, so
        # the repeated ones are read from the text below.
        parser.read(path, encoding="utf-8")
        self.name = path.name.replace("@", f"@{instance}") if instance else path.name
        self.instance = instance
        self.service = parser["Service"]
        self.environment_files = [
            line.partition("=")[2].strip()
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("EnvironmentFile=")
        ]

    def expand(self, text: str) -> str:
        return text.replace("%i", self.instance).replace("%H", socket.gethostname())


class Host:
    """The private directory that stands for the host's file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc" / "ocs"
        self.state = root / "var" / "lib" / "ocs"

    def path(self, text: str) -> str:
        return (
            text.replace("/opt/mvna-ocs/venv/bin/ocs", OCS)
            .replace("/etc/ocs", str(self.etc))
            .replace("/var/lib/ocs", str(self.state))
        )

    def environment(self, unit: Unit) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state)}
        for entry in unit.environment_files:
            optional = entry.startswith("-")
            file = Path(self.path(unit.expand(entry.lstrip("-"))))
            if not file.exists():
                assert optional, f"{unit.name}: EnvironmentFile {file} is missing"
                continue
            for line in file.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    env[key.strip()] = value.strip()
        return env

    def start(self, unit: Unit, log: Path) -> subprocess.Popen[bytes]:
        argv = shlex.split(self.path(unit.expand(unit.service["ExecStart"])))
        workdir = Path(self.path(unit.service.get("WorkingDirectory", "/")))
        workdir.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            argv, env=self.environment(unit), cwd=workdir,
            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _append(file: Path, lines: dict[str, str]) -> None:
    with file.open("a", encoding="utf-8") as out:
        out.write("# set by the operator for this host\n")
        out.writelines(f"{key}={value}\n" for key, value in lines.items())


@pytest.fixture
def host() -> Iterator[Host]:
    # Not pytest's 0700 tmp_path: the private PostgreSQL may run as another user.
    root = Path(tempfile.mkdtemp(prefix="ocs-test-systemd-"))
    os.chmod(root, 0o755)
    yield Host(root)
    shutil.rmtree(root, ignore_errors=True)


def test_every_process_has_a_unit() -> None:
    units = {path.name for path in SYSTEMD.glob("*.service")}
    assert units == {
        "ocs@.service", "ocs-export.service", "ocs-api.service", "ocs-dispatch.service",
        "ocs-renew.service",
    }  # fmt: skip


@pytest.mark.timeout(600)
def test_units_bring_the_product_up_and_charge(
    host: Host, private_redis: EmbeddedRedis, store_url: str
) -> None:
    diameter, http1, http2, sip, export, api = (free_tcp_port() for _ in range(6))
    # The guide's install steps: files into /etc/ocs, the state directory, the tenant secret.
    host.etc.mkdir(parents=True)
    host.state.mkdir(parents=True)
    for name in ("config.toml", "ocs.env", "ocs-1.env", "ocs-2.env", "dispatch.yaml"):
        shutil.copy(SYSTEMD / name, host.etc / name)
    shutil.copytree(CATALOG, host.etc / "catalog")
    secret = host.state / "tenant.secret"
    secret.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
    secret.chmod(0o600)
    _append(host.etc / "ocs.env", {
        "OCS_REDIS_URL": private_redis.url, "OCS_STORE_URL": store_url,
        "OCS_DIAMETER_LISTEN_HOST": "127.0.0.1", "OCS_DIAMETER_LISTEN_PORT": str(diameter),
        "OCS_EXPORT_LISTEN_PORT": str(export), "OCS_API_LISTEN": f"127.0.0.1:{api}",
    })  # fmt: skip
    _append(host.etc / "ocs-1.env", {"OCS_HTTP_LISTEN_PORT": str(http1),
                                     "OCS_SIP_LISTEN_PORT": str(sip)})  # fmt: skip
    _append(host.etc / "ocs-2.env", {"OCS_HTTP_LISTEN_PORT": str(http2)})
    dispatch = host.etc / "dispatch.yaml"
    plugins = host.path(dispatch.read_text(encoding="utf-8"))
    dispatch.write_text(plugins.replace("interval_s: 60", "interval_s: 1"), encoding="utf-8")
    admin_env = host.environment(Unit(SYSTEMD / "ocs@.service", "1"))
    for step in (
        [OCS, "store", "migrate"],
        [OCS, "catalog", "load", str(host.etc / "catalog"), "--redis-url", private_redis.url,
         "--tenant-secret-file", str(secret)],
    ):  # fmt: skip
        done = subprocess.run(step, env=admin_env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{step}: {done.stdout}{done.stderr}"

    units = [
        Unit(SYSTEMD / "ocs@.service", "1"),
        Unit(SYSTEMD / "ocs@.service", "2"),
        Unit(SYSTEMD / "ocs-export.service"),
        Unit(SYSTEMD / "ocs-api.service"),
        Unit(SYSTEMD / "ocs-dispatch.service"),
        Unit(SYSTEMD / "ocs-renew.service"),
    ]
    logs = {unit.name: host.root / f"{unit.name}.log" for unit in units}
    running = {unit.name: host.start(unit, logs[unit.name]) for unit in units}

    def tail(name: str) -> str:
        return f"{name}: {logs[name].read_text(errors='replace')[-3000:]}"

    try:
        health = [
            ("ocs@1.service", f"http://127.0.0.1:{http1}/healthz"),
            ("ocs@2.service", f"http://127.0.0.1:{http2}/healthz"),
            ("ocs-export.service", f"http://127.0.0.1:{export}/healthz"),
            ("ocs-api.service", f"http://127.0.0.1:{api}/healthz"),
        ]
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(health)
        while pending:
            name, url = pending[0]
            assert running[name].poll() is None, tail(name)
            assert time.monotonic() < deadline, "not ready: " + tail(name)
            try:
                if get_json(url).get("status") in ("ok", "degraded"):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            time.sleep(0.2)

        # The renewal scheduler made its first pass over the stored catalog's tenants.
        while "acme" not in logs["ocs-renew.service"].read_text(errors="replace"):
            assert running["ocs-renew.service"].poll() is None, tail("ocs-renew.service")
            assert time.monotonic() < deadline, "no renewal pass: " + tail("ocs-renew.service")
            time.sleep(0.2)

        scenario = short_scenario(
            diameter,
            mix={"data": 0.6, "voice": 0.2, "sms": 0.2},
            target={"diameter_port": diameter, "sip_port": sip,
                    "http_url": f"http://127.0.0.1:{http1}"},
        )  # fmt: skip
        outcome = simulate(
            scenario, redis_url=private_redis.url, store_url=store_url, export_wait_s=60,
            progress=False, json_path=host.root / "r.json", html_path=host.root / "r.html",
            quiet=True,
        )  # fmt: skip
        verification = outcome.report["verification"]
        assert outcome.passed, json.dumps(verification, indent=1)
        assert verification["store"]["records"] > 0 and verification["store"]["trimmed"]

        # A day-2 top-up is an event: the dispatcher's default plug-in writes it to a file.
        topup = subprocess.run(
            [OCS, "account", "topup", "4917099000042", "1.00", "--op-id", "systemd-test-1"],
            env=admin_env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert topup.returncode == 0, topup.stdout + topup.stderr
        events = host.state / "events"
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while not any(
            "systemd-test-1" in csv.read_text(encoding="utf-8")
            for csv in events.glob("*.csv")
            if Path(f"{csv}.manifest.json").exists()
        ):
            assert running["ocs-dispatch.service"].poll() is None, tail("ocs-dispatch.service")
            assert time.monotonic() < deadline, (
                f"no event file in {sorted(p.name for p in events.glob('*'))}: "
                + tail("ocs-dispatch.service")
            )
            time.sleep(0.2)
    finally:
        stop = getattr(signal, units[0].service.get("KillSignal", "SIGTERM"))
        for process in running.values():
            if process.poll() is None:
                process.send_signal(stop)
        codes = {}
        for name, process in running.items():
            try:
                codes[name] = process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
    for name, code in codes.items():
        assert code == 0, tail(name)

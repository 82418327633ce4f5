"""Packaging checked without a container engine: the Prometheus rules (promtool), the Grafana
dashboard (its queries name metrics the server exports), compose.yaml (its ocs commands are
accepted by the CLI, the files it mounts exist), the Dockerfile and the systemd units."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from ocs.cli import build_parser
from ocs.config import ConfigError, load_config
from ocs.dispatcher import DispatchMetrics
from ocs.metrics import Metrics
from ocs.sip.metrics import SipMetrics
from ocs.sip_charging.metrics import SipMetricsCollector

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "ocs.yml"
EVENT_RULES = DEPLOY / "prometheus" / "rules" / "events.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "ocs.json"
OUR_PREFIXES = ("ocs_", "process_", "python_")


def exported_names() -> set[str]:
    """Every sample name ``ocs serve``'s /metrics can show (the SIP collector included)."""
    metrics = Metrics()
    metrics.registry.register(SipMetricsCollector(SipMetrics()))
    dispatch = DispatchMetrics()  # `ocs dispatch --metrics-port`: its own /metrics
    names: set[str] = set()
    families = [*metrics.registry.collect(), *dispatch.registry.collect()]
    for family in families:
        if isinstance(family, CounterMetricFamily) or family.type == "counter":
            names.add(f"{family.name}_total")
        elif isinstance(family, HistogramMetricFamily) or family.type == "histogram":
            names.update(f"{family.name}_{s}" for s in ("bucket", "count", "sum"))
        else:
            names.add(family.name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression uses (ours: ocs_*, process_*, python_*)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not names
    return {n for n in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if n.startswith(OUR_PREFIXES)}


def test_exported_names_include_the_standard_and_new_metrics() -> None:
    names = exported_names()
    for name in (
        "process_cpu_seconds_total",
        "python_gc_collections_total",
        "ocs_build_info",
        "ocs_ledger_call_seconds_bucket",
        "ocs_ledger_pool_waiting",
        "ocs_catalog_info",
        "ocs_sip_invites_total",
    ):
        assert name in names, name
    assert metric_names('rate(ocs_x_total{a="ocs_y"}[5m]) / process_z') == {
        "ocs_x_total",
        "process_z",
    }


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: make test-sysdeps installs the Debian package prometheus"
    return path


def test_promtool_checks_the_rules_and_the_config(promtool: str) -> None:
    for args in (
        ["check", "rules", str(RULES)],
        ["check", "rules", str(EVENT_RULES)],
        ["test", "rules", str(DEPLOY / "prometheus" / "tests" / "events_test.yml")],
        ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        ["test", "rules", str(DEPLOY / "prometheus" / "tests" / "ocs_test.yml")],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_alert_rules_name_existing_metrics() -> None:
    names = exported_names()
    exprs = [
        r["expr"]
        for path in (RULES, EVENT_RULES)
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for r in group["rules"]
    ]
    assert len(exprs) >= 10
    missing = {n for e in exprs for n in metric_names(e)} - names
    assert not missing, f"rules use metrics /metrics does not export: {sorted(missing)}"


def test_dashboard_parses_and_names_existing_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert dashboard["uid"] and len(exprs) >= 12
    used = {n for e in exprs for n in metric_names(e)}
    assert {"ocs_cc_requests_total", "ocs_ledger_call_seconds_bucket"} <= used
    missing = used - exported_names()
    assert not missing, f"dashboard queries metrics /metrics does not export: {sorted(missing)}"
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    provisioned = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text(encoding="utf-8")
    )
    assert uids == {d["uid"] for d in provisioned["datasources"]}


def _compose() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(compose, dict)
    return compose


def test_compose_brings_up_the_product_and_its_dependencies() -> None:
    services = _compose()["services"]
    assert {"ocs", "redis", "postgres", "prometheus", "grafana"} <= set(services)
    assert {"store-migrate", "export", "api", "dispatch", "renew"} <= set(services)
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command


def test_compose_ocs_commands_are_accepted_by_the_cli() -> None:
    services = _compose()["services"]
    ours = {name: s for name, s in services.items() if s.get("image") == "mvna-ocs:latest"}
    assert "ocs" in ours
    parser = build_parser()
    for name, service in ours.items():
        command = service["command"]
        args = parser.parse_args(command)  # SystemExit (a test failure) on a bad command
        assert callable(args.func), name


def test_compose_mounts_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_container_config_loads() -> None:
    config = load_config(DEPLOY / "docker" / "config.toml", environ={})
    assert config.redis.url == "redis://redis:6379/0"
    assert config.diameter.listen_host == config.http.listen_host == "0.0.0.0"


def test_dockerfile_is_slim_non_root_and_installs_the_package() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim"] * 2
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "pip install" in text and 'ENTRYPOINT ["ocs"]' in text
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))  # type: ignore[union-attr]
    build_parser().parse_args(command)
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        assert (ROOT / source).exists(), source


UNITS = (
    "ocs@.service", "ocs-export.service", "ocs-api.service", "ocs-dispatch.service",
    "ocs-renew.service",
)  # fmt: skip


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / name, encoding="utf-8")
    return unit


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit_runs_an_accepted_command_as_a_system_user(name: str) -> None:
    unit = _unit(name)
    assert unit["Service"]["User"] not in ("root", "0")
    binary, *command = shlex.split(unit["Service"]["ExecStart"].replace("%H", "host"))
    assert binary.endswith("/bin/ocs")
    build_parser().parse_args(command)
    assert load_config(DEPLOY / "systemd" / "config.toml", environ={})


@pytest.mark.parametrize("env_file", ["ocs.env", "ocs-1.env", "ocs-2.env"])
def test_systemd_environment_files_name_real_keys(env_file: str) -> None:
    environ = {}
    for line in (DEPLOY / "systemd" / env_file).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            environ[key] = value
    assert environ
    try:
        load_config(None, environ=environ)
    except ConfigError as exc:
        pytest.fail(f"{env_file}: {exc}")


@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verifies_the_unit(tmp_path: Path, name: str) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (the other unit checks above still ran)")
    text = (DEPLOY / "systemd" / name).read_text(encoding="utf-8")
    # verify wants the binary and the shared environment file to exist: point at this tree's.
    ocs = shutil.which("ocs") or str(Path(__import__("sys").executable).parent / "ocs")
    text = text.replace("/opt/mvna-ocs/venv/bin/ocs", ocs)
    text = text.replace("EnvironmentFile=/etc/ocs/ocs.env", "EnvironmentFile=-/etc/ocs/ocs.env")
    unit = tmp_path / name
    unit.write_text(text, encoding="utf-8")
    done = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr

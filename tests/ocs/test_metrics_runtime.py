"""Process, Python, build, catalog and ledger-pool metrics: read at scrape time, nothing per CCR
except the ledger call latency (one histogram observation)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import platform

from prometheus_client.parser import text_string_to_metric_families

from balance.in_flight import InFlightLimit
from ocs.app import catalog_version
from ocs.metrics import Metrics
from tariffs.loader import load_catalog_sources, load_texts
from tests.support.charging import DEMO_CATALOG


def families(metrics: Metrics) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def test_standard_process_and_python_collectors_are_in_our_registry() -> None:
    got = families(Metrics())
    for name in (
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_collections",
        "python_gc_objects_collected",
    ):
        assert name in got, name
    (_, labels, value) = got["python_info"][0]
    assert labels["version"] == platform.python_version() and value == 1


def test_two_metrics_objects_do_not_share_collectors() -> None:
    """Own registries: a second server object in one process (tests) registers again fine."""
    first, second = Metrics(), Metrics()
    assert first.registry is not second.registry
    assert "process_cpu_seconds" in families(second)


def test_build_info_names_the_installed_release() -> None:
    ((_, labels, value),) = families(Metrics())["ocs_build_info"]
    assert labels == {
        "version": importlib.metadata.version("mvna-ocs"),
        "python": platform.python_version(),
    }
    assert value == 1


def test_catalog_version_and_reload_time() -> None:
    metrics = Metrics()
    got = families(metrics)
    assert got["ocs_catalog_info"] == []  # nothing served yet
    assert got["ocs_catalog_loaded_timestamp_seconds"][0][2] == 0
    metrics.catalog_loaded("0123456789ab", tenants=2, at=1_790_000_000.5)
    metrics.catalog_reloads_total.labels("refused").inc()
    got = families(metrics)
    assert got["ocs_catalog_info"] == [("ocs_catalog_info", {"version": "0123456789ab"}, 1)]
    assert got["ocs_catalog_loaded_timestamp_seconds"][0][2] == 1_790_000_000.5
    assert got["ocs_catalog_tenants"][0][2] == 2
    reloads = {s[1]["outcome"]: s[2] for s in got["ocs_catalog_reloads"] if s[0].endswith("total")}
    assert reloads == {"loaded": 1, "refused": 1}


def test_catalog_version_follows_the_content() -> None:
    catalog, sources = load_catalog_sources(str(DEMO_CATALOG))
    same = load_texts(sources)
    changed = load_texts(
        [
            (name, text.replace("opening_balance: 10.00", "opening_balance: 11.00"))
            for name, text in sources
        ]
    )
    assert catalog_version(catalog) == catalog_version(same)
    assert len(catalog_version(catalog)) == 12
    assert catalog_version(changed) != catalog_version(catalog)


async def test_pool_wait_is_counted_only_for_calls_that_wait() -> None:
    pool = InFlightLimit(1)
    assert pool.try_enter()
    assert (pool.waits, pool.wait_s) == (0, 0.0)
    waiter = asyncio.ensure_future(pool.enter())
    for _ in range(100):
        if pool.waiting:
            break
        await asyncio.sleep(0)
    assert pool.waiting == 1 and pool.waits == 1
    await asyncio.sleep(0.01)
    pool.leave()  # hands the slot to the waiter
    await asyncio.wait_for(waiter, 30)
    assert pool.inside == 1 and pool.waiting == 0
    assert pool.wait_s > 0


def test_pool_stats_are_rendered_per_tenant() -> None:
    metrics = Metrics()
    metrics.ledger_pools = lambda: [("acme", 64, 3, 1, 7, 0.5), ("globex", 64, 0, 0, 0, 0.0)]
    got = families(metrics)
    by = {
        (s[0], s[1]["tenant"]): s[2]
        for name in got
        if name.startswith("ocs_ledger_pool")
        for s in got[name]
    }
    assert by[("ocs_ledger_pool_size", "acme")] == 64
    assert by[("ocs_ledger_pool_in_use", "acme")] == 3
    assert by[("ocs_ledger_pool_waiting", "acme")] == 1
    assert by[("ocs_ledger_pool_waits_total", "acme")] == 7
    assert by[("ocs_ledger_pool_wait_seconds_total", "acme")] == 0.5
    assert by[("ocs_ledger_pool_in_use", "globex")] == 0

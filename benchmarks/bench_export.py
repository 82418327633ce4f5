"""Export benchmark: how fast ``ocs export`` drains the usage streams into PostgreSQL, against a
plain binary COPY of the same rows (the ceiling, same run); and what running the exporter beside
``ocs serve`` costs while ``ocs sim`` charges: export lag p99, Redis memory (start/end, bytes
per record), CCR p99 with and without the exporter.

1. Drain: ``--records`` usage records (with their context, as the ledger writes them) are put
   in one tenant's 1,024 shard streams; an in-process exporter (the real adapter, on the
   tenant's ACL user, the default [export] settings) drains them into a fresh store;
   records/s from its start until the store holds them all. Ceiling, like for like: the same
   rows (the exporter's own COPY tuples), plain binary COPY in batches of the same size into
   the same table (the month's partition of ``usage_records``, with its identity index) of a
   fresh database on the same server, no Redis, no decoding, no conflict handling; also into a
   plain table of the same columns without any index (``copy_plain_table``, the looser bound
   earlier results used). Then ``UsageStore.store_values`` of the same tuples alone.
2. Load: ``ocs serve`` on an embedded Redis; ``--load-rounds`` rounds of ``ocs sim`` at
   ``--rate`` CCR/s for ``--sim-s`` seconds without the exporter (streams grow: bytes per
   record), then with ``ocs export`` running as deployed (started for the phase once it has
   drained the previous phase's records; lag sampled from its /healthz every 0.5 s). Per phase:
   CCR p99, answers/s, Redis used_memory at start and end, Redis time per command (INFO
   commandstats) and forks, CPU seconds of serve / redis / postgres / the exporter / the
   benchmark with the simulator; load average per round. ``--export KEY=VALUE`` changes an
   [export] setting of the exporter (e.g. ``sched_idle=false`` for the comparison).

The issue-12 figures in one command (drain 3 rounds, then 10 minutes without and 10 with):

    .venv/bin/python -m benchmarks.bench_export --rounds 3 --rate 1000 --sim-s 600

Shorter: ``--skip-load`` / ``--skip-drain``, ``--sim-s 60 --load-rounds 3``. Results are merged
into ``benchmarks/results/export.json`` (a partial run replaces only what it measured).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import redis
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import tenant_username
from balance.records import DrawnBucket, LedgerRecord, LegCharge, RecordContext
from balance.tenants import provision_tenant, tenant_password
from benchmarks.bench_e2e import bench_catalog
from benchmarks.bench_ledger import machine_facts
from ocs.catalog_store import store_catalog
from ocs.config import ExportConfig
from ocs.embedded_postgres import EmbeddedPostgres
from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from ocs.exporter import Exporter, tune_process
from ocs.logging_setup import make_logger
from sim.scenario import load_scenario
from sim.simulate import simulate
from tariffs.loader import load_catalog_sources
from usage import migrate
from usage import sql as q
from usage.export_core import CopyValues, Entry, copy_rows
from usage.store import UsageStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).parent / "results" / "export.json"
TENANT = "acme"
SECRET = b"bench-export-secret-0123456789ab"
_ENCODE = msgspec.msgpack.Encoder()


def make_record(n: int, now_s: float) -> LedgerRecord:
    """A data usage record of a Gy session, as the CCR script writes it (context included)."""
    msisdn = f"4917099{n % 100_000:06d}"
    return LedgerRecord(
        kind="usage", tenant=TENANT, subscriber=msisdn, session_id=f"pgw;{n // 4};bench",
        op_id=f"pgw;{n // 4};bench:{n % 4}", service="data", rating_group=10,
        units=1_048_576, retail=0, wholesale=2_000, buckets=(DrawnBucket("s20.data#1", 1_048_576),),
        leakage_units=0, leakage_money=0,
        legs=(LegCharge("acme:2026-01:3", 1_048_576, 0, 2_000, 0),), at_s=now_s + n / 1000,
        balance_after=10_000_000, reason="", money_delta=0,
        context=RecordContext(
            source="gy", msisdn=msisdn, imsi=f"26201990{n % 100_000:07d}", started_at_s=now_s,
            visited_plmn="26201", apn="internet", charging_id=str(n), currency="EUR",
            rate_card_version="2026-01",
        ),
    )  # fmt: skip


def fill_streams(url: str, records: int, now_s: float) -> None:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for n in range(records):
        stream = keys.stream_key(keys.shard_prefix(TENANT, n % keys.VSHARDS))
        pipe.xadd(stream, {"r": _ENCODE.encode(make_record(n, now_s))})
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()
    client.close()


async def drain(redis_url: str, store_url: str, records: int, batch: int) -> float:
    """Seconds the exporter takes to store ``records`` pre-filled records."""
    admin = aioredis.Redis.from_url(redis_url)
    _, sources = load_catalog_sources(ROOT / "examples" / "catalog")
    await store_catalog(admin, sources)

    async def tenant_client(tenant: str) -> Any:
        password = tenant_password(SECRET, tenant)
        await provision_tenant(admin, tenant, password)
        return aioredis.Redis.from_url(
            redis_url, username=tenant_username(tenant), password=password, socket_timeout=30
        )

    store = await UsageStore.open(store_url, pool_max=4)
    # As deployed (the defaults), but for the lag pass (nothing to measure in a drain).
    config = ExportConfig(batch_size=batch, lag_interval_s=3600)
    exporter = Exporter(admin, tenant_client, store, config, make_logger("warning"))
    gc_thresholds = gc.get_threshold()
    tune_process(0)  # as `ocs export` does (the CPU priority aside: nothing else runs here)
    stored = exporter.metrics.stored.labels(TENANT)
    started = time.perf_counter()
    task = asyncio.create_task(exporter.run())
    # The exporter's own count of committed rows (a count(*) every few ms would load the
    # server the exporter is writing to); the store's count is checked once at the end.
    while stored._value.get() < records:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    exporter.stop_event.set()
    await task
    gc.unfreeze()
    gc.set_threshold(*gc_thresholds)
    if (found := await _count(store, TENANT)) != records:
        raise RuntimeError(f"the store holds {found} records, {records} were exported")
    await store.close()
    await admin.aclose()
    return elapsed


async def _count(store: UsageStore, tenant: str) -> int:
    try:
        return (await store.count_and_totals(tenant)).count
    except Exception:
        return 0


def same_rows(records: int, now_s: float) -> CopyValues:
    """The rows the exporter stores, as it builds them (COPY tuples by month)."""
    entries = [Entry(n % keys.VSHARDS, f"{n}-0", make_record(n, now_s)) for n in range(records)]
    by_month, _ = copy_rows(TENANT, entries, {"data": "byte"})
    return by_month


def copy_ceiling(store_url: str, rows: CopyValues, batch: int, *, same_table: bool) -> float:
    """Seconds for a plain binary COPY of the same rows (the tuples the exporter COPYs),
    ``batch`` rows per transaction, on the same server: nothing of the exporter (no Redis, no
    decoding, no conflict handling), only PostgreSQL taking the rows.

    ``same_table``: into the very table the exporter writes (the month's partition of
    ``usage_records``, with its unique identity index), in a database of its own: the
    like-for-like ceiling. Otherwise into a plain table of the same columns without any index
    (what the rows cost PostgreSQL at the least; kept for comparison with earlier runs)."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        tables: dict[Any, str] = {}
        if same_table:
            for month in rows:
                found = conn.execute(q.ENSURE_MONTH, (month,)).fetchone()
                assert found is not None
                tables[month] = found[0]
        else:
            columns = ", ".join(f"{name} {kind}" for name, kind in q.BATCH_COLUMNS)
            conn.execute(f"CREATE TABLE bench_copy ({columns})")
            tables = dict.fromkeys(rows, "bench_copy")
        started = time.perf_counter()
        for month, tuples in rows.items():
            statement = (
                f"COPY {tables[month]} ({', '.join(q.RECORD_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            )
            for start in range(0, len(tuples), batch):
                with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                    copy.set_types(q.BATCH_TYPES)
                    for values in tuples[start : start + batch]:
                        copy.write_row(values)
        elapsed = time.perf_counter() - started
        if not same_table:
            conn.execute("DROP TABLE bench_copy")
    return elapsed


async def store_only(store_url: str, rows: CopyValues, batch: int) -> float:
    """Seconds for ``UsageStore.store_values`` of the same rows (no Redis): the store's share
    (the unique key's check included)."""
    store = await UsageStore.open(store_url, pool_max=2)
    tuples = [(month, v) for month, values in rows.items() for v in values]
    try:
        await store.ensure_tenant(TENANT)
        started = time.perf_counter()
        for start in range(0, len(tuples), batch):
            by_month: CopyValues = {}
            for month, values in tuples[start : start + batch]:
                by_month.setdefault(month, []).append(values)
            await store.store_values(by_month, (TENANT,))
        return time.perf_counter() - started
    finally:
        await store.close()


def redis_memory(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


# Commands the exporter sends (all of them stream commands; charging sends scripts).
EXPORT_COMMANDS = ("xreadgroup", "xack", "xtrim", "xpending", "xinfo", "xlen", "xrange",
                   "xautoclaim", "xgroup")  # fmt: skip


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds) of a process (0 seconds once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0, 0.0
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(roots: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its live descendants, a process
    counted under its nearest named ancestor (PostgreSQL's backends under its postmaster; the
    benchmark's own process and ``ocs sim``'s workers under it, without the servers it
    started): where a phase's CPU went."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent, seconds = _cpu_of(int(entry.name))
            parents[int(entry.name)], used[int(entry.name)] = parent, seconds
    names = {pid: name for name, pid in roots.items() if pid is not None}
    out = dict.fromkeys(names.values(), 0.0)
    for pid, seconds in used.items():
        ancestor = pid
        while ancestor and ancestor not in names:
            ancestor = parents.get(ancestor, 0)
        if ancestor:
            out[names[ancestor]] += seconds
    return out


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def client_info(url: str, section: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        info: dict[str, Any] = client.info(section)
        return info
    finally:
        client.close()


def redis_time(url: str, reset: bool = False) -> dict[str, Any]:
    """Redis's own time (INFO commandstats, microseconds) in the exporter's stream commands and
    in everything else, since the last reset: what the exporter costs the server that
    charges."""
    client = redis.Redis.from_url(url)
    try:
        if reset:
            client.config_resetstat()
            return {}
        stats = client.info("commandstats")
    finally:
        client.close()
    export_us = sum(
        float(v["usec"]) for k, v in stats.items()
        if k.removeprefix("cmdstat_").split("|")[0] in EXPORT_COMMANDS
    )  # fmt: skip
    total_us = sum(float(v["usec"]) for v in stats.values())
    out: dict[str, Any] = {
        "export_commands_us": export_us,
        "other_commands_us": total_us - export_us,
    }
    # Forks (AOF rewrites) since the reset: a rewrite's child takes a core for a while, which
    # on two cores shows in the CCR p99 of whichever phase it falls in.
    out["forks"] = int(client_info(url, "stats").get("total_forks", 0))
    out["by_command"] = {
        k.removeprefix("cmdstat_"): {"calls": v["calls"], "usec": v["usec"]}
        for k, v in sorted(stats.items(), key=lambda kv: -float(kv[1]["usec"]))[:12]
    }
    return out


def stream_entries(url: str, tenants: tuple[str, ...] = ("acme", "globex")) -> int:
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for tenant in tenants:
        for shard in range(keys.VSHARDS):
            pipe.xlen(keys.stream_key(keys.shard_prefix(tenant, shard)))
    total = sum(int(n) for n in pipe.execute())
    client.close()
    return total


def stream_diagnostics(url: str) -> dict[str, Any]:
    """What the streams hold when the run ends: entries, pending, the oldest entry's age."""
    client = redis.Redis.from_url(url)
    out: dict[str, Any] = {}
    try:
        for tenant in ("acme", "globex"):
            names = [keys.stream_key(keys.shard_prefix(tenant, v)) for v in range(keys.VSHARDS)]
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.xlen(name)
                pipe.xpending(name, "ocs-export")
            replies = pipe.execute(raise_on_error=False)
            lengths = replies[0::2]
            pending = [r.get("pending", 0) if isinstance(r, dict) else 0 for r in replies[1::2]]
            busy = [n for n, length in zip(names, lengths, strict=True) if length]
            firsts = [client.xrange(n, count=1) for n in busy[:50]]
            oldest: list[Any] = [first[0][0] for first in firsts if first]
            ages = [time.time() - int(str(i, "ascii").split("-")[0]) / 1000 for i in oldest]
            out[tenant] = {
                "entries": sum(lengths), "pending": sum(pending), "busy_streams": len(busy),
                "oldest_age_s": round(max(ages, default=0.0), 1),
            }  # fmt: skip
    finally:
        client.close()
    return out


def _wait_http(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def _health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            result: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        result = json.loads(exc.read())
    return result


def sim_phase(
    workdir: Path,
    redis_url: str,
    port: int,
    catalog: Path,
    rate: float,
    seconds: float,
    store_url: str | None = None,
) -> dict[str, Any]:
    scenario = load_scenario(
        None,
        {
            "load": {"rate": rate, "rate_unit": "ccr", "duration_s": seconds, "ramp_s": 1.0,
                     "drain_s": 10},
            "mix": {"data": 1, "voice": 0, "sms": 0, "sip": 0},
            "data": {"updates": 3, "update_interval_s": 0.05, "rating_groups": [10, 20],
                     "usage_bytes": 10_000},
            "roaming_share": 0.0,
            "target": {"diameter_port": port},
            "catalog": str(catalog),
            "subscribers_per_tenant_max": 2000,
            "workers": 1,
        },
    )  # fmt: skip
    outcome = simulate(
        scenario, redis_url=redis_url, progress=False, quiet=True, store_url=store_url,
        json_path=workdir / "sim.json", html_path=workdir / "sim.html", export_wait_s=300,
    )  # fmt: skip
    report = outcome.report
    return {
        "answers_per_s": report["throughput"]["steady_answers_per_s"],
        "p99_us": report["latency_us"]["p99"],
        "verified": outcome.passed,
    }


def _start_exporter(
    workdir: Path, redis_url: str, store_url: str, port: int, settings: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """``ocs export`` as deployed beside ``ocs serve`` (its [export] settings from a config
    file: the defaults unless ``--export KEY=VALUE`` says otherwise)."""
    config = workdir / "export.toml"
    config.write_text(
        "[export]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()),
        encoding="utf-8",
    )
    exporter = subprocess.Popen(
        [
            sys.executable, "-m", "ocs", "export", "--config", str(config),
            "--redis-url", redis_url, "--redis-data-dir", str(workdir / "redis-load"),
            "--store-url", store_url, "--listen", f"127.0.0.1:{port}", "--log-level", "warning",
        ],
        stdout=(workdir / "export.log").open("ab"), stderr=subprocess.STDOUT, cwd=workdir,
    )  # fmt: skip
    _wait_http(port, exporter)
    return exporter


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _percentile(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))] if ordered else None


def load_runs(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``--load-rounds`` rounds of: ``ocs sim`` without the exporter, then with it (started
    for the phase, after it drained the previous phase's records; stopped after it). Alternating
    within one run so both sides see the same machine; the ratio is per round, then the median."""
    redis_server = EmbeddedRedis(workdir / "redis-load", appendfsync="everysec")
    redis_server.start()
    pg = EmbeddedPostgres(workdir / "pg-load")
    pg.start()
    migrate.apply(pg.url)
    catalog = bench_catalog(workdir / "catalog")
    diameter, http, export_port = free_tcp_port(), free_tcp_port(), free_tcp_port()
    serve = subprocess.Popen(
        [
            sys.executable, "-m", "ocs", "serve", "--diameter-listen", f"127.0.0.1:{diameter}",
            "--http-listen", f"127.0.0.1:{http}", "--no-sip", "--redis-url", redis_server.url,
            "--redis-data-dir", str(workdir / "redis-load"), "--catalog", str(catalog),
            "--log-level", "warning",
        ],
        stdout=(workdir / "serve.log").open("wb"), stderr=subprocess.STDOUT, cwd=workdir,
    )  # fmt: skip
    exporter: subprocess.Popen[bytes] | None = None
    rounds: list[dict[str, Any]] = []
    try:
        _wait_http(http, serve)
        for number in range(args.load_rounds):
            load_before = os.getloadavg()
            memory_0, entries_0 = redis_memory(redis_server.url), stream_entries(redis_server.url)
            redis_time(redis_server.url, reset=True)
            roots = {"serve": serve.pid, "redis": redis_server.pid, "postgres": pg.pid,
                     "bench_and_sim": os.getpid()}  # fmt: skip
            cpu_0 = cpu_seconds(roots)
            without = sim_phase(workdir, redis_server.url, diameter, catalog, args.rate, args.sim_s)
            without["cpu_s"] = cpu_used(cpu_0, cpu_seconds(roots))
            without["redis_time"] = redis_time(redis_server.url)
            memory_1, entries_1 = redis_memory(redis_server.url), stream_entries(redis_server.url)
            grown = max(1, entries_1 - entries_0)
            without.update(used_memory_start=memory_0, used_memory_end=memory_1,
                           stream_records=grown,
                           bytes_per_record=round((memory_1 - memory_0) / grown, 1))  # fmt: skip
            exporter = _start_exporter(
                workdir, redis_server.url, pg.url, export_port, args.export_settings
            )
            # The phase without left its records in the streams: they go first, so the phase
            # with the exporter starts from empty streams.
            deadline = time.monotonic() + 600
            while stream_entries(redis_server.url) and time.monotonic() < deadline:
                time.sleep(0.5)
            # /healthz reports the lag of the exporter's last lag pass: one more pass first,
            # so no sample of this phase is the age of the previous phase's backlog.
            time.sleep(ExportConfig().lag_interval_s + 1.0)
            memory_2 = redis_memory(redis_server.url)
            redis_time(redis_server.url, reset=True)
            lags: list[float] = []
            sampling = threading.Event()

            def sample(lags: list[float] = lags, sampling: threading.Event = sampling) -> None:
                while not sampling.is_set():
                    with_lag = _health(export_port).get("lag_s", {})
                    lags.append(max(with_lag.values(), default=0.0))
                    sampling.wait(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            roots = {**roots, "export": exporter.pid}
            cpu_0 = cpu_seconds(roots)
            with_exporter = sim_phase(
                workdir, redis_server.url, diameter, catalog, args.rate, args.sim_s, pg.url
            )
            with_exporter["cpu_s"] = cpu_used(cpu_0, cpu_seconds(roots))
            sampling.set()
            sampler.join()
            memory_3 = redis_memory(redis_server.url)
            with_exporter["redis_time"] = redis_time(redis_server.url)
            with_exporter["streams_at_end"] = stream_diagnostics(redis_server.url)
            with_exporter.update(
                used_memory_start=memory_2, used_memory_end=memory_3,
                lag_p99_s=_percentile(lags, 0.99), lag_max_s=max(lags, default=None),
                lag_samples=len(lags),
            )  # fmt: skip
            _stop(exporter)
            exporter = None
            ratio = round(with_exporter["p99_us"] / max(1, without["p99_us"]), 3)
            rounds.append({
                "without_exporter": without, "with_exporter": with_exporter, "p99_ratio": ratio,
                "load_average_before_after": [load_before, os.getloadavg()],
            })  # fmt: skip
            print(
                f"load round {number + 1}: p99 {without['p99_us']} -> {with_exporter['p99_us']}"
                f" us (x{ratio}), lag p99 {with_exporter['lag_p99_s']} s, load "
                f"{load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        _stop(exporter)
        _stop(serve)
        pg.stop()
        redis_server.stop()
    return _load_summary(rounds, args)


def _load_summary(rounds: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The figures of issue 12 over the rounds (the rounds themselves kept alongside)."""
    if not rounds:
        return {"rounds": []}
    withs = [r["with_exporter"] for r in rounds]
    withouts = [r["without_exporter"] for r in rounds]
    lag_p99s = [w["lag_p99_s"] for w in withs if w["lag_p99_s"] is not None]
    stored = sum(
        w["redis_time"]["by_command"].get("xadd", {}).get("calls", 0) for w in withs
    )  # fmt: skip
    return {
        "rate_ccr_per_s": args.rate,
        "seconds_per_phase": args.sim_s,
        "export_settings": args.export_settings,
        "p99_us_without": [w["p99_us"] for w in withouts],
        "p99_us_with": [w["p99_us"] for w in withs],
        "p99_ratio_per_round": [r["p99_ratio"] for r in rounds],
        "p99_ratio_median": statistics.median(r["p99_ratio"] for r in rounds),
        "p99_ratio_of_medians": round(
            statistics.median(w["p99_us"] for w in withs)
            / max(1, statistics.median(w["p99_us"] for w in withouts)),
            3,
        ),
        "answers_per_s_without": [w["answers_per_s"] for w in withouts],
        "answers_per_s_with": [w["answers_per_s"] for w in withs],
        "lag_p99_s_max_over_rounds": max(lag_p99s, default=None),
        "records_written_with_exporter": stored,
        "bytes_per_record_in_streams": [w["bytes_per_record"] for w in withouts],
        "used_memory_with_exporter_start_end": [
            [w["used_memory_start"], w["used_memory_end"]] for w in withs
        ],
        "cpu_s_without_with": [
            [w["cpu_s"], x["cpu_s"]] for w, x in zip(withouts, withs, strict=True)
        ],
        "redis_forks_without_with": [
            [w["redis_time"]["forks"], x["redis_time"]["forks"]]
            for w, x in zip(withouts, withs, strict=True)
        ],
        "redis_us_export_vs_other_commands": [
            [w["redis_time"]["export_commands_us"], w["redis_time"]["other_commands_us"]]
            for w in withs
        ],
        "load_average_before_after": [r["load_average_before_after"] for r in rounds],
        "rounds": rounds,
    }


def drain_runs(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    redis_server = EmbeddedRedis(workdir / "redis-drain", appendfsync="everysec")
    redis_server.start()
    pg = EmbeddedPostgres(workdir / "pg-drain")
    pg.start()
    migrate.apply(pg.url)
    now_s = time.time()
    rounds: list[dict[str, float]] = []
    try:
        for number in range(args.rounds):
            database = f"drain_{number}"
            url = pg.create_database(database)
            migrate.apply(url)
            fill_streams(redis_server.url, args.records, now_s)
            cpu_0 = time.process_time()
            drain_s = asyncio.run(drain(redis_server.url, url, args.records, args.batch))
            cpu_us = (time.process_time() - cpu_0) / args.records * 1e6
            left = stream_entries(redis_server.url, (TENANT,))
            rows = same_rows(args.records, now_s)
            ceiling_url = pg.create_database(f"ceiling_{number}")
            migrate.apply(ceiling_url)
            copy_s = copy_ceiling(ceiling_url, rows, args.batch, same_table=True)
            plain_s = copy_ceiling(url, rows, args.batch, same_table=False)
            store_url = pg.create_database(f"store_only_{number}")
            migrate.apply(store_url)
            store_s = asyncio.run(store_only(store_url, rows, args.batch))
            rounds.append({
                "exporter_records_per_s": round(args.records / drain_s),
                "copy_records_per_s": round(args.records / copy_s),
                "copy_plain_table_records_per_s": round(args.records / plain_s),
                "ratio_to_plain_table": round(plain_s / drain_s, 3),
                "store_batch_records_per_s": round(args.records / store_s),
                "ratio": round(copy_s / drain_s, 3),
                "exporter_cpu_us_per_record": round(cpu_us, 2),
                "left_in_streams": left,
            })  # fmt: skip
            print(f"drain round {number + 1}: {rounds[-1]}", flush=True)
    finally:
        pg.stop()
        redis_server.stop()
    return {
        "records": args.records,
        "batch": args.batch,
        "rounds": rounds,
        "exporter_records_per_s_median": statistics.median(
            r["exporter_records_per_s"] for r in rounds
        ),
        "copy_records_per_s_median": statistics.median(r["copy_records_per_s"] for r in rounds),
        "store_batch_records_per_s_median": statistics.median(
            r["store_batch_records_per_s"] for r in rounds
        ),
        "ratio_median": statistics.median(r["ratio"] for r in rounds),
        "copy_plain_table_records_per_s_median": statistics.median(
            r["copy_plain_table_records_per_s"] for r in rounds
        ),
        "ratio_to_plain_table_median": statistics.median(r["ratio_to_plain_table"] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=300.0, help="CCR/s offered by ocs sim")
    parser.add_argument("--sim-s", type=float, default=60.0, help="seconds per load phase")
    parser.add_argument(
        "--load-rounds", type=int, default=1, help="rounds of (without, with the exporter)"
    )
    parser.add_argument(
        "--export", action="append", default=[], metavar="KEY=VALUE",
        help="an [export] setting of the exporter under load (JSON value), e.g. sched_idle=false",
    )  # fmt: skip
    parser.add_argument("--skip-load", action="store_true", help="only the drain figures")
    parser.add_argument("--skip-drain", action="store_true", help="only the load figures")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    args.export_settings = {
        key: json.loads(value) for key, _, value in (e.partition("=") for e in args.export)
    }
    base = Path(tempfile.mkdtemp(prefix="ocs-bench-export-"))
    os.chmod(base, 0o755)  # the private PostgreSQL runs as `postgres` when we are root
    try:
        result: dict[str, Any] = {"machine": machine_facts()}
        if not args.skip_drain:
            before = os.getloadavg()
            result["drain"] = drain_runs(base, args)
            result["drain"]["load_average_before_after"] = [before, os.getloadavg()]
            print(json.dumps(result["drain"], indent=1), flush=True)
        if not args.skip_load:
            before = os.getloadavg()
            result["load"] = load_runs(base, args)
            summary = {k: v for k, v in result["load"].items() if k != "rounds"}
            print(json.dumps(summary, indent=1), flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    command = " ".join(["python -m benchmarks.bench_export", *(argv or sys.argv[1:])])
    for measured in ("drain", "load"):
        if measured in result:
            result[measured]["command"] = command
    # A partial run (--skip-*) replaces only what it measured; older keys stay.
    previous: dict[str, Any] = {}
    if args.output.exists():
        previous = json.loads(args.output.read_text(encoding="utf-8"))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({**previous, **result}, indent=1) + "\n", encoding="utf-8")
    print(f"-> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

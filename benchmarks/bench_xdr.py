"""Offline xDR import benchmark: records/s end to end (``ocs xdr import``: parse, normalise,
resolve, rate, ledger call, stream record) against the ledger ceiling measured in the same run
(``redis-benchmark`` running the same offline script, pipelined), ``--rate-only`` records/s, and
peak RSS of the import process for the full file and for a tenth of it (flat = constant in the
file's size), and the same file imported again (every record a duplicate, nothing charged).

The file is generated: mixed services (50 % data, 35 % voice, 15 % SMS), 3 tenants of
``--subscribers`` each, 1 % bad lines (unparseable, unknown subscriber, negative quantity).

    .venv/bin/python -m benchmarks.bench_xdr [--records 100000] [--rounds 3]
    .venv/bin/python -m benchmarks.bench_xdr --records 1000000 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis

from balance import keys
from balance.ledger import Ledger
from balance.records import price_tuple
from balance.scripts import ScriptSet
from benchmarks.bench_ledger import machine_facts
from ocs.catalog_install import install_catalog
from ocs.embedded_redis import EmbeddedRedis
from tariffs.loader import load_catalog
from tariffs.price import Price

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "catalog"
RESULTS_PATH = Path(__file__).parent / "results" / "xdr.json"
HEADER = "cdr_id;imsi;a_number;record_type;start_time;amount;b_number;vplmn;apn\n"
# (tenant, source catalog, IMSI range start, MSISDN range start)
TENANTS = (
    ("acme", "acme.yaml", "262019900000000", "4917099000000"),
    ("globex", "globex.yaml", "262019910000000", "4917199000000"),
    ("initech", "acme.yaml", "262019920000000", "4917299000000"),
)
CALLED = ("+4915112345678", "015112345678", "+447700900123", "+4930123456", "004930123456")
VPLMNS = ("", "26201", "20801", "310260")
NOW_S = 0x65656565


def bench_catalog(directory: Path, subscribers: int) -> Path:
    """The demo tenants (plus a third, initech, priced like acme) with ``subscribers`` each
    and 1000.00 opening balance, in a catalog directory of their own, with the mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    for tenant, source, imsi, msisdn in TENANTS:
        text = (DEMO / source).read_text(encoding="utf-8")
        text = re.sub(r"(?m)^tenant: \w+", f"tenant: {tenant}", text)
        text = re.sub(r"opening_balance: [0-9.]+", "opening_balance: 1000.00", text)
        text = re.sub(
            r"ranges:\n(.|\n)*\Z",
            "ranges:\n"
            f'    - {{imsi_first: "{imsi}", imsi_last: "{int(imsi) + subscribers - 1}",\n'
            f'       msisdn_first: "{msisdn}", msisdn_last: "{int(msisdn) + subscribers - 1}"}}\n',
            text,
        )
        (directory / f"{tenant}.yaml").write_text(text, encoding="utf-8")
    (directory / "mno").mkdir(exist_ok=True)
    shutil.copy(DEMO / "mno" / "telco_de.yaml", directory / "mno" / "telco_de.yaml")
    return directory


def generate(path: Path, records: int, subscribers: int, seed: int = 7) -> dict[str, int]:
    """A CDR file of ``records`` lines; returns how many of each kind were written."""
    import random

    rng = random.Random(seed)
    counts = {"data": 0, "voice": 0, "sms": 0, "bad": 0}
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for n in range(records):
            _, _, imsi, msisdn = TENANTS[n % 3]
            sub = rng.randrange(subscribers)
            a_number = str(int(msisdn) + sub)
            day = 16 + rng.randrange(5)
            start = f"2026-11-{day} {rng.randrange(24):02d}:{rng.randrange(60):02d}:00"
            roll = rng.random()
            if roll < 0.01:
                counts["bad"] += 1
                kind = rng.randrange(3)
                if kind == 0:
                    out.write(f"bad-{n};garbage\n")
                elif kind == 1:
                    out.write(f"r{n};;+4400000{sub};SMS-MO;{start};1;;;\n")
                else:
                    out.write(f"r{n};;{a_number};MOC;{start};-5;+4915112345678;;\n")
                continue
            vplmn = rng.choice(VPLMNS)
            if roll < 0.5:
                counts["data"] += 1
                amount = rng.randrange(1, 20_000_000)
                out.write(f"r{n};{int(imsi) + sub};;GPRS;{start};{amount};;{vplmn};internet\n")
            elif roll < 0.85:
                counts["voice"] += 1
                called = rng.choice(CALLED)
                seconds = rng.randrange(0, 900)
                out.write(f"r{n};;{a_number};MOC;{start};{seconds};{called};{vplmn};\n")
            else:
                counts["sms"] += 1
                out.write(f"r{n};;{a_number};SMS-MO;{start};1;{rng.choice(CALLED)};{vplmn};\n")
    return counts


async def install(url: str, catalog_dir: Path) -> None:
    client = aioredis.Redis.from_url(url)
    catalog = load_catalog(catalog_dir)

    async def ledger_for(tenant: str) -> Ledger:
        return Ledger(client, tenant, in_flight_max=256)

    await install_catalog(catalog, ledger_for, now=int(time.time()) - 86_400 * 30)
    await client.aclose()


def offline_payload() -> tuple[bytes, bytes]:
    """One offline record as offline.lua reads it (request, context), NUL-free for
    redis-benchmark (zeros as nil, integer times): a 61 s call priced per second, the context
    filled as the importer fills it."""
    price = [None if v == 0 else v for v in price_tuple(Price(3, 2, 1, 5, 60, 1))]
    request = msgspec.msgpack.encode(
        ["bench", "benchdigest", "acme", "4917099000001", NOW_S, 3600, "voice", 1,
         [["acme:acme-2026-01:3", 61, price]], [], 1, [], NOW_S]
    )  # fmt: skip
    context = msgspec.msgpack.encode(
        ["offline", "telco_de", "4917099000001", "262019900000001", NOW_S, "4915112345678",
         "", "", "", "", -1, "acme-2026-01", "EUR", "bench.csv:12345"]
    )  # fmt: skip
    if b"\x00" in request + context:
        raise RuntimeError("the redis-benchmark payload must not contain NUL bytes")
    return request, context


def ledger_ceiling(
    server: EmbeddedRedis, scripts: ScriptSet, requests: int, round_no: int, per_call: int
) -> float:
    """Offline records/s through redis-benchmark (C client, 4 connections x 32 pipelined):
    what this Redis can do for the import's ledger calls. ``per_call`` records of one account
    per offline_many.lua call (the import's own records per call, measured in the same round),
    or offline.lua with one record per call when it is 0."""
    prefix = keys.subscriber_prefix("acme", "4917099000001")
    account = keys.account_key(prefix, "4917099000001")
    request, context = offline_payload()
    if per_call == 0:
        call: list[str | bytes] = [
            "FCALL", scripts["offline"].function, "3",
            keys.op_key(prefix, f"xb{round_no}:__rand_int__"), account, keys.stream_key(prefix),
            request, context,
        ]  # fmt: skip
    else:
        record_keys: list[str | bytes] = []
        for i in range(per_call):
            record_keys += [keys.op_key(prefix, f"xm{round_no}:{i}:__rand_int__"), account]
        call = [
            "FCALL", scripts["offline_many"].function, str(1 + 2 * per_call),
            keys.stream_key(prefix), *record_keys, *([request, context] * per_call),
        ]  # fmt: skip
    calls = max(requests // max(per_call, 1), 1000)
    args: list[str | bytes] = [
        "redis-benchmark", "-h", server.host, "-p", str(server.port), "-c", "4",
        "-n", str(calls), "-r", "1000000000", "-P", "32", "--csv", *call,
    ]  # fmt: skip
    out = subprocess.run(args, check=True, capture_output=True, timeout=600).stdout
    header, _, body = out.partition(b"\n")
    fields = body.rstrip().rsplit(b",", len(header.split(b",")) - 2)
    return float(fields[0].rsplit(b",", 1)[-1].strip(b'"')) * max(per_call, 1)


class ImportRun(msgspec.Struct):
    wall_s: float
    cpu_s: float  # user + system CPU of the import process
    peak_rss_kib: int
    summary: dict[str, Any]


def run_import(url: str, catalog: Path, state: Path, file: Path, *extra: str) -> ImportRun:
    """Wall and CPU seconds, peak RSS (KiB) and the JSON summary of one ``ocs xdr import``
    process (CPU is what a loaded, shared machine cannot distort much; wall time is)."""
    command = [
        sys.executable, "-m", "ocs", "xdr", "import", "--mno", "telco_de", "--catalog",
        str(catalog), "--redis-url", url, "--state-dir", str(state), "--json", "--no-store", *extra,
        str(file),
    ]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise RuntimeError(f"ocs xdr import failed: {stderr.decode()}")
    (summary,) = json.loads(stdout)
    return ImportRun(elapsed, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss), summary)


def fcall_stats(url: str) -> tuple[int, float]:
    """FCALL calls and microseconds per call since the last reset (the import's ledger calls)."""
    client = redis.Redis.from_url(url)
    stats: Any = client.info("commandstats")
    client.close()
    fcall = stats.get("cmdstat_fcall", {})
    return int(fcall.get("calls", 0)), float(fcall.get("usec_per_call", 0.0))


def reset_stats(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.config_resetstat()
    client.close()


def totals(summary: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for figures in summary["tenants"].values():
        for key, value in figures.items():
            out[key] = out.get(key, 0) + value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--subscribers", type=int, default=2000, help="per tenant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ceiling-requests", type=int, default=100_000)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if shutil.which("redis-benchmark") is None:
        print("bench_xdr: redis-benchmark not found (Debian: apt-get install redis-tools)")
        return 2
    scripts = ScriptSet.load()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        catalog = bench_catalog(tmp / "catalog", args.subscribers)
        small = tmp / "small.csv"
        generate(small, max(args.records // 10, 1), args.subscribers, seed=11)
        full = tmp / "cdr.csv"
        counts = generate(full, args.records, args.subscribers)
        file_mib = full.stat().st_size / 1_048_576
        print(f"file: {args.records:,} records ({file_mib:.1f} MiB): {counts}")
        for round_no in range(args.rounds):
            with EmbeddedRedis(tmp / f"redis{round_no}", appendfsync="everysec") as server:
                redis.Redis.from_url(server.url).function_load(scripts.library)
                asyncio.run(install(server.url, catalog))
                state = tmp / f"state{round_no}"
                reset_stats(server.url)
                e2e = run_import(server.url, catalog, state, full)
                calls, script_usec = fcall_stats(server.url)
                per_call = max(round(totals(e2e.summary)["charged"] / max(calls, 1)), 1)
                # The ceiling right after, the same way: as many records per call as the
                # import made; and one record per call (offline.lua) for reference.
                ceiling = ledger_ceiling(server, scripts, args.ceiling_requests, round_no, per_call)
                single = ledger_ceiling(server, scripts, args.ceiling_requests, round_no, 0)
                rate = run_import(server.url, catalog, state, full, "--rate-only")
                small_run = run_import(server.url, catalog, state, small, "--rate-only")
                again = run_import(server.url, catalog, state, full)
                load = os.getloadavg()
            figures = totals(e2e.summary)
            run = {
                "ledger_ceiling_per_s": round(ceiling, 1),
                "end_to_end_s": round(e2e.wall_s, 2),
                "end_to_end_per_s": round(args.records / e2e.wall_s, 1),
                "ratio_to_ceiling": round(args.records / e2e.wall_s / ceiling, 3),
                "end_to_end_cpu_us_per_record": round(e2e.cpu_s / args.records * 1e6, 1),
                "ledger_calls": calls,
                "records_per_ledger_call": round(totals(e2e.summary)["charged"] / max(calls, 1), 2),
                "redis_us_per_ledger_call": round(script_usec, 1),
                "ledger_ceiling_one_per_call_per_s": round(single, 1),
                "rate_only_per_cpu_s": round(args.records / rate.cpu_s, 1),
                "end_to_end_per_cpu_s": round(args.records / e2e.cpu_s, 1),
                "load_average_1_5_15": [round(v, 2) for v in load],
                "rate_only_s": round(rate.wall_s, 2),
                "rate_only_per_s": round(args.records / rate.wall_s, 1),
                "rate_only_cpu_us_per_record": round(rate.cpu_s / args.records * 1e6, 1),
                "peak_rss_kib_full": e2e.peak_rss_kib,
                "peak_rss_kib_rate_only_full": rate.peak_rss_kib,
                "peak_rss_kib_rate_only_tenth": small_run.peak_rss_kib,
                "same_file_again_s": round(again.wall_s, 2),
                # the file has rejects, so no manifest: read again, every record a duplicate
                "same_file_again_charged": totals(again.summary)["charged"],
                "same_file_again_duplicate": totals(again.summary)["duplicate"],
                "charged": figures["charged"],
                "rejected": figures["rejected"],
                "retail_micro": figures["retail"],
                "wholesale_micro": figures["wholesale"],
                "leakage_micro": figures["leakage"],
            }
            runs.append(run)
            print(
                f"round {round_no + 1}: end to end {run['end_to_end_per_s']:,.0f} records/s "
                f"({e2e.wall_s:.1f} s, {run['end_to_end_cpu_us_per_record']} us CPU/record, "
                f"{run['records_per_ledger_call']} records/call, Redis {script_usec:.0f} us/call)"
                " vs "
                f"ledger ceiling {ceiling:,.0f}/s ({single:,.0f}/s one per call): ratio "
                f"{run['ratio_to_ceiling']:.3f}; rate-only {run['rate_only_per_s']:,.0f}/s "
                f"({run['rate_only_cpu_us_per_record']} us CPU/record); peak RSS "
                f"{e2e.peak_rss_kib // 1024} MiB (rate-only: {rate.peak_rss_kib // 1024} MiB "
                f"full, {small_run.peak_rss_kib // 1024} MiB a tenth); charged "
                f"{figures['charged']:,}, rejected {figures['rejected']:,}"
            )
    median = {
        key: statistics.median(r[key] for r in runs)
        for key in (
            "end_to_end_per_s",
            "ledger_ceiling_per_s",
            "rate_only_per_s",
            "end_to_end_cpu_us_per_record",
            "rate_only_cpu_us_per_record",
            "redis_us_per_ledger_call",
            "rate_only_per_cpu_s",
            "ledger_ceiling_one_per_call_per_s",
        )
    }
    result = {
        "benchmark": "offline xDR import: ocs xdr import of a generated file",
        "records": args.records,
        "file_mib": round(file_mib, 1),
        "mix": counts,
        "tenants": len(TENANTS),
        "subscribers_per_tenant": args.subscribers,
        "rounds": runs,
        "median_end_to_end_per_s": round(median["end_to_end_per_s"], 1),
        "median_ledger_ceiling_per_s": round(median["ledger_ceiling_per_s"], 1),
        "median_ratio": round(median["end_to_end_per_s"] / median["ledger_ceiling_per_s"], 3),
        "median_rate_only_per_s": round(median["rate_only_per_s"], 1),
        "median_end_to_end_cpu_us_per_record": median["end_to_end_cpu_us_per_record"],
        "median_rate_only_cpu_us_per_record": median["rate_only_cpu_us_per_record"],
        "median_redis_us_per_ledger_call": median["redis_us_per_ledger_call"],
        "median_rate_only_per_cpu_s": round(median["rate_only_per_cpu_s"], 1),
        "median_ledger_ceiling_one_per_call_per_s": round(
            median["ledger_ceiling_one_per_call_per_s"], 1
        ),
        "notes": "end to end and rate-only are wall times of the whole `ocs xdr import` "
        "process (interpreter start, catalog and mapping load, sha256 of the file included); "
        "*_per_cpu_s: records per CPU second of that process (what a loaded, shared machine "
        "distorts least). The import sends each window's records grouped by shard, several "
        "per offline_many.lua call; ceiling: redis-benchmark FCALL of offline_many.lua with "
        "the same records per call as the import made in that round (one account: no rating, "
        "no parsing), 4 connections x 32 pipelined; one_per_call: offline.lua, one record "
        "per call. Peak RSS from wait4 of the process. The machine is shared: see "
        "load_average_1_5_15 of each round.",
        "machine": machine_facts(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"xdr import: {result['median_end_to_end_per_s']:,.0f} records/s end to end vs ledger "
        f"ceiling {result['median_ledger_ceiling_per_s']:,.0f}/s (ratio "
        f"{result['median_ratio']:.3f}); rate-only {result['median_rate_only_per_s']:,.0f}/s "
        f"-> {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ledger benchmark: our client running the per-CCR script vs ``redis-benchmark`` running the same
script with the same arguments, at the same concurrency, in the same run.

The request is a steady-state CCR-U with two rating groups, each committing 1000 units and
re-reserving 1000 (commit + release + re-reserve + two usage records, atomically). Every call
uses a fresh operation id (redis-benchmark: ``__rand_int__`` in the idempotency key), so each
call does the full work rather than answering a replay.

redis-benchmark passes arguments as C strings, so its copy of the request is written without
NUL bytes (0-valued fields as msgpack nil, which the scripts read as 0; integer times): the same
request, the same function (FCALL of the ledger library), the same keys. Each round also reads
the script's own Redis CPU (INFO commandstats, usec_per_call of fcall).

    .venv/bin/python -m benchmarks.bench_ledger [--clients 32] [--requests 10000] [--rounds 5]

``--before GIT_REF`` instead measures the CCR script of GIT_REF against this tree's, loaded side
by side into one Redis and called alternately by redis-benchmark (a change must not make the
per-CCR script slower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
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
from balance.errors import Outcome
from balance.ledger import Ledger
from balance.records import RatingGroupRequest, UsedLeg, price_tuple
from balance.scripts import SCRIPT_FLAGS, ScriptSet, library_source
from ocs.embedded_redis import EmbeddedRedis
from tariffs.price import Price

TENANT = "bench"
SUBSCRIBER = "4917099999999"
SESSION = "pgw.bench;1;1"
# Times and limits chosen so their msgpack encodings contain no zero byte.
NOW_S = 0x65656565  # 2023-11-28
VALID_S = 0x41
SESSION_IDLE_S = 0x1111
IDEMPOTENCY_TTL_S = 0x0E10  # 3600
USED_UNITS = 1000
REQUESTED_UNITS = 1000
OPENING_BALANCE = 10**15
PRICE = Price(1, 1, 1, 2, step_units=10)
RESULTS_PATH = Path(__file__).parent / "results" / "ledger.json"


def ccr_items() -> list[RatingGroupRequest]:
    return [
        RatingGroupRequest(
            rating_group=group,
            service="data",
            used=(UsedLeg("data:home", USED_UNITS, PRICE),),
            requested_units=REQUESTED_UNITS,
            reserve_leg_key="data:home",
            reserve_price=PRICE,
            valid_until_s=float(NOW_S + VALID_S),
        )
        for group in (10, 20)
    ]


def nul_free_payload(op_id: str, digest: str) -> bytes:
    """The same request as ``ccr_items()``, encoded without NUL bytes for redis-benchmark."""

    def zero_as_nil(values: Any) -> list[Any]:
        return [None if v == 0 else v for v in values]

    items = [
        [
            item.rating_group,
            item.service,
            [[leg.leg_key, leg.units, 1] for leg in item.used],  # prices[1]
            item.requested_units,
            None,  # default_units 0
            [],
            1,  # payg
            None,  # terminate 0
            item.reserve_leg_key,
            1,  # reserve price: prices[1]
        ]
        for item in ccr_items()
    ]
    prices = [zero_as_nil(price_tuple(PRICE))]
    payload = msgspec.msgpack.encode(
        [op_id, digest, TENANT, SUBSCRIBER, SESSION, NOW_S, IDEMPOTENCY_TTL_S,
         SESSION_IDLE_S, 32, [items, prices], [NOW_S + VALID_S] * len(items)]
    )  # fmt: skip
    if b"\x00" in payload:
        raise RuntimeError("the redis-benchmark payload must not contain NUL bytes")
    return payload


def record_context() -> bytes:
    """A Gy session's record context (balance.records.RecordContext), encoded without NUL
    bytes (start time as an integer) so redis-benchmark can pass the same argument."""
    encoded = msgspec.msgpack.encode(
        ["gy", "", SUBSCRIBER, "262019999999999", NOW_S, "", "", "26201", "internet",
         "1234567", -1, "2026-01", "EUR", ""]
    )  # fmt: skip
    if b"\x00" in encoded:
        raise RuntimeError("the record context must not contain NUL bytes")
    return encoded


def ccr_keys(op_id: str) -> list[str]:
    prefix = keys.subscriber_prefix(TENANT, SUBSCRIBER)
    return [
        keys.op_key(prefix, op_id),
        keys.account_key(prefix, SUBSCRIBER),
        keys.expiry_key(prefix),
        keys.stream_key(prefix),  # the event stream is derived from it in the script
    ]


CCR_KEY_COUNT = len(ccr_keys("x"))


def new_ledger(url: str, clients: int) -> tuple[aioredis.Redis, Ledger]:
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=clients)
    client = aioredis.Redis(connection_pool=pool)
    ledger = Ledger(
        client,
        TENANT,
        idempotency_ttl_s=IDEMPOTENCY_TTL_S,
        session_idle_s=float(SESSION_IDLE_S),
        in_flight_max=clients,
    )
    return client, ledger


async def prepare(url: str) -> None:
    client, ledger = new_ledger(url, 4)
    await client.flushall()
    await ledger.provision_account(SUBSCRIBER, balance=OPENING_BALANCE, now_s=float(NOW_S))
    await client.aclose()


async def run_ours(
    url: str, clients: int, requests: int, round_no: int, context: bytes | None = None
) -> float:
    """CCRs per second through ``Ledger.credit_control`` with ``clients`` concurrent callers."""
    client, ledger = new_ledger(url, clients)
    items = ccr_items()
    counter = iter(range(requests))

    async def worker() -> None:
        for n in counter:
            result = await ledger.credit_control(
                SUBSCRIBER,
                SESSION,
                f"ours:{round_no}:{n}",
                items,
                now_s=float(NOW_S),
                context=context,
            )
            if result.items[0].outcome is not Outcome.OK or result.replayed:
                raise RuntimeError(f"unexpected result {result}")

    await client.ping()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return requests / elapsed


def script_usec_per_call(url: str) -> float:
    """Redis CPU per script call since the last ``reset_stats`` (INFO commandstats)."""
    client = redis.Redis.from_url(url)
    stats = client.info("commandstats")
    client.close()
    return float(stats.get("cmdstat_fcall", {}).get("usec_per_call", 0.0))


def reset_stats(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.config_resetstat()
    client.close()


def call_command(function_or_sha: str) -> str:
    """FCALL for a library function name, EVALSHA for a script SHA (bench_e2e passes one)."""
    return "EVALSHA" if re.fullmatch(r"[0-9a-f]{40}", function_or_sha) else "FCALL"


def run_redis_benchmark(
    server: EmbeddedRedis,
    function: str,
    clients: int,
    requests: int,
    round_no: int = 0,
    context: bytes | None = None,
) -> float:
    """The same FCALL through ``redis-benchmark`` (C client, no pipelining). The round is in the
    operation id: redis-benchmark's random sequence may repeat between runs, and a repeated id
    would be answered as a replay (much cheaper) instead of doing the work."""
    op_template = f"rb{round_no}:__rand_int__"
    args: list[str | bytes] = [
        "redis-benchmark", "-h", server.host, "-p", str(server.port), "-c", str(clients),
        "-n", str(requests), "-r", "1000000000", "-P", "1", "--csv",
        call_command(function), function, str(CCR_KEY_COUNT), *ccr_keys(op_template),
        nul_free_payload("rb:op", "benchdigest"), *([context] if context else []),
    ]  # fmt: skip
    out = subprocess.run(args, check=True, capture_output=True, timeout=600).stdout
    # CSV: "test","rps",... The test name echoes the binary payload (newlines, commas
    # included), so read the one data row from the right.
    header, _, body = out.partition(b"\n")
    columns_after_rps = len(header.split(b",")) - 2
    fields = body.rstrip().rsplit(b",", columns_after_rps)
    try:
        return float(fields[0].rsplit(b",", 1)[-1].strip(b'"'))
    except ValueError:
        raise RuntimeError(f"could not read redis-benchmark output: {out!r}") from None


def check_equivalence(url: str, function: str) -> None:
    """The redis-benchmark encoding is the same request: same outcome and charges."""
    client = redis.Redis.from_url(url)
    arguments: list[str | bytes] = [*ccr_keys("check:nul-free"), nul_free_payload("check", "d")]
    if call_command(function) == "EVALSHA":
        _replayed, raw = client.evalsha(function, CCR_KEY_COUNT, *arguments)
    else:
        _replayed, raw = client.fcall(function, CCR_KEY_COUNT, *arguments)
    client.close()
    decoded = msgspec.msgpack.decode(raw)
    for item in decoded[0]:
        if item[1] != Outcome.OK or item[2] != REQUESTED_UNITS or item[4] != USED_UNITS:
            raise RuntimeError(f"the redis-benchmark request does not do the same work: {item}")


def library_at(ref: str) -> str:
    """The ledger Functions library as it was at git ``ref`` (its balance/lua files)."""

    def read(name: str) -> str:
        if name not in listing:
            return ""  # a shared helper file that tree did not have (it kept them in lib.lua)
        return subprocess.run(
            ["git", "show", f"{ref}:balance/lua/{name}"],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout

    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{ref}:balance/lua"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.split()
    names = [n.removesuffix(".lua") for n in listing if n.removesuffix(".lua") in SCRIPT_FLAGS]
    return library_source(names, read)[0]


def instructions_per_call(
    functions: dict[str, str], libraries: list[str], calls: int, windows: int
) -> dict[str, int]:
    """redis-server under callgrind with both libraries: instructions per CCR script call of
    each version, ``calls`` calls per window, windows alternating, the least kept per version
    (independent of the machine's load, unlike the time figures)."""
    from benchmarks.bench_instructions import CONTROL_TIMEOUT_S, newest_dump, parse_dump

    least: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as work:
        dumps = Path(work) / "dumps"
        dumps.mkdir()
        wrapper = Path(work) / "redis-under-callgrind"
        wrapper.write_text(
            "#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
            f'--callgrind-out-file={dumps}/callgrind.out.%p redis-server "$@"\n',
            encoding="utf-8",
        )
        wrapper.chmod(0o755)
        with EmbeddedRedis(Path(work) / "redis", server_bin=str(wrapper)) as server:
            assert server.pid is not None
            client = redis.Redis.from_url(server.url, socket_timeout=300)
            for library in libraries:
                with contextlib.suppress(redis.ResponseError):  # already loaded: same code
                    client.function_load(library)
            asyncio.run(prepare(server.url))
            seen: set[Path] = set()
            for window in range(windows):
                # Alternate which version goes first: a window's later calls find a longer
                # record stream, which costs a little more.
                order = list(functions.items())
                for which, function in order if window % 2 == 0 else order[::-1]:
                    payload = nul_free_payload(f"cg:{window}", "cgdigest")

                    def call(n: int, fn: str = function, body: bytes = payload) -> None:
                        op = f"cg:{fn}:{n}"
                        client.fcall(fn, CCR_KEY_COUNT, *ccr_keys(op), body)

                    call(-1 - window)  # this version's build() runs outside the window
                    for cmd in (("-i", "on"), ("-z",)):
                        subprocess.run(["callgrind_control", *cmd, str(server.pid)],
                                       check=True, capture_output=True,
                                       timeout=CONTROL_TIMEOUT_S)  # fmt: skip
                    for n in range(calls):
                        call(window * calls + n)
                    subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                                   capture_output=True, timeout=CONTROL_TIMEOUT_S)  # fmt: skip
                    total, _ = parse_dump(newest_dump(dumps, seen))
                    per_call = round(total / calls)
                    least[which] = min(least.get(which, per_call), per_call)
                    print(f"callgrind window {window + 1} {which}: {per_call:,} instructions/call")
            client.close()
    return least


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def before_after(args: argparse.Namespace) -> int:
    """The CCR script of git ``--before`` and of this tree in one Redis, rounds alternating,
    each through redis-benchmark (the script's cost without our client): per-call Redis CPU and
    CCR/s, and their ratios after/before."""
    now_lib = ScriptSet.load()
    before_lib = library_at(args.before)
    after_name = now_lib["ccr"].function
    before_name = re.search(r"function_name = '(ocs_ccr_[0-9a-f]+)'", before_lib)
    if before_name is None:
        raise RuntimeError(f"no ccr function in the library of {args.before}")
    functions = {"before": before_name.group(1), "after": after_name}
    rates: dict[str, list[float]] = {"before": [], "after": []}
    usec: dict[str, list[float]] = {"before": [], "after": []}
    load = [load_average()]
    with tempfile.TemporaryDirectory() as data_dir, EmbeddedRedis(Path(data_dir)) as server:
        admin = redis.Redis.from_url(server.url)
        for library in (before_lib, now_lib.library):
            try:
                admin.function_load(library)
            except redis.ResponseError as exc:
                if "already exists" not in str(exc):
                    raise
        admin.close()
        asyncio.run(prepare(server.url))
        for which in ("before", "after"):
            check_equivalence(server.url, functions[which])
        for round_no in range(args.rounds):
            order = ("before", "after") if round_no % 2 == 0 else ("after", "before")
            for which in order:
                reset_stats(server.url)
                rates[which].append(
                    run_redis_benchmark(
                        server, functions[which], args.clients, args.requests,
                        round_no * 2 + (which == "after"),
                    )
                )  # fmt: skip
                usec[which].append(script_usec_per_call(server.url))
            print(
                f"round {round_no + 1}: before {rates['before'][-1]:,.0f} CCR/s "
                f"({usec['before'][-1]:.1f} us), after {rates['after'][-1]:,.0f} CCR/s "
                f"({usec['after'][-1]:.1f} us)"
            )
            load.append(load_average())
    instructions = (
        instructions_per_call(functions, [before_lib, now_lib.library], 300, 4)
        if args.instructions
        else {}
    )
    diff = [
        "git",
        "diff",
        "--quiet",
        args.before,
        "--",
        "balance/lua/ccr.lua",
        "balance/lua/lib.lua",
        "balance/lua/lib_events.lua",
        "balance/lua/lib_offline.lua",
    ]
    root = Path(__file__).resolve().parents[1]
    ccr_changed = subprocess.run(diff, cwd=root, check=False).returncode != 0
    med = {k: statistics.median(v) for k, v in usec.items()}
    med_rate = {k: statistics.median(v) for k, v in rates.items()}
    result = {
        "benchmark": "ledger CCR script before/after (redis-benchmark FCALL, same Redis, "
        "rounds alternating): commit + re-reserve, 2 rating groups, a subscriber without "
        "shared buckets",
        "before": args.before,
        "after": "this tree",
        "ccr_lua_changed": ccr_changed,
        "clients": args.clients,
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "script_usec_per_call": {k: [round(v, 1) for v in vs] for k, vs in usec.items()},
        "ccr_per_s": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        "script_usec_per_call_median": {k: round(v, 2) for k, v in med.items()},
        "ccr_per_s_median": {k: round(v, 1) for k, v in med_rate.items()},
        "usec_ratio_after_over_before": round(med["after"] / med["before"], 3),
        "rate_ratio_after_over_before": round(med_rate["after"] / med_rate["before"], 3),
        "instructions_per_call": instructions,
        "instructions_ratio_after_over_before": (
            round(instructions["after"] / instructions["before"], 4) if instructions else None
        ),
        "note": "time figures follow the load of the shared machine (load_average_1_5_15, "
        "before each round); instructions_per_call (callgrind, the least of windows that "
        "alternate which version goes first) does not, and is the figure that resolves a few "
        "per cent",
        "load_average_1_5_15": load,
        "command": " ".join(["python -m benchmarks.bench_ledger", *args.argv]),
        "machine": machine_facts(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"ccr script: {med['before']:.1f} us/call before, {med['after']:.1f} after "
        f"(ratio {result['usec_ratio_after_over_before']}) -> {args.output}"
    )
    return 0


def machine_facts() -> dict[str, Any]:
    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "redis_server": version,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument(
        "--context", action="store_true", help="pass a record context (both clients)"
    )
    parser.add_argument(
        "--before",
        metavar="GIT_REF",
        help="compare the CCR script of GIT_REF with this tree's instead (same Redis, same "
        "run; results to --output, e.g. benchmarks/results/ledger_plans.json)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="with --before: also count Redis instructions per script call under callgrind",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    context = record_context() if args.context else None
    if shutil.which("redis-benchmark") is None:
        print("bench_ledger: redis-benchmark not found (Debian: apt-get install redis-tools)")
        return 2
    if args.before:
        return before_after(args)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    scripts = ScriptSet.load()
    function = scripts["ccr"].function
    ours: list[float] = []
    baseline: list[float] = []
    ours_usec: list[float] = []
    baseline_usec: list[float] = []
    with tempfile.TemporaryDirectory() as data_dir, EmbeddedRedis(Path(data_dir)) as server:
        redis.Redis.from_url(server.url).function_load(scripts.library)
        asyncio.run(prepare(server.url))
        check_equivalence(server.url, function)
        asyncio.run(run_ours(server.url, args.clients, min(2000, args.requests), -1))  # warm-up
        for round_no in range(args.rounds):
            reset_stats(server.url)
            ours.append(
                asyncio.run(run_ours(server.url, args.clients, args.requests, round_no, context))
            )
            ours_usec.append(script_usec_per_call(server.url))
            reset_stats(server.url)
            baseline.append(
                run_redis_benchmark(
                    server, function, args.clients, args.requests, round_no, context
                )
            )
            baseline_usec.append(script_usec_per_call(server.url))
            print(
                f"round {round_no + 1}: "
                f"ours {ours[-1]:,.0f} CCR/s ({ours_usec[-1]:.1f} us/script), "
                f"redis-benchmark {baseline[-1]:,.0f} CCR/s ({baseline_usec[-1]:.1f} us/script)"
            )
    ours_median = statistics.median(ours)
    baseline_median = statistics.median(baseline)
    ratio = ours_median / baseline_median
    result = {
        "benchmark": "ledger per-CCR script: commit + re-reserve, 2 rating groups",
        "clients": args.clients,
        "requests_per_round": args.requests,
        "rounds": args.rounds,
        "ours_ccr_per_s": [round(v, 1) for v in ours],
        "redis_benchmark_ccr_per_s": [round(v, 1) for v in baseline],
        "ours_median_ccr_per_s": round(ours_median, 1),
        "redis_benchmark_median_ccr_per_s": round(baseline_median, 1),
        "ratio": round(ratio, 3),
        "script_usec_per_call_ours": [round(v, 1) for v in ours_usec],
        "script_usec_per_call_redis_benchmark": [round(v, 1) for v in baseline_usec],
        "script_usec_per_call_median": round(statistics.median(ours_usec + baseline_usec), 1),
        "target_ratio": 0.7,
        "record_context": args.context,
        "client_note": "ours: Ledger.credit_control (msgpack request, lean pipelined RESP "
        "connection, FCALL of the ledger Functions library, replies decoded to typed results); "
        "redis-benchmark: the same FCALL, -c clients -P 1",
        "redis_calls_per_ccr": "5 (MGET, SET account, SET idempotency, 2 XADD) + ZADD/ZREM "
        "only when the earliest reservation deadline changes",
        "machine": machine_facts(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"ledger CCR: ours {ours_median:,.0f}/s vs redis-benchmark {baseline_median:,.0f}/s "
        f"at {args.clients} clients: ratio {ratio:.2f} (target >= 0.70) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

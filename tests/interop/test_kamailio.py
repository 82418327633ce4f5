"""Kamailio 5.6 running examples/kamailio/kamailio.cfg in front of a real ``ocs serve``.

Every party is a real process on loopback: a private redis-server, ``ocs serve`` (demo catalog),
Kamailio, SIPp as the called side (the route in the OCS's 302 points at it) and SIPp as the
caller. Nothing in the path is simulated, so these tests show that the example configuration
does what the README says: new INVITEs are credit-checked, the 302 is followed with the grant
as the dialog's time limit, refusals reach the caller, and the call end (BYE, time limit, or
not answered) is reported to ``POST /v1/calls/{reservation}/end`` and charged exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from balance.records import LedgerRecord
from ocs.embedded_redis import EmbeddedRedis
from tests.support.charging import DEMO_CATALOG, ledger_records
from tests.support.proxy_keys import make_proxy_key_sync
from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
KAMAILIO_CFG = ROOT / "examples" / "kamailio" / "kamailio.cfg"
SCENARIOS = ROOT / "tests" / "support" / "kamailio"
KAMAILIO = shutil.which("kamailio") or (
    "/usr/sbin/kamailio" if os.access("/usr/sbin/kamailio", os.X_OK) else None
)
HTTP_CLIENT_MODULE = glob.glob("/usr/lib/*/kamailio/modules/http_client.so")
MISSING = [
    what
    for what, present in (
        ("kamailio (Debian package kamailio)", KAMAILIO),
        ("http_client.so (Debian package kamailio-utils-modules)", HTTP_CLIENT_MODULE),
        ("sipp (Debian package sip-tester)", shutil.which("sipp")),
    )
    if not present
]

pytestmark = [
    pytest.mark.interop,
    # `make test` installs these (test-sysdeps). In CI a missing one is a failure, not a skip:
    # a skipped interop test would hide a broken install step.
    pytest.mark.skipif(
        bool(MISSING) and not os.environ.get("CI"), reason=f"not installed: {MISSING}"
    ),
]

EUR = 1_000_000
GRANT_S = 4  # [sip] call_duration_max_s: short, so the time-limit test takes seconds
CALLEE_FIXED = "4930123456"  # acme de_fixed: 0.04 EUR / started minute, cost 0.008 EUR/min
CALLEE_BUSY = "4930486000"  # also de_fixed; the called SIPp answers 486 to 4930486...
DE_FIXED_PRICE = 40_000  # micro-EUR per 60 s
DE_FIXED_COST = 8_000
DE_FIXED_FIRST_S = DE_FIXED_STEP_S = 60
UNKNOWN_CALLER = "4930999999999"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return f"({path.name}: no such file)"


class Background:
    """One long-running process of ours (own process group: Kamailio forks workers)."""

    def __init__(self, name: str, args: list[str], log: Path, cwd: Path) -> None:
        self.name, self.log = name, log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        else:
            # The leader is gone; its workers may not be.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class Stack:
    workdir: Path
    redis: EmbeddedRedis
    ocs: ServerProcess
    proxy_key: str
    kamailio: Background
    kamailio_port: int
    uas: Background
    uas_port: int
    uas_log: Path

    def logs(self) -> str:
        """What to read when a test fails: Kamailio's log first."""
        return (
            f"\n--- kamailio log ---\n{tail(self.kamailio.log)}"
            f"\n--- called SIPp log ---\n{tail(self.uas_log, 3000)}"
            f"\n--- ocs serve log ---\n{self.ocs.log_text()}"
        )


def wait_for_sip_answer(port: int, timeout_s: float) -> bool:
    """True once something at ``port`` answers an OPTIONS (Kamailio's config answers 405)."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        local = sock.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            probe = (
                f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-probe-{n};rport\r\n"
                f"From: <sip:probe@127.0.0.1:{local}>;tag=p{n}\r\n"
                f"To: <sip:ping@127.0.0.1:{port}>\r\n"
                f"Call-ID: probe-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            sock.sendto(probe.encode(), ("127.0.0.1", port))
            try:
                data = sock.recv(4096)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if data.startswith(b"SIP/2.0 "):
                return True
    return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert not MISSING, f"not installed: {MISSING} (run `make test-sysdeps`)"
    assert KAMAILIO is not None
    workdir = tmp_path_factory.mktemp("kamailio")
    redis_server = EmbeddedRedis(workdir / "redis", appendfsync="everysec")
    redis_server.start()
    started: list[Background] = []
    ocs: ServerProcess | None = None
    try:
        uas_port = free_udp_port()
        ocs = ServerProcess(
            workdir / "ocs",
            redis_url=redis_server.url,
            catalog=str(DEMO_CATALOG),
            env={
                # The 302's Contact: the called SIPp.
                "OCS_SIP_ROUTE_URI": f"sip:+{{callee}}@127.0.0.1:{uas_port}",
                "OCS_SIP_CALL_DURATION_MAX_S": str(GRANT_S),
            },
        )
        ocs.start()
        proxy_key = make_proxy_key_sync(redis_server.url, "acme", "globex")
        uas_log = workdir / "uas.log"
        uas = Background(
            "called sipp",
            [
                "sipp", "-sf", str(SCENARIOS / "uas_answer.xml"),
                "-i", "127.0.0.1", "-p", str(uas_port), "-t", "u1", "-nostdin",
                "-trace_logs", "-log_file", str(uas_log),
                "-trace_err", "-error_file", str(workdir / "uas.err"),
            ],
            workdir / "uas.out",
            workdir,
        )  # fmt: skip
        started.append(uas)
        kamailio_port = free_udp_port()
        kamailio = Background(
            "kamailio",
            [
                KAMAILIO, "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "64", "-M", "8",
                "-Y", str(workdir),
                "-A", f"LISTEN_ADDR=udp:127.0.0.1:{kamailio_port}",
                "-A", f'OCS_SIP_URI="sip:127.0.0.1:{ocs.sip_port}"',
                "-A", f'OCS_HTTP_URL="http://127.0.0.1:{ocs.http_port}"',
                "-A", f'OCS_PROXY_KEY="{proxy_key}"',
            ],
            workdir / "kamailio.log",
            workdir,
        )  # fmt: skip
        started.append(kamailio)
        result = Stack(
            workdir, redis_server, ocs, proxy_key, kamailio, kamailio_port, uas, uas_port, uas_log
        )
        ready = wait_for_sip_answer(kamailio_port, 15)
        assert ready and kamailio.alive(), "Kamailio did not come up" + result.logs()
        deadline = time.monotonic() + 60
        while not udp_port_taken(uas_port) and uas.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert uas.alive() and udp_port_taken(uas_port), (
            f"called SIPp did not come up: {tail(workdir / 'uas.out')}"
        )
        yield result
    finally:
        for process in reversed(started):
            process.stop()
        if ocs is not None:
            ocs.stop()
        redis_server.stop()


@pytest.fixture
async def redis_client(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.redis.url)
    yield client
    await client.aclose()


async def call(
    stack: Stack, scenario: str, caller: str, callee: str, *extra: str
) -> dict[str, str]:
    """One SIPp caller run through Kamailio; the fields its scenario logged."""
    name = f"{scenario}-{caller}"
    log_file, error_file = stack.workdir / f"{name}.log", stack.workdir / f"{name}.err"
    process = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{stack.kamailio_port}",
        "-sf", str(SCENARIOS / scenario),
        "-t", "u1", "-i", "127.0.0.1", "-p", str(free_udp_port()),
        "-s", callee, "-key", "caller", caller, *extra,
        "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
        "-trace_logs", "-log_file", str(log_file),
        "-trace_err", "-error_file", str(error_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=stack.workdir,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, (
        f"calling SIPp ({scenario}) failed: {tail(error_file)}\n{output[-1500:]!r}" + stack.logs()
    )
    lines = log_file.read_text().splitlines() if log_file.exists() else []
    assert len(lines) == 1, f"{scenario} logged {lines}" + stack.logs()
    return {key: value.strip() for key, value in re.findall(r"(\w+)=([^=]*?)(?= \w+=|$)", lines[0])}


def epoch(value: str) -> float:
    """SIPp logs gettimeofday as "<s>.000000.<us>.000000"."""
    seconds, _, micros, _ = value.split(".")
    return int(seconds) + int(micros) / 1e6


def post_end(stack: Stack, reservation: str, duration_s: int) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.ocs.http_port}/v1/calls/{reservation}/end",
        data=json.dumps({"duration_s": duration_s}).encode(),
        method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {stack.proxy_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def wait_for_records(
    client: aioredis.Redis, caller: str, kind: str, count: int
) -> list[LedgerRecord]:
    deadline = time.monotonic() + 60
    while True:
        found = await ledger_records(client, "acme", caller, kind)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def account(stack: Stack, caller: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ocs",
        "account", "show", "--tenant", "acme", caller, "--json",
        "--redis-url", stack.redis.url, "--data-dir", str(stack.workdir / "cli"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, errors = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, errors
    result: dict[str, Any] = json.loads(output)
    return result


def de_fixed_charge(seconds: int) -> tuple[int, int]:
    """(retail, wholesale) in micro-EUR for an answered de_fixed call, from the demo catalog:
    price 0.04/60 s with a 60 s first increment then 60 s steps; cost 0.008/60 s on the seconds
    used. Both round up to the micro-unit."""
    billed = max(seconds, DE_FIXED_FIRST_S)
    billed = math.ceil(billed / DE_FIXED_STEP_S) * DE_FIXED_STEP_S
    return math.ceil(DE_FIXED_PRICE * billed / 60), math.ceil(DE_FIXED_COST * seconds / 60)


def reservation_of(record: LedgerRecord, caller: str) -> str:
    assert record.session_id.startswith("sip:"), record
    return f"acme.{caller}.{record.session_id.removeprefix('sip:')}"


def uas_invite_ruri(stack: Stack, call_id: str) -> str | None:
    for line in tail(stack.uas_log, 100_000).splitlines():
        match = re.match(r"invite call=(\S+) ruri=(\S+)", line)
        if match and match.group(1) == call_id:
            return match.group(2)
    return None


async def test_answered_call_is_charged_exactly(stack: Stack, redis_client: aioredis.Redis) -> None:
    caller = "4917099000011"
    found = await call(stack, "uac_call.xml", caller, CALLEE_FIXED, "-d", "2500")
    talk_s = epoch(found["ended"]) - epoch(found["answered"])
    # The callee got the INVITE at the route the OCS's 302 named (Kamailio followed it).
    assert uas_invite_ruri(stack, found["call"]) == (
        f"sip:+{CALLEE_FIXED}@127.0.0.1:{stack.uas_port}"
    ), stack.logs()

    records = await wait_for_records(redis_client, caller, "usage", 1)
    assert len(records) == 1, f"usage records {records}: Kamailio's end report?" + stack.logs()
    usage = records[0]
    reservation = reservation_of(usage, caller)
    # Kamailio measures 2xx -> BYE and rounds up; the caller's clock is a little wider.
    assert talk_s - 0.5 < usage.units < talk_s + 1, (talk_s, usage, stack.logs())
    retail, wholesale = de_fixed_charge(usage.units)
    assert retail == DE_FIXED_PRICE
    assert (usage.retail, usage.wholesale, usage.money_delta) == (retail, wholesale, -retail)
    assert usage.op_id == f"sip:{reservation.rsplit('.', 1)[1]}:end"  # an end event, not auto-end
    assert usage.balance_after == 10 * EUR - retail
    shown = await account(stack, caller)
    assert (shown["balance_micro"], shown["held_micro"]) == (10 * EUR - retail, 0), shown

    # Kamailio's report is the one on record: repeating it is a replay of the same end.
    status, answer = await asyncio.to_thread(post_end, stack, reservation, usage.units)
    assert status == 200, answer
    assert answer["replayed"] is True, answer
    assert (answer["ended_by"], answer["cause"], answer["charged_s"]) == (
        "end",
        "bye",
        usage.units,
    ), answer
    assert (answer["retail"], answer["held_money"]) == (retail, 0), answer


async def test_time_limit_cuts_the_call_and_is_reported(
    stack: Stack, redis_client: aioredis.Redis
) -> None:
    caller = "4917099000012"
    found = await call(stack, "uac_time_limit.xml", caller, CALLEE_FIXED)
    talk_s = epoch(found["ended"]) - epoch(found["answered"])
    # Kamailio's dialog timer counts whole-second ticks (it fires up to a second early or
    # late); the config arms it a second short of the grant, so the cut comes in the last two
    # granted seconds, never after the grant.
    assert GRANT_S - 2.2 < talk_s <= GRANT_S + 0.1, (talk_s, stack.logs())

    records = await wait_for_records(redis_client, caller, "usage", 1)
    assert len(records) == 1, f"usage records {records} after the time limit" + stack.logs()
    usage = records[0]
    assert usage.units <= GRANT_S and abs(usage.units - talk_s) < 1, (talk_s, usage)
    retail, wholesale = de_fixed_charge(usage.units)
    assert (usage.retail, usage.wholesale) == (retail, wholesale), usage
    reservation = reservation_of(usage, caller)
    status, answer = await asyncio.to_thread(post_end, stack, reservation, usage.units)
    assert status == 200 and answer["replayed"] is True, answer
    assert (answer["ended_by"], answer["cause"]) == ("end", "time-limit"), answer


@pytest.mark.parametrize(
    ("caller", "prepare", "status", "result"),
    [
        (UNKNOWN_CALLER, None, "404 Not Found", "5030"),
        ("4917099000013", "empty", "402 Payment Required", "4012"),
        ("4917099000014", "block", "403 Forbidden", "4010"),
    ],
)
async def test_ocs_refusal_reaches_the_caller(
    stack: Stack,
    redis_client: aioredis.Redis,
    caller: str,
    prepare: str | None,
    status: str,
    result: str,
) -> None:
    if prepare is not None:
        command = {
            "empty": ["adjust", "--tenant", "acme", caller, "-10.00", "--reason", "test"],
            "block": ["block", "--tenant", "acme", caller, "--reason", "test"],
        }[prepare]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ocs",
            "account", *command,
            "--redis-url", stack.redis.url, "--data-dir", str(stack.workdir / "cli"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, output
    found = await call(stack, "uac_refused.xml", caller, CALLEE_FIXED)
    assert (found["status"], found["result"]) == (status, result), (found, stack.logs())
    if prepare is not None:
        assert await ledger_records(redis_client, "acme", caller, "usage") == []


async def test_callee_busy_releases_the_reservation(
    stack: Stack, redis_client: aioredis.Redis
) -> None:
    caller = "4917099000015"
    found = await call(stack, "uac_refused.xml", caller, CALLEE_BUSY)
    # The callee's 486 reaches the caller, not the OCS's 302 (Kamailio drops that reply).
    assert found["status"] == "486 Busy Here", (found, stack.logs())
    deadline = time.monotonic() + 60
    while True:
        shown = await account(stack, caller)
        if not shown.get("reservations") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert (shown["balance_micro"], shown["held_micro"]) == (10 * EUR, 0), shown
    assert await ledger_records(redis_client, "acme", caller, "usage") == []
    log = tail(stack.kamailio.log, 100_000)
    match = re.search(rf"OCS call end (acme\.{caller}\.[0-9a-f]{{32}}) 0 s \(unanswered\)", log)
    assert match, "Kamailio did not report the unanswered call" + stack.logs()
    status, answer = await asyncio.to_thread(post_end, stack, match.group(1), 0)
    assert status == 200 and answer["replayed"] is True, answer
    assert (answer["cause"], answer["charged_s"], answer["held_money"]) == ("unanswered", 0, 0)

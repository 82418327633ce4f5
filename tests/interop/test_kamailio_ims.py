"""Kamailio ims_charging (cdp + ims_dialog + ims_charging, Debian kamailio-ims-modules) doing a
real IMS Ro session against ``ocs serve``: SIPp caller and callee through
examples/kamailio/kamailio-ims-ro.cfg, CCR-INITIAL at set-up, CCR-UPDATE before the grant runs
out, CCR-TERMINATION at BYE, the call charged to the micro-unit by the demo catalog (Kamailio's
default Rating-Group 100 / Service-Identifier 1000 on 32260 fall to ``context_defaults``)."""

from __future__ import annotations

import asyncio
import glob
import json
import math
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from balance.records import LedgerRecord
from ocs.embedded_redis import EmbeddedRedis, free_tcp_port
from tests.interop.test_kamailio import (
    KAMAILIO,
    Background,
    free_udp_port,
    tail,
    wait_for_sip_answer,
)
from tests.support.charging import DEMO_CATALOG, ledger_records
from tests.support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
IMS_CFG = ROOT / "examples" / "kamailio" / "kamailio-ims-ro.cfg"
CDP_XML = ROOT / "examples" / "kamailio" / "ims-ro-cdp.xml"
SCENARIOS = ROOT / "tests" / "support" / "kamailio"
IMS_MODULES = glob.glob("/usr/lib/*/kamailio/modules/ims_charging.so")
MISSING = [
    what
    for what, present in (
        ("kamailio (Debian package kamailio)", KAMAILIO),
        ("ims_charging.so (Debian package kamailio-ims-modules)", IMS_MODULES),
        ("sipp (Debian package sip-tester)", __import__("shutil").which("sipp")),
    )
    if not present
]

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        bool(MISSING) and not os.environ.get("CI"), reason=f"not installed: {MISSING}"
    ),
]

CALLER = "4917099000005"  # acme, 10.00 EUR opening balance
CALLEE_FIXED = "4930123456"  # acme de_fixed: 0.04 EUR per started minute, cost 0.008 EUR/min
DE_FIXED_PRICE, DE_FIXED_COST = 40_000, 8_000  # micro-EUR per 60 s
OPENING = 10_000_000
# The OCS grants a first minute (acme voice first_increment 60 s); with ims_charging's timer
# buffer at 55 s its CCR-UPDATE goes about 5 s into the call.
TIMER_BUFFER_S = 55
TALK_MS = 8000


@dataclass
class ImsStack:
    workdir: Path
    redis: EmbeddedRedis
    ocs: ServerProcess
    kamailio: Background
    kamailio_port: int

    def logs(self) -> str:
        return (
            f"\n--- kamailio log ---\n{tail(self.kamailio.log)}"
            f"\n--- ocs serve log ---\n{self.ocs.log_text()[-6000:]}"
        )


def ocs_events(stack: ImsStack, event: str) -> list[dict[str, object]]:
    found = []
    for line in stack.ocs.log_text().splitlines():
        if f'"{event}"' in line:
            found.append(json.loads(line))
    return found


@pytest.fixture(scope="module")
def ims_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImsStack]:
    assert not MISSING, f"not installed: {MISSING} (run `make test-sysdeps`)"
    assert KAMAILIO is not None
    workdir = tmp_path_factory.mktemp("kamailio-ims")
    redis_server = EmbeddedRedis(workdir / "redis", appendfsync="everysec")
    redis_server.start()
    started: list[Background] = []
    ocs: ServerProcess | None = None
    try:
        # cdp resolves its peer's FQDN and expects it as the CEA's Origin-Host: "localhost".
        ocs = ServerProcess(
            workdir / "ocs", redis_url=redis_server.url, catalog=str(DEMO_CATALOG),
            origin_host="localhost",
        )  # fmt: skip
        ocs.start()
        cdp = workdir / "ims-ro-cdp.xml"
        cdp.write_text(
            CDP_XML.read_text()
            .replace('port="3868"', f'port="{ocs.diameter_port}"')
            .replace('port="3870"', f'port="{free_tcp_port()}"')
            # cdp hands a new connection from its timer process to its receiver process; on a
            # loaded machine the first hand-over can fail and its CER then goes out without
            # Host-IP-Address (answered 5005, closed). cdp reconnects after Tc: a short Tc makes
            # that retry fall inside the wait below.
            .replace('Tc="30"', 'Tc="3"')
        )
        uas_port = free_udp_port()
        uas = Background(
            "called sipp",
            [
                "sipp", "-sf", str(SCENARIOS / "uas_answer.xml"), "-t", "u1",
                "-i", "127.0.0.1", "-p", str(uas_port), "-nostdin", "-bg",
            ],
            workdir / "uas.log",
            workdir,
        )  # fmt: skip
        started.append(uas)
        kamailio_port = free_udp_port()
        kamailio = Background(
            "kamailio",
            [
                KAMAILIO, "-f", str(IMS_CFG), "-DD", "-E", "-m", "64", "-M", "8",
                "-A", f"LISTEN_ADDR=udp:127.0.0.1:{kamailio_port}",
                "-A", f'CDP_CONFIG="{cdp}"',
                "-A", f'CALLEE_URI="sip:127.0.0.1:{uas_port}"',
                "-A", f"RO_TIMER_BUFFER_S={TIMER_BUFFER_S}",
            ],
            workdir / "kamailio.log",
            workdir,
        )  # fmt: skip
        started.append(kamailio)
        stack = ImsStack(workdir, redis_server, ocs, kamailio, kamailio_port)
        assert wait_for_sip_answer(kamailio_port, 30), "Kamailio did not start" + stack.logs()
        deadline = time.monotonic() + 120  # several cdp reconnects (Tc) on a loaded machine
        while not any(
            e.get("origin_host") == "scscf.test.local"
            for e in ocs_events(stack, "diameter_peer_up")
        ):
            assert time.monotonic() < deadline, "cdp never completed CER/CEA" + stack.logs()
            time.sleep(0.1)
        yield stack
    finally:
        for process in reversed(started):
            process.stop()
        # The called SIPp runs in the background (-bg): its leader exits at once.
        if ocs is not None:
            ocs.stop()
        redis_server.stop()


@pytest.fixture
async def redis_client(ims_stack: ImsStack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(ims_stack.redis.url)
    yield client
    await client.aclose()


async def test_kamailio_ims_charging_call_is_charged_to_the_micro_unit(
    ims_stack: ImsStack, redis_client: aioredis.Redis
) -> None:
    stack = ims_stack
    log_file = stack.workdir / "uac.log"
    process = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{stack.kamailio_port}",
        "-sf", str(SCENARIOS / "uac_ims_call.xml"),
        "-t", "u1", "-i", "127.0.0.1", "-p", str(free_udp_port()),
        "-s", CALLEE_FIXED, "-key", "caller", CALLER, "-d", str(TALK_MS),
        "-m", "1", "-nostdin", "-timeout", "40s", "-timeout_error",
        "-trace_logs", "-log_file", str(log_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=stack.workdir,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"calling SIPp failed: {output[-1500:]!r}" + stack.logs()

    records: list[LedgerRecord] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = await ledger_records(redis_client, "acme", CALLER)
        account = await _account(redis_client)
        if records and account["held"] == 0:
            break
        await asyncio.sleep(0.2)
    # CCR-I, at least one CCR-U (sent a timer buffer before the grant ends), CCR-T; every CCA
    # and MSCC 2001 (the OCS's own counters).
    counts = _metrics(stack)
    requests = {t: counts.get(f'ocs_cc_requests_total{{tenant="acme",type="{t}"}}', 0) for t in
                ("INITIAL", "UPDATE", "TERMINATION")}  # fmt: skip
    assert requests["INITIAL"] == 1 and requests["TERMINATION"] == 1, f"{requests}" + stack.logs()
    assert requests["UPDATE"] >= 1, f"{requests}" + stack.logs()
    sent = sum(requests.values())
    assert counts.get('ocs_cc_results_total{level="session",result_code="2001"}') == sent
    used = sum(r.units for r in records)
    assert records and {(r.service, r.rating_group) for r in records} == {("voice", 100)}
    assert TALK_MS // 1000 - 1 <= used <= TALK_MS // 1000 + 3, f"{used} s for an 8 s call"
    # de_fixed: 0.04 per started minute (first increment 60 s, then 60 s steps); wholesale
    # 0.008/min on the seconds used, rounded up to the micro-unit.
    retail = sum(r.retail for r in records)
    assert retail == DE_FIXED_PRICE * max(1, math.ceil(used / 60))
    assert sum(r.wholesale for r in records) == math.ceil(used * DE_FIXED_COST / 60)
    account = await _account(redis_client)
    assert account == {"balance": OPENING - retail, "held": 0}, stack.logs()


async def _account(client: aioredis.Redis) -> dict[str, int]:
    from balance.ledger import Ledger

    found = await Ledger(client, "acme").query(CALLER)
    return {"balance": found.balance, "held": found.held_money}


def _metrics(stack: ImsStack) -> dict[str, float]:
    """The OCS's Prometheus samples, by series."""
    samples = {}
    for line in stack.ocs.http_get("/metrics").decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples

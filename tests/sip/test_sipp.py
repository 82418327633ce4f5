"""SIPp and sipsak, independent SIP implementations, against a SipServer on loopback.

The server runs in the test's event loop with the in-memory test authorizer (a test double for
the SIP side only); the scenarios are in tests/sip/scenarios/. SIPp exits 0 only when every
call followed its scenario, including the header checks (``check_it``) in the XML; the values
it found are written with ``-trace_logs`` and compared here with what the authorizer decided.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest

from ocs.sip.transport import SipServer
from tests.sip.conftest import BLOCKED, BROKE, RICH, SLOW
from tests.sip.helpers import TableAuthorizer

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed"),
]

SCENARIOS = Path(__file__).parent / "scenarios"
CALLEE = "4930123456"
UNKNOWN = "491719999999"


async def run_sipp(
    server: SipServer,
    scenario: str,
    tmp_path: Path,
    *,
    caller: str,
    calls: int = 1,
    transport: str = "u1",
    options: tuple[str, ...] = (),
) -> list[str]:
    """Run one SIPp scenario to completion; return its -trace_logs lines (fails on rc != 0)."""
    log_file = tmp_path / f"{scenario}-{transport}.log"
    error_file = tmp_path / f"{scenario}-{transport}.err"
    process = await asyncio.create_subprocess_exec(
        "sipp",
        f"127.0.0.1:{server.port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-t",
        transport,
        "-i",
        "127.0.0.1",
        "-p",
        "0",
        "-s",
        CALLEE,
        "-key",
        "caller",
        caller,
        "-m",
        str(calls),
        "-r",
        "50",
        "-l",
        str(calls),
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        "-trace_logs",
        "-log_file",
        str(log_file),
        "-trace_err",
        "-error_file",
        str(error_file),
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    errors = error_file.read_text(errors="replace") if error_file.exists() else ""
    assert process.returncode == 0, f"sipp {scenario} failed:\n{errors}\n{output[-2000:]!r}"
    return log_file.read_text().splitlines() if log_file.exists() else []


def fields(line: str) -> dict[str, str]:
    return {key: value.strip() for key, value in re.findall(r"(\w+)=\s*(\S+)", line)}


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_authorized_call_gets_302_with_max_duration(
    sip_server: SipServer, authorizer: TableAuthorizer, tmp_path: Path, transport: str
) -> None:
    lines = await run_sipp(
        sip_server, "invite_302.xml", tmp_path, caller=RICH, calls=3, transport=transport
    )
    assert len(lines) == 3
    for line in lines:
        found = fields(line)
        assert found["max_duration"] == "120"
        assert found["maxdur"] == "120"
        assert found["reservation"] == "res-rich"
        assert found["route"] == "sip:+4930123456@gw.test"
    assert len(authorizer.calls) == 3
    assert {call.caller for call in authorizer.calls} == {RICH}
    assert {call.callee for call in authorizer.calls} == {CALLEE}
    assert {call.transport for call in authorizer.calls} == {"udp" if transport == "u1" else "tcp"}
    assert sip_server.metrics.invites[("t1", 302)] == 3


@pytest.mark.parametrize(
    ("scenario", "caller"),
    [("invite_402.xml", BROKE), ("invite_403.xml", BLOCKED), ("invite_404.xml", UNKNOWN)],
)
async def test_refused_calls(
    sip_server: SipServer, tmp_path: Path, scenario: str, caller: str
) -> None:
    lines = await run_sipp(sip_server, scenario, tmp_path, caller=caller, calls=2)
    assert len(lines) == 2
    status = int(scenario[7:10])
    assert (
        sum(count for (_, code), count in sip_server.metrics.invites.items() if code == status) == 2
    )
    assert sip_server.metrics.ack_timeouts == 0


async def test_register_gets_405(sip_server: SipServer, tmp_path: Path) -> None:
    await run_sipp(sip_server, "register_405.xml", tmp_path, caller=RICH)
    assert sip_server.metrics.responses_by_status[405] == 1


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_options_ping_gets_200(sip_server: SipServer, tmp_path: Path, transport: str) -> None:
    await run_sipp(sip_server, "options_200.xml", tmp_path, caller=RICH, transport=transport)
    assert sip_server.metrics.responses_by_status[200] == 1


async def test_forced_retransmissions_ask_the_authorizer_once_per_call(
    sip_server: SipServer, authorizer: TableAuthorizer, tmp_path: Path
) -> None:
    authorizer.delay_s = 0.5  # SIPp retransmits the INVITE at 200 ms; the 100 Trying stops it
    lines = await run_sipp(sip_server, "invite_slow.xml", tmp_path, caller=SLOW, calls=4)
    call_ids = {fields(line)["call"] for line in lines}
    assert len(call_ids) == 4
    assert {call_id: authorizer.calls_for(call_id) for call_id in call_ids} == dict.fromkeys(
        call_ids, 1
    )
    metrics = sip_server.metrics
    assert metrics.retransmissions_absorbed >= 4  # at least one Timer A resend per call
    assert metrics.responses_by_status[100] >= 4
    assert metrics.authorizer_calls == 4
    assert metrics.invites[("t1", 302)] == 4


async def test_resent_invite_after_the_302_gets_the_stored_302(
    sip_server: SipServer, authorizer: TableAuthorizer, tmp_path: Path
) -> None:
    lines = await run_sipp(
        sip_server, "invite_retransmit.xml", tmp_path, caller=RICH, calls=3, options=("-nr",)
    )
    call_ids = {fields(line)["call"] for line in lines}
    assert len(call_ids) == 3
    for line in lines:
        found = fields(line)
        assert found["first_tag"] == found["second_tag"]  # the stored answer, not a new one
    assert {call_id: authorizer.calls_for(call_id) for call_id in call_ids} == dict.fromkeys(
        call_ids, 1
    )
    assert sip_server.metrics.retransmissions_absorbed == 3
    assert sip_server.metrics.invites[("t1", 302)] == 3


@pytest.mark.skipif(shutil.which("sipsak") is None, reason="sipsak not installed")
async def test_sipsak_options_ping(sip_server: SipServer, authorizer: TableAuthorizer) -> None:
    async def sipsak() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            "sipsak",
            "-vv",
            "-s",
            f"sip:ping@127.0.0.1:{sip_server.port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        return int(process.returncode or 0), output.decode(errors="replace")

    code, output = await sipsak()
    assert code == 0, output
    assert "SIP/2.0 200 OK" in output
    authorizer.is_healthy = False
    code, output = await sipsak()
    assert "SIP/2.0 503 Service Unavailable" in output
    assert code != 0

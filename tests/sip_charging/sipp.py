"""Running SIPp (an independent SIP implementation) against a SIP server on loopback.

The scenarios are the SIP front end's (tests/sip/scenarios/); each logs what it found in the
answer with ``-trace_logs`` so the test can compare it with the ledger.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[1] / "sip" / "scenarios"


async def run_sipp(
    port: int,
    scenario: str,
    tmp_path: Path,
    *,
    caller: str,
    callee: str,
    calls: int = 1,
    transport: str = "u1",
) -> list[dict[str, str]]:
    """Run one scenario to completion (asserting SIPp exit 0); the logged fields per call."""
    log_file = tmp_path / f"{scenario}-{caller}-{transport}.log"
    error_file = tmp_path / f"{scenario}-{caller}-{transport}.err"
    process = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{port}",
        "-sf", str(SCENARIOS / scenario),
        "-t", transport,
        "-i", "127.0.0.1",
        "-p", "0",
        "-s", callee,
        "-key", "caller", caller,
        "-m", str(calls),
        "-r", "50",
        "-l", str(calls),
        "-nostdin",
        "-timeout", "20s",
        "-timeout_error",
        "-trace_logs", "-log_file", str(log_file),
        "-trace_err", "-error_file", str(error_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    errors = error_file.read_text(errors="replace") if error_file.exists() else ""
    assert process.returncode == 0, f"sipp {scenario} failed:\n{errors}\n{output[-2000:]!r}"
    lines = log_file.read_text().splitlines() if log_file.exists() else []
    return [
        {key: value.strip() for key, value in re.findall(r"(\w+)=\s*(\S+)", line)} for line in lines
    ]

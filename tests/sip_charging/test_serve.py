"""End to end through a real ``ocs serve`` process: SIPp INVITE → 302 from the ledger, the call
end posted over HTTP, the SIP counters on /metrics, sipsak's OPTIONS health check."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sip_charging.conftest import ACME_CALLER, DE_MOBILE_CALLEE
from tests.sip_charging.sipp import run_sipp
from tests.support.charging import DEMO_CATALOG
from tests.support.proxy_keys import make_proxy_key_sync
from tests.support.server_process import ServerProcess

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp (sip-tester) not installed"),
]

EUR = 1_000_000


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "ocs", redis_url=redis_url, catalog=str(DEMO_CATALOG))
    process.start()
    yield process
    assert process.stop() == 0, process.log_text()


def post(
    server: ServerProcess, path: str, body: bytes, key: str | None = None
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}", data=body, method="POST",
        headers={} if key is None else {"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_call_through_ocs_serve(
    server: ServerProcess, tmp_path: Path, redis_url: str
) -> None:
    acme = make_proxy_key_sync(redis_url, "acme")
    globex = make_proxy_key_sync(redis_url, "globex")
    [found] = await run_sipp(
        server.sip_port, "invite_302.xml", tmp_path, caller=ACME_CALLER, callee=DE_MOBILE_CALLEE
    )
    assert found["max_duration"] == "3600"  # 10.00 EUR covers the voice max grant at any band
    reservation = found["reservation"]
    body = json.dumps({"duration_s": 61, "cause": "normal"}).encode()
    end = f"/v1/calls/{reservation}/end"
    # No key, another tenant's key: refused, nothing charged; acme's proxy key: charged.
    status, refused = await asyncio.to_thread(post, server, end, body)
    assert (status, refused["code"]) == (401, "no_key")
    status, refused = await asyncio.to_thread(post, server, end, body, globex)
    assert (status, refused["code"]) == (403, "wrong_tenant")
    status, answer = await asyncio.to_thread(post, server, end, body, acme)
    assert status == 200, answer
    assert answer["charged_s"] == 61 and answer["held_money"] == 0
    # Peak 0.09 or off-peak 0.05 EUR/min, 60/1 increments: 61 s cost 61/60 of a minute
    # (retail rounds up to the micro-unit).
    assert answer["retail"] in (91_500, 50_000 + 834)
    assert answer["balance"] == 10 * EUR - answer["retail"]
    status, again = await asyncio.to_thread(post, server, end, body, acme)
    assert (status, again) == (200, {**answer, "replayed": True})
    status, missing = await asyncio.to_thread(
        post, server, f"/v1/calls/acme.{ACME_CALLER}.{'0' * 32}/end", body, acme
    )
    assert (status, missing["code"]) == (404, "unknown_reservation")
    metrics = (await asyncio.to_thread(server.http_get, "/metrics")).decode()
    assert 'ocs_sip_invites_total{status="302",tenant="acme"} 1.0' in metrics
    assert "ocs_sip_invite_latency_seconds_count 1.0" in metrics


@pytest.mark.skipif(shutil.which("sipsak") is None, reason="sipsak not installed")
async def test_sipsak_options_against_ocs_serve(server: ServerProcess) -> None:
    process = await asyncio.create_subprocess_exec(
        "sipsak", "-vv", "-s", f"sip:ping@127.0.0.1:{server.sip_port}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output
    assert b"SIP/2.0 200 OK" in output

"""A subscriber created through the API is charged by a real ``ocs serve`` at once: the server
learns it from the dynamic directory's notice, with no restart and no catalog change."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.api.conftest import CATALOG, Api
from tests.interop.test_base_interop import _cer
from tests.support.gy import INITIAL, TERMINATION, Mscc, ccr, msccs_of, result_code
from tests.support.pd_client import PdClient
from tests.support.server_process import ServerProcess

NEW = "4915558000001"
NEW_IMSI = "262015558000001"
WAIT_S = 30.0  # bounded wait on a loaded machine; the time it took is reported, not asserted


def _charge(server: ServerProcess, number: str, imsi: str, n: int) -> tuple[int | None, int | None]:
    client = PdClient(server.connect_diameter())
    try:
        assert client.request(_cer()).result_code == 2001
        sid = f"pgw.test.local;api;{n}"
        cca = client.request(
            ccr(sid, INITIAL, 0, imsi=imsi, msccs=[Mscc(10, {"cc_total_octets": 1024})])
        )
        code = result_code(cca)
        mscc = msccs_of(cca).get(10, {}).get("result_code")
        if code == 2001:
            client.request(
                ccr(
                    sid,
                    TERMINATION,
                    1,
                    imsi=imsi,
                    msccs=[Mscc(10, None, [{"cc_total_octets": 1024}])],
                )
            )
        return code, mscc  # type: ignore[return-value]
    finally:
        client.close()


@pytest.mark.slow
async def test_created_subscriber_is_charged_by_a_ccr(api: Api, tmp_path: Path) -> None:
    redis_url = api.state.ledgers.url
    server = ServerProcess(tmp_path / "serve", redis_url=redis_url, catalog=str(CATALOG))
    (tmp_path / "serve").mkdir()
    await asyncio.to_thread(server.start)
    try:
        assert (await asyncio.to_thread(_charge, server, NEW, NEW_IMSI, 0))[0] == 5030
        h = api.auth(await api.key("acme", role="operate"))
        created = await api.client.post(
            "/api/v1/tenants/acme/subscribers",
            json={"subscriber": f"+{NEW}", "imsi": NEW_IMSI, "balance": "10.00"},
            headers=h,
        )
        assert created.status_code == 201, created.text
        started, n, code = time.monotonic(), 0, None
        while time.monotonic() - started < WAIT_S:
            n += 1
            code, _ = await asyncio.to_thread(_charge, server, NEW, NEW_IMSI, n)
            if code == 2001:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        print(f"created subscriber charged after {elapsed:.3f} s ({n} CCR attempts)")
        assert code == 2001, server.log_text()[-3000:]
        account = await api.client.get(f"/api/v1/tenants/acme/subscribers/{NEW}", headers=h)
        assert account.json()["imsi"] == NEW_IMSI
        assert account.json()["balance_micro"] < 10_000_000  # the 1 KiB was charged
    finally:
        assert await asyncio.to_thread(server.stop) == 0

"""Gy through a real ``ocs serve`` process, python-diameter as the gateway, tshark on the wire."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ocs.embedded_redis import EmbeddedRedis
from tests.interop.test_base_interop import _cer
from tests.support.gy import INITIAL, TERMINATION, UPDATE, Mscc, ccr, msccs_of, result_code
from tests.support.pd_client import PdClient
from tests.support.server_process import ServerProcess
from tests.support.tshark import Capture

pytestmark = pytest.mark.interop

CATALOG = str(Path(__file__).resolve().parents[2] / "examples" / "catalog")
MIB = 1_048_576


@pytest.fixture(scope="module")
def gy_server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    redis.Redis.from_url(redis_server.url).flushall()
    # The default validity (minutes): a session lives as long as a test on a loaded machine
    # needs (two `ocs account` subprocesses took > 3 s there). Tcc has its own server below.
    proc = ServerProcess(tmp_path_factory.mktemp("ocs-gy"), redis_url=redis_server.url,
                         catalog=CATALOG)  # fmt: skip
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log_text()


@pytest.fixture
def tcc_server(redis_server: EmbeddedRedis, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose sessions expire quickly (validity 2 s + grace 1 s), for Tcc."""
    proc = ServerProcess(
        tmp_path / "ocs-tcc",
        redis_url=redis_server.url,
        catalog=CATALOG,
        env={
            "OCS_CHARGING_VALIDITY_TIME_S": "2",
            "OCS_CHARGING_TCC_GRACE_S": "1",
            "OCS_CHARGING_SWEEP_INTERVAL_S": "0.2",
        },
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _client(server: ServerProcess) -> PdClient:
    client = PdClient(server.connect_diameter())
    assert client.request(_cer()).result_code == 2001
    return client


def _account(server: ServerProcess, redis_url: str, subscriber: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "ocs", "account", "show", "--tenant", "acme", subscriber,
         "--json", "--redis-url", redis_url],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    import json

    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_gy_session_over_the_wire(
    gy_server: ServerProcess, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    sid = "pgw.test.local;wire;1"
    roam = {"msisdn": "4917099000010", "visited_plmn": "310260"}
    with Capture(tmp_path / "gy.pcap", gy_server.diameter_port) as capture:
        client = _client(gy_server)
        cca = client.request(
            ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB})], **roam)
        )
        assert result_code(cca) == 2001 and msccs_of(cca)[10]["octets"] == MIB
        cca = client.request(
            ccr(sid, UPDATE, 1, msccs=[Mscc(10, {}, [{"cc_total_octets": MIB // 2}])], **roam)
        )
        assert msccs_of(cca)[10]["result_code"] == 2001
        cca = client.request(
            ccr(
                sid, TERMINATION, 2, msccs=[Mscc(10, None, [{"cc_total_octets": MIB // 2}])], **roam
            )
        )
        assert result_code(cca) == 2001
        client.close()
    account = _account(gy_server, redis_server.url, "4917099000010")
    # 1 MiB of world-zone data at 5.00 EUR/MiB out of 10.00 EUR.
    assert (account["balance_micro"], account["held_micro"]) == (5_000_000, 0), account
    assert capture.decode("diameter.cmd.code == 272")
    assert capture.problems() == []


def test_client_killed_mid_session_is_released_by_tcc(
    tcc_server: ServerProcess, redis_server: EmbeddedRedis
) -> None:
    sid = "pgw.test.local;killed;1"
    roam = {"msisdn": "4917099000011", "visited_plmn": "310260"}
    client = _client(tcc_server)
    cca = client.request(ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB})], **roam))
    assert msccs_of(cca)[10]["octets"] == MIB
    client.sock.close()  # the gateway dies: no CCR-T ever comes
    deadline = time.monotonic() + 60
    account = _account(tcc_server, redis_server.url, "4917099000011")
    # 1 MiB at 5.00 EUR/MiB: held, or already released on a slow machine; never charged.
    assert account["held_micro"] in (5_000_000, 0)
    while time.monotonic() < deadline and account["held_micro"] != 0:
        time.sleep(0.3)
        account = _account(tcc_server, redis_server.url, "4917099000011")
    # validity 2 s + grace 1 s, then the sweeper (every 0.2 s) released it: nothing charged.
    assert (account["held_micro"], account["balance_micro"]) == (0, 10_000_000), account


def test_catalog_load_reaches_a_running_server(
    gy_server: ServerProcess, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for name in ("acme.yaml", "globex.yaml"):
        (catalog / name).write_text((Path(CATALOG) / name).read_text())
    initech = (Path(CATALOG) / "globex.yaml").read_text()
    initech = initech.replace("tenant: globex", "tenant: initech")
    initech = initech.replace("262019910", "262019920").replace("4917199", "4917299")
    (catalog / "initech.yaml").write_text(initech)
    client = _client(gy_server)
    request = ccr("s;initech;1", INITIAL, 0, msisdn="4917299000001", msccs=[Mscc(10)])
    assert result_code(client.request(request)) == 5030  # not in the running catalog yet
    loaded = subprocess.run(
        [sys.executable, "-m", "ocs", "catalog", "load", str(catalog),
         "--redis-url", redis_server.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert "initech: 200 subscribers installed" in loaded.stdout
    deadline = time.monotonic() + 60  # a bound for a broken server, not a speed
    code = 5030
    number = 0
    while code == 5030 and time.monotonic() < deadline:
        time.sleep(0.1)
        number += 1
        request = ccr(f"s;initech;{number}", INITIAL, 0, msisdn="4917299000001", msccs=[Mscc(10)])
        code = result_code(client.request(request))
    assert code == 2001
    client.close()


def _account_cli(redis_url: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ocs", "account", *args, "--tenant", "acme",
         "--redis-url", redis_url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_topup_sends_rar_and_block_sends_asr(
    gy_server: ServerProcess, redis_server: EmbeddedRedis
) -> None:
    from diameter.message.commands import AbortSessionAnswer, ReAuthAnswer

    subscriber = "4917099000012"
    sid = "pgw.test.local;rar;1"
    roam = {"msisdn": subscriber, "visited_plmn": "310260"}
    client = _client(gy_server)
    client.sock.settimeout(60)  # the RAR/ASR follow subprocesses: generous on a loaded machine
    cca = client.request(
        ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": 10 * MIB})], **roam)
    )
    assert msccs_of(cca)[10]["fui"] is not None  # 10.00 EUR buys 2 MiB: the final grant

    _account_cli(redis_server.url, "topup", subscriber, "5.00")
    rar = client.recv()
    assert (rar.header.command_code, rar.header.is_request) == (258, True)
    assert rar.session_id == sid
    assert rar.destination_host == b"pgw.test.local"
    assert rar.re_auth_request_type == 0  # AUTHORIZE_ONLY
    raa = ReAuthAnswer()
    raa.header.hop_by_hop_identifier = rar.header.hop_by_hop_identifier
    raa.header.end_to_end_identifier = rar.header.end_to_end_identifier
    raa.session_id, raa.result_code = sid, 2001
    raa.origin_host, raa.origin_realm = b"pgw.test.local", b"test.local"
    client.send(raa)

    _account_cli(redis_server.url, "block", subscriber)
    asr = client.recv()
    assert (asr.header.command_code, asr.header.is_request) == (274, True)
    assert asr.session_id == sid
    asa = AbortSessionAnswer()
    asa.header.hop_by_hop_identifier = asr.header.hop_by_hop_identifier
    asa.header.end_to_end_identifier = asr.header.end_to_end_identifier
    asa.session_id, asa.result_code = sid, 2001
    asa.origin_host, asa.origin_realm = b"pgw.test.local", b"test.local"
    client.send(asa)
    cca = client.request(
        ccr(sid, TERMINATION, 1, msccs=[Mscc(10, None, [{"cc_total_octets": MIB}])], **roam)
    )
    assert result_code(cca) == 2001
    client.close()


def _session_requests(sid: str, msisdn: str) -> list[object]:
    roam = {"msisdn": msisdn, "visited_plmn": "310260"}
    usage = [{"cc_total_octets": 100_000}]
    requests = [ccr(sid, INITIAL, 0, msccs=[Mscc(10, {"cc_total_octets": MIB}), Mscc(20)], **roam)]
    for number in range(1, 4):
        requests.append(
            ccr(sid, UPDATE, number, msccs=[Mscc(10, {}, usage), Mscc(20, {}, usage)], **roam)
        )
    requests.append(ccr(sid, TERMINATION, 4, msccs=[Mscc(10, None, usage)], **roam))
    return requests


def test_retransmit_storm_charges_like_a_clean_run(
    gy_server: ServerProcess, redis_server: EmbeddedRedis
) -> None:
    clean, stormy = "4917099000013", "4917099000014"
    client = _client(gy_server)
    for request in _session_requests("s;clean;1", clean):
        assert result_code(client.request(request)) == 2001
    other = _client(gy_server)  # a second connection of the same gateway (failover path)
    for index, request in enumerate(_session_requests("s;storm;1", stormy)):
        original = request.header.hop_by_hop_identifier
        client.send(request)
        request.header.hop_by_hop_identifier = original + 1_000_000
        request.header.is_retransmit = index % 2 == 0  # with and without the T flag
        if index % 3 == 0:
            other.send(request)  # duplicate on the other connection, before any answer
            answers = [client.recv(), other.recv()]
        else:
            client.send(request)  # duplicate on the same connection, before the answer
            answers = [client.recv(), client.recv()]
        assert [result_code(a) for a in answers] == [2001, 2001]
        assert msccs_of(answers[0]) == msccs_of(answers[1])
    client.close()
    other.close()
    clean_account = _account(gy_server, redis_server.url, clean)
    stormy_account = _account(gy_server, redis_server.url, stormy)
    assert stormy_account["balance_micro"] == clean_account["balance_micro"] < 10_000_000
    assert stormy_account["held_micro"] == clean_account["held_micro"] == 0


def test_retransmit_storm_wrote_no_duplicate_usage_records(redis_server: EmbeddedRedis) -> None:
    """Runs after the storm test (same module server): one record per commit for both runs."""
    import asyncio

    import redis.asyncio as aioredis

    from balance import keys
    from balance.streams import RecordReader

    async def usage_count(subscriber: str) -> int:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            reader = RecordReader(client, "acme", f"count-{subscriber}", "t")
            found = await reader.read(keys.vshard(subscriber), count=1000)
        finally:
            await client.aclose()
        return sum(
            1 for r in found if r.record.subscriber == subscriber and r.record.kind == "usage"
        )

    clean = asyncio.run(usage_count("4917099000013"))
    stormy = asyncio.run(usage_count("4917099000014"))
    assert clean == stormy == 7  # U1-U3 commit two rating groups each, T commits one


def test_metrics_count_requests_results_and_units(gy_server: ServerProcess) -> None:
    text = gy_server.http_get("/metrics").decode()
    assert 'ocs_cc_requests_total{tenant="acme",type="INITIAL"}' in text
    assert 'ocs_cc_results_total{level="mscc",result_code="2001"}' in text
    assert 'ocs_cc_granted_units_total{service="data",tenant="acme"}' in text
    assert 'ocs_diameter_answers_total{command="CCR",result_code="2001"}' in text
    assert "ocs_diameter_request_latency_seconds_bucket" in text
    assert "ocs_diameter_peers_connected" in text


def test_metrics_of_the_process_build_catalog_and_ledger(gy_server: ServerProcess) -> None:
    """Runs after the sessions above (same module server): acme's ledger is in use."""
    text = gy_server.http_get("/metrics").decode()
    for needle in (
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "python_gc_collections_total{",
        'ocs_build_info{python="',
        'ocs_catalog_info{version="',
        'ocs_catalog_reloads_total{outcome="loaded"}',
        'ocs_ledger_pool_size{tenant="acme"} 64.0',
        'ocs_ledger_pool_waiting{tenant="acme"} 0.0',
        'ocs_ledger_call_seconds_count{kind="session"}',
    ):
        assert needle in text, needle
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith(("ocs_catalog_loaded_timestamp", "ocs_catalog_tenants"))
    }
    assert values["ocs_catalog_loaded_timestamp_seconds"] > 1.7e9
    # 2 demo tenants, 3 once test_catalog_load_reaches_a_running_server has added initech.
    assert values["ocs_catalog_tenants"] in (2, 3)


def test_ccr_with_auth_application_id_only_in_vendor_specific_form_is_answered(
    gy_server: ServerProcess,
) -> None:
    """Kamailio's cdp sends Auth-Application-Id only inside Vendor-Specific-Application-Id:
    the lenient profile answers it normally."""
    from diameter.message.avp import Avp

    from tests.support.gy import plain

    client = _client(gy_server)
    request = plain(
        ccr("s;kamailio;1", INITIAL, 0, msisdn="4917099000015", msccs=[Mscc(10)]), drop=(258,)
    )
    request.append_avp(Avp.new(260, value=[Avp.new(266, value=10415), Avp.new(258, value=4)]))
    answer = client.request(request)
    assert result_code(answer) == 2001
    client.close()

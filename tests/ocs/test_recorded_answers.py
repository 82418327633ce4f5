"""Byte-identical answers for a recorded set of CCRs: the guard for work that makes the CCR path
cheaper (issue #17) without changing one answer.

The fixture holds CCRs (Gy sessions of I, U, U, U, T with two MSCCs, a retransmission with the T
flag, voice and SMS requests, an unknown subscriber, a CCR-U of an unknown session) and the CCAs
the server gave them when it was recorded. The server runs in-process on the demo catalog with a
fixed clock and a fresh Redis, so nothing in an answer varies between runs. To re-record after
a deliberate change of answers: ``OCS_RECORD_ANSWERS=1 pytest tests/ocs/test_recorded_answers.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from ocs.app import OcsApp
from ocs.config import (
    CatalogConfig,
    Config,
    DiameterConfig,
    HttpConfig,
    LogConfig,
    RedisConfig,
    SipConfig,
)
from ocs.diameter_server import DiameterConnection
from ocs.embedded_redis import EmbeddedRedis
from sim import messages as m
from sim.population import load_population

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"
FIXTURE = Path(__file__).parent / "fixtures" / "recorded_ccas.json"
NOW = 1_790_000_000.0  # a fixed clock: validity and expiry in answers depend on it
PEER = m.PeerIdentity("recorder-gw.sim.local", "sim.local")
REALM = "test.local"


class Transport:
    def __init__(self) -> None:
        self.buffer = b""

    def write(self, data: bytes) -> None:
        self.buffer += data

    def take(self) -> list[bytes]:
        out = []
        while len(self.buffer) >= 20:
            length = int.from_bytes(self.buffer[1:4], "big")
            if len(self.buffer) < length:
                break
            out.append(self.buffer[:length])
            self.buffer = self.buffer[length:]
        return out

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def recorded_requests() -> list[bytes]:
    """The CCRs, encoded by the simulator's encoder (ids fixed)."""
    subs = load_population(str(CATALOG), per_tenant_max=3)
    encoder = m.CcrEncoder(PEER, REALM)
    out: list[bytes] = []
    ident = 100

    def add(spec: m.CcrSpec) -> bytes:
        nonlocal ident
        ident += 1
        data = encoder.encode(spec, hop_by_hop=ident, end_to_end=ident)
        out.append(data)
        return data

    stages = [(1, 0, 0), (2, 10_000, 0), (2, 2_000_000, 0), (2, 10_000, None), (3, 5_000, None)]
    for number, sub in enumerate(subs):
        session = f"recorder-gw.sim.local;{number};1"
        for request_number, (kind, used, requested) in enumerate(stages):
            msccs = tuple(
                m.MsccRequest(rg, m.Unit.BYTES, requested=requested, used=used) for rg in (10, 20)
            )
            data = add(
                m.CcrSpec(session, kind, request_number, m.GY_CONTEXT, sub.msisdn, sub.imsi, msccs)
            )
            if number == 0 and request_number == 1:
                out.append(m.with_hop_by_hop(data, ident + 1000, retransmit=True))
        voice = (m.MsccRequest(None, m.Unit.SECONDS, requested=0),)
        add(
            m.CcrSpec(f"{session};voice", 1, 0, m.MMTEL_CONTEXT, sub.msisdn, sub.imsi, voice,
                      called="4915112345678")
        )  # fmt: skip
        sms = (m.MsccRequest(None, m.Unit.EVENTS, requested=1),)
        add(
            m.CcrSpec(f"{session};sms", 4, 0, m.SMS_CONTEXT, sub.msisdn, sub.imsi, sms,
                      sms_recipient="4915112345678")
        )  # fmt: skip
    gy = (m.MsccRequest(10, m.Unit.BYTES, requested=0),)
    add(m.CcrSpec("recorder;unknown-sub", 1, 0, m.GY_CONTEXT, "999000000", None, gy))
    add(m.CcrSpec("recorder;no-session", 2, 1, m.GY_CONTEXT, subs[0].msisdn, subs[0].imsi, gy))
    return out


async def replay(redis_url: str, workdir: Path, requests: list[bytes]) -> list[bytes]:
    config = Config(
        diameter=DiameterConfig(listen_port=0, origin_host="ocs.test.local", origin_realm=REALM),
        http=HttpConfig(listen_port=0),
        redis=RedisConfig(url=redis_url, data_dir=str(workdir / "data")),
        sip=SipConfig(enabled=False),
        catalog=CatalogConfig(path=str(CATALOG)),
        log=LogConfig(level="error"),
    )
    app = OcsApp(config, clock=lambda: NOW)
    await app.start()
    try:
        assert app.diameter is not None
        connection = DiameterConnection(app.diameter)
        transport = Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(m.cer(PEER, hop_by_hop=1, end_to_end=1))
        await _wait(transport, 1)
        transport.take()
        answers: list[bytes] = []
        for request in requests:
            connection.data_received(request)
            answers += await _wait(transport, 1)
        return answers
    finally:
        await app.stop()


async def _wait(transport: Transport, count: int) -> list[bytes]:
    for _ in range(30_000):  # up to ~30 s on a loaded machine
        if len(_peek(transport)) >= count:
            return transport.take()
        await asyncio.sleep(0.001)
    raise AssertionError(f"no answer (have {len(_peek(transport))})")


def _peek(transport: Transport) -> list[bytes]:
    saved = transport.buffer
    taken = transport.take()
    transport.buffer = saved
    return taken


def test_recorded_ccrs_get_byte_identical_answers(tmp_path: Path) -> None:
    requests = recorded_requests()
    with EmbeddedRedis(tmp_path / "redis") as redis_server:
        answers = asyncio.run(replay(redis_server.url, tmp_path, requests))
    if os.environ.get("OCS_RECORD_ANSWERS"):
        FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        pairs = [{"ccr": q.hex(), "cca": a.hex()} for q, a in zip(requests, answers, strict=True)]
        FIXTURE.write_text(json.dumps(pairs, indent=0) + "\n", encoding="utf-8")
    recorded = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert [bytes.fromhex(p["ccr"]) for p in recorded] == requests
    for number, (pair, answer) in enumerate(zip(recorded, answers, strict=True)):
        assert answer.hex() == pair["cca"], f"answer {number} changed"
    # The recording exercises more than one outcome (grants, 5030, 5002, a retransmission).
    codes = {m.summarize_answer(a).result_code for a in answers}
    assert {2001, 5030, 5002} <= codes, codes

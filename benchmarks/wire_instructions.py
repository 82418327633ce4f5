"""Instructions per CCR of the Diameter wire side alone, sans-IO, counted by callgrind.

The wire side of one CCR as the server runs it, without the event loop, the ledger or the
handler's rating: ``PeerConnection.receive_data`` (framing, the checking decoder, destination
and duplicate checks), ``parse_ccr`` (with the handler's memo), ``ccr_digest``, the CCA
(``CreditControlAnswer`` with the failure handling the handler adds, ``build_cca`` with its
MSCC cache) and ``send_answer`` (encoding). The CCR-Us are a gateway's: Gy, two MSCCs (RSU and
USU), many sessions and subscribers, each request different (ids, numbers, used octets).

Counted by difference: the workload runs under callgrind for N and 3N requests, and again
only building its requests; per CCR = ((I(3N) - I(N)) - (build(3N) - build(N))) / 2N, so
start-up and imports cancel out. Steps add up: ``peer`` (receive and answer with a one-AVP
answer), ``+parse``, ``+fingerprint``, ``+answer`` (the real CCA instead). Instruction counts
do not depend on the machine's load; the figures are exact to a few hundred instructions.

    .venv/bin/python -m benchmarks.wire_instructions [--ccrs 1000] [--before PATH]

``--before PATH`` counts the same workload on another checkout too (e.g. a worktree of the
commit before a change): its packages are imported from there, this file's workload runs.

Writes ``benchmarks/results/wire.json`` (keeps a ``history`` of earlier runs). Not a ``bench_*``
module: it needs valgrind and has no smoke mode, so ``benchmarks.run_all`` does not run it
(as it runs bench_instructions only in its full mode).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).parent / "results" / "wire.json"
STEPS = ("peer", "parse", "fingerprint", "answer")
HOST, REALM = "ocs.bench.local", "bench.local"


def workload(count: int, steps: int) -> None:
    """Build ``count`` CCR-Us (plus warm-up), then, if ``steps``, run the first ``steps`` of
    STEPS over them (0: build only)."""
    import msgspec

    from diameter_apps.avp import Avp
    from diameter_apps.codes import VENDOR_3GPP, AvpCode, CommandCode
    from diameter_apps.credit_control.answer import (
        CreditControlAnswer,
        GrantedUnits,
        MsccAvpCache,
        ServiceAnswer,
        build_cca,
    )
    from diameter_apps.credit_control.codes import CreditControlFailureHandling
    from diameter_apps.credit_control.fingerprint import ccr_digest
    from diameter_apps.credit_control.parse import SubscriptionMemo, parse_ccr
    from diameter_apps.duplicates import DuplicateCache
    from diameter_apps.events import RequestReceived
    from diameter_apps.message import Message
    from diameter_apps.peer import PeerConnection, PeerSettings
    from diameter_apps.router import Router
    from diameter_apps.validation import Profile
    from sim import messages as m

    peer_id = m.PeerIdentity("pgw.sim.local", "sim.local")
    encoder = m.CcrEncoder(peer_id, REALM)
    warmup = 500
    frames = []
    for i in range(count + warmup):
        msccs = tuple(
            m.MsccRequest(rg, m.Unit.BYTES, requested=0, used=10_000 + i) for rg in (10, 20)
        )
        spec = m.CcrSpec(
            f"pgw.sim.local;{i};1", 2, 1 + i % 3, m.GY_CONTEXT,
            f"49170990{i % 1000:05d}", f"2620199{i % 1000:08d}", msccs,
        )  # fmt: skip
        frames.append(encoder.encode(spec, hop_by_hop=1000 + i, end_to_end=1000 + i))
    if not steps:
        return
    now = 1000.0
    router = Router()
    router.register(
        4, CommandCode.CREDIT_CONTROL, lambda event: event.message, vendor_id=VENDOR_3GPP
    )
    settings = PeerSettings(origin_host=HOST, origin_realm=REALM, host_ip_addresses=("192.0.2.1",))
    peer = PeerConnection(settings, router, DuplicateCache(), now)
    peer.receive_data(m.cer(peer_id, hop_by_hop=1, end_to_end=1), now)
    peer.data_to_send()
    memo = SubscriptionMemo()
    cache = MsccAvpCache()
    services = tuple(
        ServiceAnswer(
            rating_group=rg, granted=GrantedUnits(total_octets=1_000_000), validity_time_s=3600
        )
        for rg in (10, 20)
    )
    plain = [Avp.u32(int(AvpCode.RESULT_CODE), 2001)]
    retry = CreditControlFailureHandling.RETRY_AND_TERMINATE
    answered = 0
    for frame in frames:
        for event in peer.receive_data(frame, now):
            if not isinstance(event, RequestReceived):
                continue
            ccr = parse_ccr(event.message, Profile.LENIENT, memo) if steps > 1 else None
            if steps > 2:
                ccr_digest(event.message)
            if ccr is not None and steps > 3:
                answer = msgspec.structs.replace(
                    CreditControlAnswer(services=services),
                    credit_control_failure_handling=retry,
                    direct_debiting_failure_handling=None,
                )
                cca = build_cca(ccr, answer, origin_host=HOST, origin_realm=REALM, mscc_avps=cache)
            else:
                cca = Message(272, 4, avps=list(plain))
            peer.send_answer(event, cca, now)
        answered += len(peer.data_to_send()) > 0
    if answered != len(frames):
        raise RuntimeError(f"{len(frames) - answered} requests were not answered")


def instructions(tree: Path, count: int, steps: int) -> int:
    with tempfile.TemporaryDirectory(prefix="wire-instructions-") as tmp:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, str(Path(__file__).resolve()), "--work", str(count), str(steps)],
            cwd=tree, env={**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError(f"no callgrind total: {run.stderr[-2000:]}")
    return int(found.group(1))


def measure(tree: Path, count: int) -> dict[str, int]:
    def span(steps: int) -> int:
        return instructions(tree, 3 * count, steps) - instructions(tree, count, steps)

    build = span(0)
    cumulative = {name: (span(k) - build) // (2 * count) for k, name in enumerate(STEPS, 1)}
    return {
        "peer": cumulative["peer"],
        "parse": cumulative["parse"] - cumulative["peer"],
        "fingerprint": cumulative["fingerprint"] - cumulative["parse"],
        "answer": cumulative["answer"] - cumulative["fingerprint"],
        "total": cumulative["answer"],
    }


def _commit(tree: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ccrs", type=int, default=1000, help="N (the runs do N and 3N)")
    parser.add_argument("--work", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--before", type=Path, help="another checkout to count as well")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = parser.parse_args(argv)
    if args.work:
        workload(*args.work)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind (callgrind) is not installed", file=sys.stderr)
        return 2
    figures = measure(ROOT, args.ccrs)
    print(f"instructions per CCR on the wire side: {figures}", flush=True)
    before = None
    if args.before is not None:
        before = measure(args.before.resolve(), args.ccrs)
        print(f"... and on {args.before}: {before}", flush=True)
    history: list[Any] = []
    if args.out.exists():
        previous = json.loads(args.out.read_text(encoding="utf-8"))
        history = previous.pop("history", [])
        history.append(previous)
    commit = _commit(ROOT)
    result = {
        "command": "python -m benchmarks.wire_instructions " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit,
        "python": sys.version.split()[0],
        "ccrs": args.ccrs,
        "mix": "Gy CCR-U, two MSCCs (RSU + USU), 1000 subscribers, every request different",
        "instructions_per_ccr": figures,
        "before": None
        if before is None or args.before is None
        else {"tree": str(args.before), "commit": _commit(args.before), "per_ccr": before},
        "history": history,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

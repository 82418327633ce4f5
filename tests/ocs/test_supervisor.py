"""``ocs up``'s children: backoff on repeated crashes, restart, and a stop that ends them all."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ocs.logging_setup import make_logger
from ocs.supervisor import ChildSpec, RestartPolicy, Supervisor


def test_restart_backoff_doubles_while_dying_young_and_resets_after_a_stable_run() -> None:
    policy = RestartPolicy(first_s=0.5, max_s=4.0, stable_s=60.0)
    assert [policy.delay_after_exit(1.0) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.delay_after_exit(120.0) == 0.5


async def test_a_crashed_child_is_restarted_and_stop_ends_every_child(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    crasher = ChildSpec(
        "crasher",
        (sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"),  # exits at once
    )
    sleeper = ChildSpec("sleeper", (sys.executable, "-c", "import time; time.sleep(600)"))
    supervisor = Supervisor([crasher, sleeper], make_logger("error"), stop_grace_s=5.0)
    task = asyncio.create_task(supervisor.run())
    for _ in range(600):
        if marker.exists() and len(marker.read_text()) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(marker.read_text()) >= 2 and supervisor.restarts["crasher"] >= 1
    supervisor.stop_event.set()
    await asyncio.wait_for(task, 30)
    assert all(p.returncode is not None for p in supervisor.processes.values())
    assert supervisor.restarts["sleeper"] == 0

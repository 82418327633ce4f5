"""The exporter process's own settings: a lower CPU priority than charging (nice, SCHED_IDLE,
its local PostgreSQL backends reniced), checked config."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from ocs.config import ConfigError, load_config
from ocs.exporter import local_store_host, renice_backend


def test_tune_process_lowers_the_cpu_priority_by_nice() -> None:
    # In a child process: niceness only ever goes up, and gc.freeze is process-wide.
    code = (
        "import gc, os\n"
        "from ocs.exporter import GC_GEN0_OBJECTS, tune_process\n"
        "before = os.nice(0)\n"
        "tune_process(7)\n"
        "print(os.nice(0) - before, gc.get_threshold()[0] == GC_GEN0_OBJECTS)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    raised, thresholds = done.stdout.split()
    assert int(raised) == min(7, 19 - os.nice(0)) and thresholds == "True"


@pytest.mark.parametrize("nice", [-1, 20])
def test_nice_outside_0_to_19_is_refused(nice: int) -> None:
    with pytest.raises(ConfigError, match=r"export\.nice"):
        load_config(None, overrides={"export": {"nice": nice}})


def test_tune_process_runs_the_exporter_under_sched_idle() -> None:
    code = (
        "import contextlib, os\n"
        "from ocs.exporter import tune_process\n"
        "with contextlib.suppress(OSError):\n"
        "    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))\n"
        "before = os.sched_getscheduler(0)\n"
        "problems = tune_process(0, sched_idle=True)\n"
        "print(before, os.sched_getscheduler(0), len(problems))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, problems = (int(v) for v in done.stdout.split())
    if before != os.SCHED_OTHER:
        pytest.skip("the tests run under a policy this process cannot leave")
    assert (before, after, problems) == (os.SCHED_OTHER, os.SCHED_IDLE, 0)


def test_sched_idle_is_on_by_default_and_can_be_turned_off() -> None:
    # environ={}: the suite itself turns it off for the exporters it starts (tests/conftest.py).
    assert load_config(None, environ={}).export.sched_idle is True
    off = load_config(None, environ={}, overrides={"export": {"sched_idle": False}})
    assert off.export.sched_idle is False


def test_the_exporters_own_local_backend_is_reniced(store_url: str) -> None:
    with psycopg.connect(store_url) as conn:
        pid = conn.info.backend_pid
        assert local_store_host(conn.info.host)
        start = os.getpriority(os.PRIO_PROCESS, pid)
        assert renice_backend(pid, start + 3) is None
        assert os.getpriority(os.PRIO_PROCESS, pid) == start + 3
        assert renice_backend(pid, start) is None  # never back down: niceness only rises
        assert os.getpriority(os.PRIO_PROCESS, pid) == start + 3


def test_a_process_that_is_not_a_postgres_backend_is_left_alone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        before = os.getpriority(os.PRIO_PROCESS, child.pid)
        problem = renice_backend(child.pid, 15)
        assert problem is not None and "not a local PostgreSQL backend" in problem
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == before
    finally:
        child.kill()
        child.wait()
    assert not local_store_host("db.example.net") and local_store_host("/run/postgresql")


@pytest.mark.parametrize("nice", [-1, 20])
def test_store_backend_nice_outside_0_to_19_is_refused(nice: int) -> None:
    with pytest.raises(ConfigError, match=r"export\.store_backend_nice"):
        load_config(None, overrides={"export": {"store_backend_nice": nice}})

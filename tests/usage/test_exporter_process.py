"""The exporter process's own settings: a lower CPU priority than charging, checked config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ocs.config import ConfigError, load_config


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

"""The end-of-run check finds a process a test left behind (tests/leftovers.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.leftovers import leftover_processes, stop


def test_a_child_left_running_is_found_and_one_that_exited_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        found = leftover_processes(None, grace_seconds=0)
        assert child.pid in [p.pid for p in found]
        stop([p for p in found if p.pid == child.pid])
        child.wait(10)
        assert child.pid not in [p.pid for p in leftover_processes(None, grace_seconds=0)]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)

"""A process killed with SIGKILL stays listed as a user of the embedded PostgreSQL; the next
start forgets it, so a later clean stop stops the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from db.embedded import HANDLES, forget_dead_handles


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    return child.pid


def test_dead_users_are_forgotten_and_live_ones_kept(tmp_path: Path) -> None:
    dead = _dead_pid()
    (tmp_path / HANDLES).write_text(json.dumps([os.getpid(), dead]))
    assert forget_dead_handles(tmp_path) == [dead]
    assert json.loads((tmp_path / HANDLES).read_text()) == [os.getpid()]
    assert forget_dead_handles(tmp_path) == []


def test_no_list_yet_is_nothing_to_forget(tmp_path: Path) -> None:
    assert forget_dead_handles(tmp_path) == []
    assert not (tmp_path / HANDLES).exists()

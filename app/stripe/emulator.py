"""Run the ``localstripe`` Stripe emulator for the zero-configuration start and the tests.

We launch it through this module rather than its own ``localstripe`` script because that one
listens on every interface and pickles its whole store to a shared ``/tmp`` file on every write
(slow, and two emulators on one machine would overwrite each other's state). Here it listens on
loopback only and keeps its state in memory; with ``state`` (what ``billing serve`` passes: a
file in BILLING_HOME, next to the embedded PostgreSQL's data) it is loaded from that file at start
and written back at most twice a second after a change and once more at shutdown, atomically, so
a restart keeps the customers, payment methods and payment intents the database refers to.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["StripeEmulator", "free_port"]

EMULATOR_API_KEY = "sk_test_localstripe"  # the emulator accepts any key; this one says what it is


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class StripeEmulator:
    """A localstripe subprocess on a loopback port."""

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", state: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.state = state
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "app.stripe.emulator",
                "--host",
                self.host,
                "--port",
                str(self.port),
                *(["--state", str(self.state)] if self.state is not None else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"localstripe exited with code {self._process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return self.base_url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"localstripe did not listen on {self.base_url} within {timeout}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None


class _StateFile:
    """The emulator's store saved to ``path``: marked dirty on every write, saved by a
    background task at most every ``interval`` seconds and at shutdown, through a temporary
    file renamed over the old one (a crash mid-write leaves the previous state)."""

    def __init__(self, store: Any, path: Path, interval: float = 0.5) -> None:
        self.store, self.path, self.interval = store, path, interval
        self.dirty = False

    def load(self) -> None:
        if self.path.exists():
            with self.path.open("rb") as f:
                saved = pickle.load(f)  # noqa: S301 - our own file, in the service's home
            self.store.clear()
            self.store.update(saved)

    def mark(self) -> None:
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        partial = self.path.with_suffix(".partial")
        with partial.open("wb") as f:
            pickle.dump(dict(self.store), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, self.path)

    async def keep_saving(self, app: Any) -> Any:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.save()

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.save()


async def _exit_with_parent(app: Any) -> Any:
    """Stop when the process that started us is gone (killed with SIGKILL, it could not stop
    us): an orphaned emulator would hold its port and state for nobody."""
    parent = os.getppid()

    async def watch() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event tells a parent's death
            await asyncio.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # aiohttp's graceful exit: state saved first

    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main() -> None:
    parser = argparse.ArgumentParser(description="localstripe on loopback")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", type=Path, help="keep the state in this file across restarts")
    args = parser.parse_args()

    from aiohttp import web
    from localstripe import resources, server

    if args.state is None:
        resources.store.dump_to_disk = lambda: None  # keep state in memory only
    else:
        state = _StateFile(resources.store, args.state)
        state.load()
        resources.store.dump_to_disk = state.mark
        server.app.cleanup_ctx.append(state.keep_saving)
    server.app.cleanup_ctx.append(_exit_with_parent)
    web.run_app(server.app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

"""Real `billing serve` processes on the test database, and a graphql-transport-ws client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from app.core.settings import Settings
from app.stripe.emulator import free_port

__all__ = ["LiveClient", "Server", "serving"]


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/graphql"


def _start(settings: Settings, home: Path, extra: dict[str, str]) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "BILLING_ENV": "test",
        "BILLING_HOME": str(home),
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_API_KEY": settings.stripe_api_key or "",
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "JWT_SECRET": settings.jwt_secret or "",
        "RATE_LIMIT_RESTORE_RATE": "0",
        "RATE_LIMIT_ANONYMOUS_RESTORE_RATE": "0",
        "LOG_LEVEL": "warning",
        **extra,
    }
    log = home / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


@contextlib.contextmanager
def serving(settings: Settings, home: Path, *extras: dict[str, str]) -> Iterator[list[Server]]:
    """One `billing serve --no-migrate` per ``extras`` entry (its extra environment), sharing
    the test database and Stripe emulator; ready when entered, killed on exit."""
    servers = [_start(settings, home, extra) for extra in extras]
    try:
        deadline = time.monotonic() + 60
        for server in servers:
            while True:
                if server.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"billing serve did not start:\n{server.log.read_text()}")
                try:
                    if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        yield servers
    finally:
        for server in servers:
            server.process.kill()
            server.process.wait(10)


class LiveClient:
    """A graphql-transport-ws client: messages are sorted into one queue per operation id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, token: str) -> AsyncIterator[LiveClient]:
        async with websockets.connect(
            url,
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            max_size=None,
        ) as ws:
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
            await ws.send(json.dumps(init))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert ack["type"] == "connection_ack", ack
            client = cls(ws)
            try:
                yield client
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await client._reader

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                message = json.loads(raw)
                if message["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif "id" in message:
                    await self.queue(message["id"]).put(message)

    def queue(self, op: str) -> asyncio.Queue[dict[str, Any]]:
        return self._queues.setdefault(op, asyncio.Queue())

    async def subscribe(self, op: str, query: str, variables: dict[str, Any] | None = None) -> None:
        payload = {"query": query, "variables": variables or {}}
        await self.ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))

    async def complete(self, op: str) -> None:
        await self.ws.send(json.dumps({"id": op, "type": "complete"}))

    async def message(self, op: str, seconds: float = 15) -> dict[str, Any]:
        """The operation's next message of any type (next, error, complete)."""
        return await asyncio.wait_for(self.queue(op).get(), seconds)

    async def data(self, op: str, seconds: float = 15) -> dict[str, Any]:
        """The ``data`` of the operation's next message, which must be an error-free next."""
        message = await self.message(op, seconds)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def until(
        self, op: str, accept: Callable[[dict[str, Any]], bool], seconds: float = 20
    ) -> dict[str, Any]:
        """The data of the first message ``accept`` takes (earlier ones are skipped)."""
        deadline = time.monotonic() + seconds
        while True:
            data = await self.data(op, max(0.01, deadline - time.monotonic()))
            if accept(data):
                return data

    async def nothing(self, op: str, seconds: float) -> None:
        """Assert that no message for ``op`` arrives within ``seconds``."""
        with contextlib.suppress(TimeoutError):
            message = await asyncio.wait_for(self.queue(op).get(), seconds)
            pytest.fail(f"unexpected message for {op}: {message}")

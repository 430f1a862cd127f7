"""The app served by uvicorn on a loopback port inside the test's event loop (for WebSocket
tests that need a real server but not a separate process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
import websockets

from app.core.settings import Settings
from app.stripe.emulator import free_port
from app.web.app import create_app

__all__ = ["connect", "served", "subscribe"]


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """Serve ``create_app(settings)`` on 127.0.0.1; yields the base URL (``http://…``)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(300):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        if not server.started:
            raise RuntimeError("the test server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def connect(base_url: str, token: str | None) -> AsyncIterator[Any]:
    """A graphql-transport-ws connection, initialised with ``token`` (acknowledged or not:
    the caller reads what came back)."""
    url = "ws" + base_url.removeprefix("http") + "/graphql"
    async with websockets.connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    ) as ws:
        payload = {"authorization": f"Bearer {token}"} if token else {}
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        yield ws


async def subscribe(ws: Any, op: str, query: str, variables: dict[str, Any] | None = None) -> None:
    payload = {"query": query, "variables": variables or {}}
    await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": payload}))

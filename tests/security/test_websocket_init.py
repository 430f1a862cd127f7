"""A WebSocket that never sends connection_init is closed after WS_INIT_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import websockets

from app.core.settings import Settings
from app.stripe.emulator import free_port


def spawn(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )


async def test_silent_websocket_is_closed_after_the_init_timeout(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = dict(os.environ)
    env.update(
        BILLING_HOME=str(tmp_path),
        DATABASE_URL=settings.database_url or "",
        STRIPE_API_KEY=settings.stripe_api_key or "",
        STRIPE_API_BASE=settings.stripe_api_base or "",
        JWT_SECRET=settings.jwt_secret or "",
        WS_INIT_TIMEOUT_SECONDS="1",
    )
    server = spawn(port, env, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as ws:
            started = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            waited = time.monotonic() - started
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4408  # graphql-transport-ws: init timeout
        assert waited < 5
    finally:
        server.terminate()
        await asyncio.to_thread(server.wait, 30)

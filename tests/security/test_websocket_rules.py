"""A WebSocket is held to the same rules as HTTP: the token's expiry, the rate-limit budget, the
body size limit and strict JSON, plus a cap on connections per token across processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
import websockets

from app.core.settings import Settings
from tests.support import token
from tests.web_support import connect, served, subscribe

FIFTY = "{ " + " ".join(f"a{i}: serviceInfo {{ name }}" for i in range(25)) + " }"  # costs 50


async def receive(ws: Any, seconds: float = 10) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), seconds))
    return message


async def closed_with(ws: Any, seconds: float = 10) -> tuple[int, str]:
    """Read until the server closes the socket; its close code and reason."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), seconds)
    except websockets.ConnectionClosed as closed:
        received = closed.rcvd
    assert received is not None, "closed without a close frame"
    return received.code, received.reason


async def acknowledged(ws: Any) -> None:
    assert (await receive(ws))["type"] == "connection_ack"


async def test_an_expired_token_closes_the_socket_and_runs_nothing_more(
    settings: Settings, org: str
) -> None:
    async with served(settings) as url:
        bearer = token(settings, org, ttl=2)
        async with connect(url, bearer) as ws:
            await acknowledged(ws)
            await subscribe(ws, "1", "{ serviceInfo { name } }")
            assert (await receive(ws))["type"] == "next"
            assert (await receive(ws))["type"] == "complete"
            code, reason = await closed_with(ws, seconds=15)
            assert code == 4401
            assert reason == "Token expired: reconnect with a new token."
        # A token already expired at connection_init is refused outright.
        async with connect(url, token(settings, org, ttl=-10)) as ws:
            assert (await closed_with(ws))[0] == 4403


async def test_websocket_operations_draw_on_the_tokens_budget(settings: Settings, org: str) -> None:
    limited = settings.with_overrides(
        rate_limit_points=200, rate_limit_restore_rate=1, graphql_max_cost=200
    )
    bearer = token(settings, org)
    async with served(limited) as url, connect(url, bearer) as ws:
        await acknowledged(ws)
        outcomes = []
        for op in range(5):
            await subscribe(ws, str(op), FIFTY)
            message = await receive(ws)
            if message["type"] == "next":
                assert (await receive(ws))["type"] == "complete"
                payload = message["payload"]
                outcomes.append([e["extensions"]["code"] for e in payload.get("errors", [])])
            else:
                outcomes.append([e["extensions"]["code"] for e in message["payload"]])
        assert outcomes == [[]] * 4 + [["THROTTLED"]]
        # The same bucket serves HTTP: the budget is the token's, not the connection's.
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{url}/graphql",
                json={"query": FIFTY},
                headers={"authorization": f"Bearer {bearer}"},
            )
        assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["THROTTLED"]


async def test_a_message_larger_than_the_body_limit_closes_with_1009(
    settings: Settings, org: str
) -> None:
    small = settings.with_overrides(max_body_bytes=4096)
    async with served(small) as url, connect(url, token(settings, org)) as ws:
        await acknowledged(ws)
        padding = "x" * 5000
        await subscribe(ws, "1", "{ serviceInfo { name } }", {"padding": padding})
        code, reason = await closed_with(ws)
    assert code == 1009
    assert reason == "Message exceeds 4096 bytes (MAX_BODY_BYTES)."


@pytest.mark.parametrize(
    "message",
    [
        '"hello"',
        "null",
        "[1, 2]",
        '{"type": "ping", "payload": {"text": "\\u0000"}}',
        '{"type": "ping", "payload": {"text": "\\ud800"}}',
        "[" * 10_000 + "]" * 10_000,
        '{"type": "subscribe", "id": "1", "payload": "query"}',
        '{"type": "subscribe", "id": 1, "payload": {"query": "{ serviceInfo { name } }"}}',
        '{"type": "subscribe", "id": "1", "payload": {"query": 5}}',
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ a }", "variables": []}}',
        '{"type": 7}',
    ],
    ids=[
        "string",
        "null",
        "array",
        "nul",
        "lone-surrogate",
        "deep",
        "payload-not-object",
        "id-not-string",
        "query-not-string",
        "variables-not-object",
        "type-not-string",
    ],
)
async def test_malformed_messages_close_with_4400(
    settings: Settings, org: str, message: str
) -> None:
    async with served(settings) as url, connect(url, token(settings, org)) as ws:
        await acknowledged(ws)
        await ws.send(message)
        code, _ = await closed_with(ws)
    assert code == 4400


async def test_connections_per_token_are_capped_across_processes(
    settings: Settings, org: str
) -> None:
    capped = settings.with_overrides(ws_max_connections_per_token=2)
    bearer = token(settings, org)
    async with served(capped) as first, served(capped) as second:
        async with contextlib.AsyncExitStack() as stack:
            one = await stack.enter_async_context(connect(first, bearer))
            await acknowledged(one)
            two = await stack.enter_async_context(connect(second, bearer))
            await acknowledged(two)
            async with connect(first, bearer) as three:
                code, reason = await closed_with(three)
            assert code == 4429
            assert reason == (
                "This token already holds 2 open connections (WS_MAX_CONNECTIONS_PER_TOKEN=2); "
                "close one first."
            )
            # Another token of the organization is not affected.
            async with connect(second, token(settings, org, "admin", sub="other")) as other:
                await acknowledged(other)
        # Closing frees the slots (released as each server notices the close).
        for _ in range(50):
            async with connect(second, bearer) as again:
                if (await receive(again))["type"] == "connection_ack":
                    break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the closed connections' slots were not released")

"""A revenue snapshot shared by many subscribers is executed and encoded once per document,
and every subscriber still receives exactly what graphql-core would have produced alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.web.strawberry_internals import encoded_data, next_message_text
from schema.live import shared_event_results
from tests.support import token
from tests.web_support import connect, served, subscribe

REVENUE = "subscription { revenue { at currencies { currency mrr { amount } } } }"


def test_next_messages_splice_the_shared_data_text_exactly() -> None:
    data: dict[str, Any] = {"revenue": {"at": "2026-01-01T00:00:00+00:00", "n": [1, 2]}}
    plain = {"id": "a", "type": "next", "payload": {"data": data}}
    extended = {"id": 'b"x', "type": "next", "payload": {"data": data, "extensions": {"c": 1}}}
    before = encoded_data.hits
    for message in (plain, extended):
        text = next_message_text(message)
        assert text is not None
        assert json.loads(text) == message
    assert encoded_data.hits == before + 1
    assert next_message_text({"id": "a", "type": "complete"}) is None
    assert next_message_text({"id": "a", "type": "next", "payload": {"data": None}}) is None


@pytest.mark.parametrize("subscribers", [6])
async def test_subscribers_of_one_organization_share_one_execution(
    settings: Any, org: str, subscribers: int, payment_factory: Any
) -> None:
    bearer = token(settings, org, "admin")
    async with served(settings) as base_url:
        sockets = []
        try:
            for _ in range(subscribers):
                socket = connect(base_url, bearer)
                sockets.append(socket)
            opened = [await s.__aenter__() for s in sockets]
            for ws in opened:
                assert json.loads(await ws.recv())["type"] == "connection_ack"
            for ws in opened:
                await subscribe(ws, "1", REVENUE)
            firsts = [json.loads(await ws.recv()) for ws in opened]
            # Every subscriber now waits for the next change: one snapshot answers them all.
            hits_before = shared_event_results.hits
            encoded_before = encoded_data.hits
            await payment_factory(confirm=True)
            seconds = [await _until_revenue(ws) for ws in opened]
        finally:
            for socket in reversed(sockets):
                await socket.__aexit__(None, None, None)
    assert all(f["type"] == "next" for f in firsts)
    assert all(f["payload"]["data"]["revenue"]["currencies"] == [] for f in firsts)
    payloads = [s["payload"] for s in seconds]
    assert all(p == payloads[0] for p in payloads)
    currencies = payloads[0]["data"]["revenue"]["currencies"]
    assert [(c["currency"], c["mrr"]["amount"]) for c in currencies] == [("USD", "0")]
    # One execution and one encoding answered the other subscribers (the payment's creation
    # and its success may each have led to a snapshot: at least one was shared by all).
    shared = shared_event_results.hits - hits_before
    assert shared >= subscribers - 1
    assert encoded_data.hits - encoded_before >= shared


async def _until_revenue(ws: Any) -> dict[str, Any]:
    """The first message showing revenue (earlier ones may show the payment not yet paid)."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message["type"] != "next" or message["payload"]["data"]["revenue"]["currencies"]:
            return message

"""POST /webhooks/stripe: verified, applied once whatever the order or number of deliveries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.web.app import create_app
from tests.conftest import running
from tests.support import GraphQLClient, token

SECRET = "whsec_test_" + "w" * 24
PAYMENT = "query($id: ID!) { payment(id: $id) { id status stripePaymentIntentId } }"


def signed(
    event: dict[str, Any], *, secret: str = SECRET, at: int | None = None
) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={mac}"


def intent_event(kind: str, intent: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"evt_{uuid.uuid4().hex}", "type": kind, "data": {"object": intent}}


@pytest.fixture
async def hooked(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in running(create_app(settings.with_overrides(stripe_webhook_secret=SECRET))):
        yield client


async def post(http: httpx.AsyncClient, event: dict[str, Any], **sign: Any) -> httpx.Response:
    body, header = signed(event, **sign)
    return await http.post(
        "/webhooks/stripe",
        content=body,
        headers={"stripe-signature": header, "content-type": "application/json"},
    )


async def confirmed_at_stripe_only(
    settings: Settings, payment_factory: Callable[..., Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A payment our database has not seen succeed, confirmed at Stripe as Stripe.js would."""
    payment = await payment_factory()
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "") as stripe_api:
        response = await stripe_api.post(
            f"/v1/payment_intents/{payment['stripePaymentIntentId']}/confirm",
            headers={"authorization": f"Bearer {settings.stripe_api_key}"},
        )
    assert response.status_code == 200, response.text
    intent: dict[str, Any] = response.json()
    assert intent["status"] == "succeeded"
    return payment, intent


async def test_a_verified_event_is_applied_once(
    hooked: httpx.AsyncClient,
    settings: Settings,
    org: str,
    payment_factory: Callable[..., Any],
    app_services: Any,
) -> None:
    payment, intent = await confirmed_at_stripe_only(settings, payment_factory)
    client = GraphQLClient(hooked, token(settings, org))
    before = (await client.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert before["status"] != "SUCCEEDED"

    event = intent_event("payment_intent.succeeded", intent)
    broker = hooked._transport.app.state.services.events  # type: ignore[attr-defined]
    async with broker.subscribe() as queue:
        responses = await asyncio.gather(*(post(hooked, event) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        assert sum(r.json()["applied"] for r in responses) == 1
        after = (await client.data(PAYMENT, {"id": payment["id"]}))["payment"]
        assert after["status"] == "SUCCEEDED"
        await asyncio.sleep(0.3)
        published = []
        while not queue.empty():
            published.append(queue.get_nowait())
    mine = [e for e in published if e.id == payment["id"]]
    assert len(mine) == 1  # one state change, one live event, however many deliveries

    again = await post(hooked, event)
    assert again.json() == {"id": event["id"], "applied": False, "detail": "already applied"}


async def test_out_of_order_events_converge_to_stripe_state(
    hooked: httpx.AsyncClient, settings: Settings, org: str, payment_factory: Callable[..., Any]
) -> None:
    payment, intent = await confirmed_at_stripe_only(settings, payment_factory)
    stale = dict(intent, status="requires_confirmation")
    await post(hooked, intent_event("payment_intent.succeeded", intent))
    late = await post(hooked, intent_event("payment_intent.payment_failed", stale))
    assert late.status_code == 200
    client = GraphQLClient(hooked, token(settings, org))
    assert (await client.data(PAYMENT, {"id": payment["id"]}))["payment"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("sign", "header"),
    [
        ({"secret": "whsec_wrong_" + "x" * 20}, None),
        ({"at": int(time.time()) - 3600}, None),
        ({}, "t=1,v1=deadbeef"),
        ({}, ""),
    ],
)
async def test_bad_signatures_are_refused(
    hooked: httpx.AsyncClient, sign: dict[str, Any], header: str | None
) -> None:
    event = intent_event("payment_intent.succeeded", {"id": "pi_x", "metadata": {}})
    body, good = signed(event, **sign)
    response = await hooked.post(
        "/webhooks/stripe",
        content=body,
        headers={"stripe-signature": good if header is None else header},
    )
    assert response.status_code == 400


async def test_foreign_and_unknown_events_are_acknowledged_without_effect(
    hooked: httpx.AsyncClient,
) -> None:
    unknown = intent_event("customer.created", {"id": "cus_x", "metadata": {}})
    assert (await post(hooked, unknown)).json()["applied"] is False
    foreign = intent_event(
        "payment_intent.succeeded",
        {
            "id": "pi_x",
            "metadata": {"billing_organization": "nobody", "billing_payment_id": "pay_x"},
        },
    )
    response = await post(hooked, foreign)
    assert (response.status_code, response.json()["applied"]) == (200, False)


async def test_unconfigured_secret_is_503(http: httpx.AsyncClient) -> None:
    response = await http.post("/webhooks/stripe", content=b"{}")
    assert response.status_code == 503

"""Outgoing webhooks end to end, in process: endpoints through the API, events written in the
transaction of each change, signed deliveries to a receiver on loopback that verifies every
signature, retries, rotation, SSRF refusal in production, auto-disable, redelivery, the event
log, replay of failed Stripe events and reconciliation with Stripe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.errors import ValidationFailed
from app.outgoing_webhooks import (
    DeliveryPolicy,
    EndpointDraft,
    WebhookEndpoints,
    WebhookSender,
    emit,
)
from tests.support import GraphQLClient, new_org, token
from tests.webhook_receiver import Receiver, receiving

ENDPOINT_CREATE = """
mutation($input: WebhookEndpointCreateInput!) {
  webhookEndpointCreate(input: $input) {
    endpoint { id url eventTypes enabled }
    secret
    errors { field message code }
  }
}
"""
ROTATE = """
mutation($input: WebhookEndpointRotateSecretInput!) {
  webhookEndpointRotateSecret(input: $input) {
    endpoint { id previousSecretExpiresAt } secret errors { code }
  }
}
"""
DELIVERIES = """
query($id: ID, $status: WebhookDeliveryStatus) {
  webhookDeliveries(endpointId: $id, status: $status, orderBy: OLDEST_FIRST) {
    totalCount
    edges { node { id eventId eventType status attempts lastStatusCode
                   log { attempt statusCode error } } }
  }
}
"""
PAYMENT = """
query($id: ID!) {
  payment(id: $id) {
    id customerId status captureMethod description orderId metadata paymentMethodId
    stripePaymentIntentId amount { amount currency decimal }
    amountCaptured { amount currency decimal } amountRefunded { amount currency decimal }
    failureCode createdAt updatedAt
  }
}
"""

FAST = DeliveryPolicy(
    retry_base=timedelta(milliseconds=20),
    retry_cap=timedelta(milliseconds=100),
    lease=timedelta(seconds=30),
    timeout_seconds=5,
)


@pytest.fixture
async def sender(app_services: Any) -> AsyncIterator[WebhookSender]:
    made = WebhookSender(app_services.db, production=False, policy=FAST)
    yield made
    await made.close()


async def endpoint(
    admin: GraphQLClient, url: str, types: list[str] | None = None
) -> tuple[str, str]:
    body = await admin.data(
        ENDPOINT_CREATE,
        {"input": {"url": url, "eventTypes": types or ["PAYMENT_SUCCEEDED"]}},
    )
    made = body["webhookEndpointCreate"]
    assert made["errors"] == [], made["errors"]
    return made["endpoint"]["id"], made["secret"]


async def drain(sender: WebhookSender, org: str, rounds: int = 200) -> None:
    """Run delivery rounds for ``org`` until nothing is due (retries included)."""
    import asyncio

    idle = 0
    for _ in range(rounds):
        if await sender.deliver_due(org=org) == 0:
            idle += 1
            if idle > 10:
                return
            await asyncio.sleep(0.05)
        else:
            idle = 0


async def test_a_payment_reaches_the_endpoint_signed_with_the_api_shape(
    admin: GraphQLClient,
    org: str,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver()) as receiver:
        _, secret = await endpoint(admin, receiver.url)
        receiver.secrets.append(secret)
        payment = await payment_factory(confirm=True)
        await drain(sender, org)
        assert receiver.unverified == []
        assert len(receiver.accepted_ids()) == 1
        (got,) = [r for r in receiver.requests if r.verified_with]
        envelope = got.envelope
        assert got.event_id == envelope["id"]
        assert envelope["type"] == "payment.succeeded" == got.event_type
        assert envelope["organization"] == org
        assert set(envelope) == {"id", "type", "apiVersion", "created", "organization", "data"}
        shown = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
        sent = envelope["data"]["object"]
        assert sent["__typename"] == "Payment"
        # Every field the API shows, the event shows the same way (the event is written in the
        # transaction of the change, so updatedAt is the same moment).
        for name, value in shown.items():
            assert sent[name] == value, name


async def test_nothing_is_published_for_a_rolled_back_change(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    sender: WebhookSender,
    invoice_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver()) as receiver:
        _, secret = await endpoint(admin, receiver.url, ["INVOICE_FINALIZED"])
        receiver.secrets.append(secret)
        rolled_back = await invoice_factory()
        kept = await invoice_factory()

        class Abort(Exception):
            pass

        async def finalize_then_fail() -> None:
            async with app_services.db.transaction():
                await app_services.invoices.finalize(org, rolled_back["id"])
                raise Abort

        with pytest.raises(Abort):
            await finalize_then_fail()
        await app_services.invoices.finalize(org, kept["id"])
        await drain(sender, org)
        sent = [r.envelope["data"]["object"]["id"] for r in receiver.requests]
        assert sent == [kept["id"]]
        count = await app_services.db.fetch_val(
            "SELECT count(*) FROM webhook_events WHERE organization_id = :org AND object_id = :id",
            {"org": org, "id": rolled_back["id"]},
        )
        assert count == 0


async def test_three_failures_then_one_delivery_each_logged(
    admin: GraphQLClient,
    org: str,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver(fail_first=3)) as receiver:
        endpoint_id, secret = await endpoint(admin, receiver.url)
        receiver.secrets.append(secret)
        await payment_factory(confirm=True)
        await drain(sender, org)
        assert receiver.answered == {500: 3, 200: 1}
        assert len(receiver.accepted_ids()) == 1
        # the same bytes every time: one event, one id
        assert len({(r.event_id, r.body) for r in receiver.requests}) == 1
    listed = (await admin.data(DELIVERIES, {"id": endpoint_id}))["webhookDeliveries"]
    (node,) = [e["node"] for e in listed["edges"]]
    assert node["status"] == "SUCCEEDED"
    assert node["attempts"] == 4
    assert [(a["attempt"], a["statusCode"]) for a in node["log"]] == [
        (1, 500),
        (2, 500),
        (3, 500),
        (4, 200),
    ]
    assert [a["error"] for a in node["log"]] == ["HTTP 500"] * 3 + [None]


async def test_rotation_keeps_every_delivery_verifiable(
    admin: GraphQLClient,
    org: str,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver()) as old_side, receiving(Receiver()) as new_side:
        # two receivers behind one URL would be the real case; here the same delivery is
        # checked against each secret: the endpoint points at old_side, which knows both
        endpoint_id, old = await endpoint(admin, old_side.url)
        old_side.secrets.append(old)
        await payment_factory(confirm=True)
        await drain(sender, org)
        rotated = (
            await admin.data(ROTATE, {"input": {"endpointId": endpoint_id, "graceHours": 24}})
        )["webhookEndpointRotateSecret"]
        assert rotated["errors"] == []
        new = rotated["secret"]
        assert new != old
        assert rotated["endpoint"]["previousSecretExpiresAt"] is not None
        old_side.secrets.append(new)
        await payment_factory(confirm=True)
        await drain(sender, org)
        first, second = old_side.requests
        assert first.verified_with == [old]
        assert second.verified_with == [old, new]  # both signatures during the grace period
        assert second.signature.count("v1=") == 2
        ended = (await admin.data(ROTATE, {"input": {"endpointId": endpoint_id, "graceHours": 0}}))[
            "webhookEndpointRotateSecret"
        ]
        newest = ended["secret"]
        assert ended["endpoint"]["previousSecretExpiresAt"] is None
        old_side.secrets.append(newest)
        await payment_factory(confirm=True)
        await drain(sender, org)
        third = old_side.requests[2]
        assert third.verified_with == [newest]
        assert third.signature.count("v1=") == 1
        assert old_side.unverified == []
        assert new_side.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://10.1.2.3/hooks",
        "https://192.168.0.10/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://localhost/hooks",
        "https://0.0.0.0/hooks",
        "http://example.com/hooks",
    ],
)
async def test_production_refuses_internal_targets_at_registration(
    app_services: Any, org: str, url: str
) -> None:
    endpoints = WebhookEndpoints(app_services.db, production=True)
    with pytest.raises(ValidationFailed) as refused:
        await endpoints.create(org, EndpointDraft(url=url, event_types=["payment.succeeded"]))
    assert [e.field for e in refused.value.errors] == [("input", "url")]
    assert await endpoints.all_of(org) == []


async def test_production_refuses_an_internal_target_at_delivery(
    app_services: Any, org: str, payment_factory: Callable[..., Any]
) -> None:
    """A name that resolves to an internal address when the delivery is made (DNS changed
    since registration) is not contacted."""
    async with receiving(Receiver()) as receiver:
        target = f"https://localhost:{receiver.port}/hooks"
        # registered outside production, where the URL form passes; delivered in production
        await app_services.db.execute(
            "INSERT INTO webhook_endpoints (organization_id, id, url, event_types, secret) "
            "VALUES (:org, :id, :url, ARRAY['payment.succeeded'], 'whsec_x')",
            {"org": org, "id": f"we_{uuid.uuid4().hex[:26]}", "url": target},
        )
        await payment_factory(confirm=True)
        production = WebhookSender(app_services.db, production=True, policy=FAST)
        try:
            assert await production.deliver_due(org=org) == 1
        finally:
            await production.close()
        assert receiver.requests == []
        error = await app_services.db.fetch_val(
            "SELECT last_error FROM webhook_deliveries WHERE organization_id = :org",
            {"org": org},
        )
        assert "private, loopback or link-local" in error


async def test_an_endpoint_failing_for_too_long_is_disabled_with_a_notice(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    payment_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver(fail_first=10**6)) as receiver:
        endpoint_id, secret = await endpoint(admin, receiver.url)
        receiver.secrets.append(secret)
        watcher_id, _ = await endpoint(admin, "http://127.0.0.1:9/x", ["WEBHOOK_ENDPOINT_DISABLED"])
        await payment_factory(confirm=True)
        brief = DeliveryPolicy(
            retry_base=timedelta(milliseconds=20),
            retry_cap=timedelta(milliseconds=50),
            max_age=timedelta(seconds=1),
            lease=timedelta(seconds=30),
        )
        sender = WebhookSender(app_services.db, production=False, policy=brief)
        try:
            await drain(sender, org)
        finally:
            await sender.close()
        assert receiver.answered[500] >= 2
    row = await app_services.db.fetch_one(
        "SELECT enabled, disabled_reason FROM webhook_endpoints "
        "WHERE organization_id = :org AND id = :id",
        {"org": org, "id": endpoint_id},
    )
    assert row["enabled"] is False
    assert row["disabled_reason"].startswith("Every delivery failed since ")
    notice = await app_services.db.fetch_one(
        "SELECT object_id FROM webhook_events "
        "WHERE organization_id = :org AND type = 'webhook_endpoint.disabled'",
        {"org": org},
    )
    assert notice is not None
    assert notice["object_id"] == endpoint_id
    watched = await app_services.db.fetch_val(
        "SELECT count(*) FROM webhook_deliveries WHERE organization_id = :org "
        "AND endpoint_id = :id AND event_type = 'webhook_endpoint.disabled'",
        {"org": org, "id": watcher_id},
    )
    assert watched == 1


async def test_redeliver_sends_the_same_event_again(
    admin: GraphQLClient,
    org: str,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver()) as receiver:
        endpoint_id, secret = await endpoint(admin, receiver.url)
        receiver.secrets.append(secret)
        await payment_factory(confirm=True)
        await drain(sender, org)
        listed = (await admin.data(DELIVERIES, {"id": endpoint_id}))["webhookDeliveries"]
        delivery = listed["edges"][0]["node"]
        body = await admin.data(
            "mutation($input: WebhookRedeliverInput!) { webhookRedeliver(input: $input) "
            "{ delivery { id status } errors { code } } }",
            {"input": {"deliveryId": delivery["id"]}},
        )
        assert body["webhookRedeliver"] == {
            "delivery": {"id": delivery["id"], "status": "PENDING"},
            "errors": [],
        }
        await drain(sender, org)
        assert receiver.accepted_ids() == {delivery["eventId"]: 2}
        assert receiver.requests[0].body == receiver.requests[1].body


async def test_events_lists_what_was_written_by_type_and_time(
    admin: GraphQLClient, org: str, payment_factory: Callable[..., Any]
) -> None:
    paid = await payment_factory(confirm=True)
    body = await admin.data(
        "{ events(type: PAYMENT_SUCCEEDED) { totalCount edges { node { id type objectId "
        "apiVersion envelope } } } }"
    )
    (node,) = [e["node"] for e in body["events"]["edges"]]
    assert node["type"] == "PAYMENT_SUCCEEDED"
    assert node["objectId"] == paid["id"]
    assert node["envelope"]["id"] == node["id"]
    assert node["envelope"]["data"]["object"]["status"] == "SUCCEEDED"
    later = await admin.data(
        "query($from: DateTime) { events(from: $from) { totalCount } }",
        {"from": "2999-01-01T00:00:00Z"},
    )
    assert later["events"]["totalCount"] == 0


async def test_emit_refuses_an_unknown_type(app_services: Any, org: str) -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        await emit(app_services.db, org, "payment.maybe", {"id": "pay_x"})


async def test_metrics_show_the_backlog_attempts_and_repairs(
    admin: GraphQLClient,
    org: str,
    http: Any,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    async with receiving(Receiver(fail_first=10**6)) as receiver:
        endpoint_id, secret = await endpoint(admin, receiver.url)
        receiver.secrets.append(secret)
        await payment_factory(confirm=True)
        assert await sender.deliver_due(org=org) == 1
    text = (await http.get("/metrics")).text
    assert f'billing_webhook_backlog{{endpoint="{endpoint_id}"}} 1.0' in text
    assert (
        f'billing_webhook_attempts_last_hour{{endpoint="{endpoint_id}",outcome="failed"}} 1.0'
        in (text)
    )
    assert f'billing_webhook_attempt_latency_seconds_last_hour{{endpoint="{endpoint_id}"}}' in text
    assert 'billing_reconciliation_repairs{kind="payment"}' in text


NODE = (
    "query($id: ID!) { node(id: $id) { id ... on WebhookEndpoint { url } "
    "... on WebhookDelivery { eventId status } } }"
)


async def test_endpoints_and_deliveries_are_nodes_for_admins_only(
    admin: GraphQLClient,
    org: str,
    settings: Any,
    http: Any,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    endpoint_id, _ = await endpoint(admin, "http://127.0.0.1:9/nodes")
    await payment_factory(confirm=True)
    listed = (await admin.data(DELIVERIES, {"id": endpoint_id}))["webhookDeliveries"]
    delivery = listed["edges"][0]["node"]
    found = (await admin.data(NODE, {"id": endpoint_id}))["node"]
    assert found == {"id": endpoint_id, "url": "http://127.0.0.1:9/nodes"}
    found = (await admin.data(NODE, {"id": delivery["id"]}))["node"]
    assert found == {"id": delivery["id"], "eventId": delivery["eventId"], "status": "PENDING"}
    service = GraphQLClient(http, token(settings, org, "service"))
    for node_id in (endpoint_id, delivery["id"]):
        assert (await service.data(NODE, {"id": node_id}))["node"] is None
    stranger = GraphQLClient(http, token(settings, new_org(), "admin"))
    assert (await stranger.data(NODE, {"id": endpoint_id}))["node"] is None


async def test_events_past_the_retention_go_with_their_deliveries_unless_one_is_pending(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    sender: WebhookSender,
    payment_factory: Callable[..., Any],
) -> None:
    db = app_services.db
    async with receiving(Receiver()) as receiver:
        _, secret = await endpoint(admin, receiver.url)
        receiver.secrets.append(secret)
        for _ in range(3):
            await payment_factory(confirm=True)
        await drain(sender, org)
    await payment_factory(confirm=True)  # its delivery stays pending: the receiver is gone
    events = [
        r["id"]
        for r in await db.fetch_all(
            "SELECT id FROM webhook_events WHERE organization_id = :org ORDER BY id", {"org": org}
        )
    ]
    assert len(events) == 4
    old_done, recent_done, old_pending = events[:2], events[2], events[3]
    await db.execute(
        "UPDATE webhook_events SET created_at = now() - interval '31 days' "
        "WHERE organization_id = :org AND id = ANY(:ids)",
        {"org": org, "ids": [*old_done, old_pending]},
    )
    statuses = {
        r["event_id"]: r["status"]
        for r in await db.fetch_all(
            "SELECT event_id, status FROM webhook_deliveries WHERE organization_id = :org",
            {"org": org},
        )
    }
    assert [statuses[e] for e in events] == ["succeeded"] * 3 + ["pending"]

    assert app_services.settings.webhook_retention_days == 30
    assert await app_services.webhook_retention.purge() >= 2
    left = await db.fetch_all(
        "SELECT e.id, count(d.id) AS deliveries, count(a.attempt) AS attempts "
        "FROM webhook_events e LEFT JOIN webhook_deliveries d "
        "  ON d.organization_id = e.organization_id AND d.event_id = e.id "
        "LEFT JOIN webhook_attempts a "
        "  ON a.organization_id = d.organization_id AND a.delivery_id = d.id "
        "WHERE e.organization_id = :org GROUP BY e.id ORDER BY e.id",
        {"org": org},
    )
    assert [(r["id"], r["deliveries"]) for r in left] == [(recent_done, 1), (old_pending, 1)]
    orphans = await db.fetch_val(
        "SELECT count(*) FROM webhook_attempts a WHERE a.organization_id = :org AND NOT EXISTS "
        "(SELECT 1 FROM webhook_deliveries d WHERE d.organization_id = a.organization_id "
        " AND d.id = a.delivery_id)",
        {"org": org},
    )
    assert orphans == 0
    # Nothing more to do: a second pass deletes none of this organization's events.
    await app_services.webhook_retention.purge()
    assert (
        await db.fetch_val(
            "SELECT count(*) FROM webhook_events WHERE organization_id = :org", {"org": org}
        )
        == 2
    )
    # Once the pending delivery ends (here: given up), its old event goes on the next pass.
    await db.execute(
        "UPDATE webhook_deliveries SET status = 'failed' WHERE organization_id = :org "
        "AND event_id = :id",
        {"org": org, "id": old_pending},
    )
    await app_services.webhook_retention.purge()
    remaining = await db.fetch_all(
        "SELECT id FROM webhook_events WHERE organization_id = :org", {"org": org}
    )
    assert [r["id"] for r in remaining] == [recent_done]

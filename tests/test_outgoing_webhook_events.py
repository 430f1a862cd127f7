"""Which outgoing events each change writes (in its transaction): a subscription's life on the
test clock (created, trial_will_end once, updated, invoices finalized and paid, past_due,
canceled), refunds and voided invoices."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.schema.test_customers_api import SET_CARD, stripe_card
from tests.schema.test_subscriptions_api import CANCEL, advance, paying_customer, subscribe
from tests.support import GraphQLClient

__all__ = ["paying_customer"]  # the fixture, used here

START = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)


async def written(app_services: Any, org: str) -> list[tuple[str, str]]:
    rows = await app_services.db.fetch_all(
        "SELECT type, object_id FROM webhook_events WHERE organization_id = :org ORDER BY id",
        {"org": org},
    )
    return [(row["type"], row["object_id"]) for row in rows]


async def test_a_subscription_life_writes_its_events(
    admin: GraphQLClient,
    org: str,
    settings: Any,
    app_services: Any,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],
) -> None:
    await advance(admin, START)
    plan = await plan_factory(trialDays=14, price={"amount": 2500, "currency": "USD"})
    customer = await paying_customer()
    sub = await subscribe(admin, customerId=customer["id"], planId=plan["id"])
    assert await written(app_services, org) == [("subscription.created", sub["id"])]

    await advance(admin, START + timedelta(days=10))  # 4 days left: nothing yet
    assert await app_services.subscriptions.announce_trials_ending(org=org) == 0
    await advance(admin, START + timedelta(days=12))  # 2 days left
    assert await app_services.subscriptions.announce_trials_ending(org=org) == 0  # done already
    await app_services.housekeeping(org=org)
    events = await written(app_services, org)
    assert events[1:] == [("subscription.trial_will_end", sub["id"])]

    await advance(admin, START + timedelta(days=15))  # the trial converts: charged
    converted = (await written(app_services, org))[2:]
    kinds = [kind for kind, _ in converted]
    assert kinds == [
        "invoice.finalized",
        "payment.succeeded",
        "invoice.paid",
        "subscription.updated",
    ]
    envelope = await app_services.db.fetch_val(
        "SELECT payload FROM webhook_events WHERE organization_id = :org "
        "AND type = 'subscription.updated'",
        {"org": org},
    )
    assert '"status":"ACTIVE"' in envelope
    assert f'"customer":{{"id":"{customer["id"]}"}}' in envelope

    declining = await stripe_card(settings, "4000000000000341")
    await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": declining}}
    )
    await advance(admin, START + timedelta(days=15 + 31))  # the renewal charge fails
    after_renewal = [kind for kind, _ in (await written(app_services, org))[6:]]
    assert "payment.failed" in after_renewal
    assert after_renewal[-1] == "subscription.past_due"

    cancel = {"id": sub["id"], "atPeriodEnd": False}
    done = (await admin.data(CANCEL, {"input": cancel}))["subscriptionCancel"]
    assert done["errors"] == []
    final = await written(app_services, org)
    assert ("subscription.canceled", sub["id"]) in final
    assert [k for k, _ in final].count("subscription.trial_will_end") == 1


REFUND = """
mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id status } errors { code } }
}
"""
VOID = """
mutation($input: InvoiceVoidInput!) {
  invoiceVoid(input: $input) { invoice { id status } errors { code } }
}
"""


async def test_refunds_and_voided_invoices_write_their_events(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    payment_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    paid = await payment_factory(confirm=True)
    refund = (
        await admin.data(
            REFUND,
            {
                "input": {
                    "paymentId": paid["id"],
                    "amount": {"amount": 100, "currency": "USD"},
                    "reason": "OTHER",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
    )["refundCreate"]["refund"]
    assert refund["status"] == "SUCCEEDED"
    invoice = await invoice_factory()
    await app_services.invoices.finalize(org, invoice["id"])
    voided = (await admin.data(VOID, {"input": {"invoiceId": invoice["id"]}}))["invoiceVoid"]
    assert voided["errors"] == []
    assert await written(app_services, org) == [
        ("payment.succeeded", paid["id"]),
        ("refund.succeeded", refund["id"]),
        ("invoice.finalized", invoice["id"]),
        ("invoice.voided", invoice["id"]),
    ]

"""Charges whose request died half way and that no one retried: the worker's housekeeping
(``Services.housekeeping``) reads Stripe and finishes them, charging no one twice. Found by the
multi-process fault test: the API was killed while it confirmed the final invoice of a
subscription it had just canceled, and the payment stayed ``requires_confirmation``, marked in
flight, with the invoice open and no one left to charge it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.core.settings import Settings
from app.ledger import verify
from tests.conftest import CONFIRM_PAYMENT
from tests.schema.test_invoice_payments_api import PAY, with_card
from tests.schema.test_plans_api import stripe_get
from tests.support import GraphQLClient

INVOICE = """query($id: ID!) {
  invoice(id: $id) {
    status amountPaid { amount } paymentInProgress
    payment { id status stripePaymentIntentId }
  }
}"""
PAYMENT = "query($id: ID!) { payment(id: $id) { status amountCaptured { amount } } }"


class Crash(Exception):
    """Stands for the process dying at that point."""


async def expire_leases(app_services: Any, org: str) -> None:
    """Minutes later: the dead request's leases on the invoice and the payment have run out."""
    await app_services.db.execute(
        "UPDATE invoices SET payment_lease_until = now() - interval '10 minutes' "
        "WHERE organization_id = :org AND payment_lease_token IS NOT NULL",
        {"org": org},
    )
    await app_services.db.execute(
        "UPDATE payments SET lease_until = now() - interval '10 minutes' "
        "WHERE organization_id = :org AND operation IS NOT NULL",
        {"org": org},
    )


async def intents_of(settings: Settings, customer: dict[str, Any]) -> list[str]:
    """The statuses of the customer's PaymentIntents at Stripe, oldest first (every page: the
    emulator is shared by the whole run and lists oldest first)."""
    mine: list[dict[str, Any]] = []
    after = ""
    while True:
        found = await stripe_get(settings, f"/v1/payment_intents?limit=100{after}")
        mine += [i for i in found["data"] if i["customer"] == customer["stripeCustomerId"]]
        if not found["has_more"] or not found["data"]:
            break
        after = f"&starting_after={found['data'][-1]['id']}"
    return [i["status"] for i in sorted(mine, key=lambda i: i["created"])]


@pytest.mark.parametrize("reached_stripe", [True, False], ids=["after-stripe", "before-stripe"])
async def test_the_housekeeping_finishes_an_invoice_charge_whose_request_died(
    reached_stripe: bool,
    admin: GraphQLClient,
    org: str,
    settings: Settings,
    app_services: Any,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = await customer_factory()
    await with_card(admin, customer, "pm_card_visa")
    invoice = await invoice_factory(
        customer=customer, lines=[{"description": "Setup", "unitAmount": 4200}], finalize=True
    )
    gateway = app_services.payments._stripe
    real_confirm = gateway.confirm_payment_intent

    async def die_while_confirming(*args: Any, **kwargs: Any) -> Any:
        if reached_stripe:
            await real_confirm(*args, **kwargs)
        raise Crash

    monkeypatch.setattr(gateway, "confirm_payment_intent", die_while_confirming)
    died = await admin(PAY, {"input": {"invoiceId": invoice["id"], "idempotencyKey": "k-1"}})
    assert died["data"] is None
    monkeypatch.setattr(gateway, "confirm_payment_intent", real_confirm)
    left = (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]
    assert (left["status"], left["paymentInProgress"]) == ("OPEN", True)
    assert left["payment"]["status"] == "REQUIRES_CONFIRMATION"
    expected_at_stripe = ["succeeded"] if reached_stripe else ["requires_confirmation"]
    assert await intents_of(settings, customer) == expected_at_stripe

    # While the dead request's leases last, the housekeeping leaves the invoice alone.
    assert await app_services.housekeeping(org=org, older_than=timedelta(0)) == 0
    assert (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]["status"] == "OPEN"

    await expire_leases(app_services, org)
    assert await app_services.housekeeping(org=org, older_than=timedelta(minutes=2)) == 1
    paid = (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]
    assert (paid["status"], paid["amountPaid"]["amount"], paid["paymentInProgress"]) == (
        "PAID",
        "4200",
        False,
    )
    assert paid["payment"]["status"] == "SUCCEEDED"
    if reached_stripe:
        # The charge Stripe made is adopted: the customer is charged once.
        assert paid["payment"]["id"] == left["payment"]["id"]
        assert await intents_of(settings, customer) == ["succeeded"]
    else:
        # The PaymentIntent no one confirmed is canceled, and the charge made once.
        assert await intents_of(settings, customer) == ["canceled", "succeeded"]
        orphan = (await admin.data(PAYMENT, {"id": left["payment"]["id"]}))["payment"]
        assert orphan["status"] == "CANCELED"
    stuck = await app_services.db.fetch_val(
        "SELECT count(*) FROM payments WHERE organization_id = :org AND operation IS NOT NULL",
        {"org": org},
    )
    assert stuck == 0
    # Nothing is left for the next round, and the books balance.
    assert await app_services.housekeeping(org=org, older_than=timedelta(0)) == 0
    assert await verify(app_services.db, org) == []


async def test_the_housekeeping_records_a_payment_confirmed_by_a_dead_request(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    payment_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payment = await payment_factory()
    gateway = app_services.payments._stripe
    real_confirm = gateway.confirm_payment_intent

    async def confirm_then_die(*args: Any, **kwargs: Any) -> Any:
        await real_confirm(*args, **kwargs)
        raise Crash

    monkeypatch.setattr(gateway, "confirm_payment_intent", confirm_then_die)
    key = str(uuid.uuid4())
    died = await admin(
        CONFIRM_PAYMENT, {"input": {"paymentId": payment["id"], "idempotencyKey": key}}
    )
    assert died["data"] is None
    monkeypatch.setattr(gateway, "confirm_payment_intent", real_confirm)
    assert (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]["status"] == (
        "REQUIRES_CONFIRMATION"
    )

    assert await app_services.payments.resume_interrupted(org=org, older_than=timedelta(0)) == 0
    await expire_leases(app_services, org)
    assert await app_services.payments.resume_interrupted(org=org) == 1
    recorded = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert (recorded["status"], recorded["amountCaptured"]["amount"]) == ("SUCCEEDED", "10000")
    assert await app_services.payments.resume_interrupted(org=org, older_than=timedelta(0)) == 0
    assert await verify(app_services.db, org) == []


async def test_a_payment_made_for_a_charge_that_died_before_linking_it_is_canceled(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    customer = await customer_factory()
    await with_card(admin, customer, "pm_card_visa")
    invoice = await invoice_factory(
        customer=customer, lines=[{"description": "Setup", "unitAmount": 4200}], finalize=True
    )
    rows = app_services.invoice_billing._rows

    async def die_before_linking(*args: Any, **kwargs: Any) -> None:
        raise Crash

    monkeypatch.setattr(rows, "set_payment", die_before_linking)
    died = await admin(PAY, {"input": {"invoiceId": invoice["id"], "idempotencyKey": "k-2"}})
    assert died["data"] is None
    monkeypatch.undo()
    orphan = await app_services.db.fetch_val(
        "SELECT id FROM payments WHERE organization_id = :org AND status = 'requires_confirmation'",
        {"org": org},
    )
    assert orphan is not None
    await expire_leases(app_services, org)
    await app_services.db.execute(
        "UPDATE invoices SET payment_lease_until = now() - interval '10 minutes' "
        "WHERE organization_id = :org AND payment_lease_token IS NOT NULL",
        {"org": org},
    )
    await app_services.housekeeping(org=org, older_than=timedelta(0))
    paid = (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]
    assert paid["status"] == "PAID"
    assert (await admin.data(PAYMENT, {"id": orphan}))["payment"]["status"] == "CANCELED"

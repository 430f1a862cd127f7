"""invoicePay against localstripe: paid only on Stripe's success, declines leave the invoice
open, one charge per key and per invoice, and who may pay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from app.core.settings import Settings
from tests.conftest import INVOICE_FIELDS
from tests.schema.test_customers_api import SET_CARD, stripe_card
from tests.schema.test_plans_api import stripe_get
from tests.support import GraphQLClient, token

PAY = f"""mutation($input: InvoicePayInput!) {{
  invoicePay(input: $input) {{
    invoice {{ {INVOICE_FIELDS}
      payment {{
        id status amount {{ amount currency }} stripePaymentIntentId failureCode metadata
      }}
    }}
    errors {{ field message code }}
  }}
}}"""
PAYMENTS = """query($customer: ID!) {
  payments(filter: {customerId: $customer}) { edges { node { id status amount { amount } } } }
}"""


async def with_card(admin: GraphQLClient, customer: dict[str, Any], method: str) -> None:
    done = await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": method}}
    )
    assert done["customerSetDefaultPaymentMethod"]["errors"] == []


async def pay(client: GraphQLClient, invoice_id: str, **extra: Any) -> dict[str, Any]:
    variables = {"input": {"invoiceId": invoice_id, "idempotencyKey": str(uuid.uuid4()), **extra}}
    payload: dict[str, Any] = (await client.data(PAY, variables))["invoicePay"]
    return payload


async def test_a_one_off_invoice_from_draft_to_paid(
    admin: GraphQLClient,
    settings: Settings,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    await with_card(admin, customer, "pm_card_visa")
    invoice = await invoice_factory(
        customer=customer,
        lines=[
            {"description": "Onboarding", "unitAmount": 25000},
            {"description": "Training day", "unitAmount": 80000, "quantity": 2},
        ],
        finalize=True,
    )
    assert (invoice["status"], invoice["amountDue"]["amount"]) == ("OPEN", "185000")
    key = str(uuid.uuid4())
    payload = (
        await admin.data(PAY, {"input": {"invoiceId": invoice["id"], "idempotencyKey": key}})
    )["invoicePay"]
    assert payload["errors"] == []
    paid = payload["invoice"]
    assert (paid["status"], paid["amountPaid"]["amount"], paid["amountRemaining"]["amount"]) == (
        "PAID",
        "185000",
        "0",
    )
    assert paid["paidAt"] is not None
    assert paid["paymentAttempts"] == 1
    payment = paid["payment"]
    assert (payment["status"], payment["amount"]) == (
        "SUCCEEDED",
        {"amount": "185000", "currency": "USD"},
    )
    assert payment["metadata"]["invoice_id"] == invoice["id"]
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 185000, "usd")

    # The same key returns the same outcome and charges nothing more.
    again = (await admin.data(PAY, {"input": {"invoiceId": invoice["id"], "idempotencyKey": key}}))[
        "invoicePay"
    ]
    assert again == payload
    another = await pay(admin, invoice["id"])
    assert [(e["code"], e["message"]) for e in another["errors"]] == [
        ("INVALID_STATE", "A paid invoice cannot be paid.")
    ]
    charges = (await admin.data(PAYMENTS, {"customer": customer["id"]}))["payments"]["edges"]
    assert [e["node"]["status"] for e in charges] == ["SUCCEEDED"]
    # Paid is final.
    void = await admin.data(
        "mutation($id: ID!) { invoiceVoid(input: {invoiceId: $id}) { errors { code } } }",
        {"id": invoice["id"]},
    )
    assert void["invoiceVoid"]["errors"] == [{"code": "INVALID_STATE"}]


async def test_a_declined_card_leaves_the_invoice_open(
    admin: GraphQLClient,
    settings: Settings,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    # Attaches fine, declines when charged.
    await with_card(admin, customer, await stripe_card(settings, "4000000000000341"))
    invoice = await invoice_factory(customer=customer, currency="EUR", finalize=True)
    declined = await pay(admin, invoice["id"])
    assert [e["code"] for e in declined["errors"]] == ["CARD_DECLINED"]
    still_open = declined["invoice"]
    assert (still_open["status"], still_open["amountPaid"]["amount"]) == ("OPEN", "0")
    assert still_open["lastPaymentError"]["code"] == "card_declined"
    assert still_open["payment"]["status"] == "FAILED"
    assert still_open["paymentInProgress"] is False

    # Another card, given explicitly, pays it; the failed attempt is cancelled.
    paid = await pay(admin, invoice["id"], paymentMethodId="pm_card_visa")
    assert paid["errors"] == []
    assert (paid["invoice"]["status"], paid["invoice"]["paymentAttempts"]) == ("PAID", 2)
    assert paid["invoice"]["lastPaymentError"] is None
    statuses = sorted(
        e["node"]["status"]
        for e in (await admin.data(PAYMENTS, {"customer": customer["id"]}))["payments"]["edges"]
    )
    assert statuses == ["CANCELED", "SUCCEEDED"]


async def test_what_cannot_be_paid(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    no_card = await customer_factory()
    invoice = await invoice_factory(customer=no_card, finalize=True)
    refused = await pay(admin, invoice["id"])
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [
        (["input", "paymentMethodId"], "REQUIRED")
    ]
    bad = await pay(admin, invoice["id"], paymentMethodId="card_123")
    assert [(e["field"], e["code"]) for e in bad["errors"]] == [
        (["input", "paymentMethodId"], "INVALID")
    ]
    draft = await invoice_factory(customer=no_card)
    assert [e["message"] for e in (await pay(admin, draft["id"]))["errors"]] == [
        "A draft invoice cannot be paid."
    ]
    missing = await pay(admin, "inv_missing")
    assert [(e["field"], e["code"]) for e in missing["errors"]] == [
        (["input", "invoiceId"], "NOT_FOUND")
    ]
    after = (
        await admin.data(
            "query($id: ID!) { invoice(id: $id) { status paymentInProgress paymentAttempts } }",
            {"id": invoice["id"]},
        )
    )["invoice"]
    assert after == {"status": "OPEN", "paymentInProgress": False, "paymentAttempts": 0}


async def test_concurrent_charges_of_one_invoice_charge_once(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    customer = await customer_factory()
    await with_card(admin, customer, "pm_card_visa")
    invoice = await invoice_factory(customer=customer, finalize=True)
    results = await asyncio.gather(*(pay(admin, invoice["id"]) for _ in range(8)))
    succeeded = [r for r in results if not r["errors"]]
    assert len(succeeded) == 1
    assert {e["code"] for r in results for e in r["errors"]} <= {
        "OPERATION_IN_PROGRESS",
        "INVALID_STATE",
    }
    charges = (await admin.data(PAYMENTS, {"customer": customer["id"]}))["payments"]["edges"]
    assert [e["node"]["status"] for e in charges] == ["SUCCEEDED"]


async def test_customers_pay_only_their_own_invoices(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    me, other = await customer_factory(), await customer_factory()
    for customer in (me, other):
        await with_card(admin, customer, "pm_card_visa")
    mine = await invoice_factory(customer=me, finalize=True)
    theirs = await invoice_factory(customer=other, finalize=True)
    client = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))
    refused = await pay(client, theirs["id"])
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [
        (["input", "invoiceId"], "NOT_FOUND")
    ]
    assert refused["invoice"] is None
    paid = await pay(client, mine["id"])
    assert (paid["errors"], paid["invoice"]["status"]) == ([], "PAID")
    untouched = await admin.data(
        "query($id: ID!) { invoice(id: $id) { status } }", {"id": theirs["id"]}
    )
    assert untouched["invoice"]["status"] == "OPEN"

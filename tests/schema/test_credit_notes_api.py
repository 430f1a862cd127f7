"""Credit notes through the API: their own gapless numbers, tax at the invoice's rate, what an
open invoice still owes, and credit left over becoming balance spent by the next invoice."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from app.core.settings import Settings
from tests.schema.test_invoice_payments_api import pay, with_card
from tests.schema.test_invoice_taxes_api import rate
from tests.support import GraphQLClient, token

CREDIT = """mutation($input: CreditNoteCreateInput!) {
  creditNoteCreate(input: $input) {
    creditNote {
      id number invoiceId customerId currency reason settlement memo pdfUrl
      subtotal { amount } taxTotal { amount } total { amount }
      appliedToInvoice { amount } creditedToBalance { amount } refunded { amount }
      lines { kind description quantity amount { amount } informational }
      invoice { id status amountDue { amount } amountCredited { amount } }
    }
    errors { field code message }
  }
}"""
INVOICE = """query($id: ID!) {
  invoice(id: $id) {
    status amountDue { amount } amountRemaining { amount } amountCredited { amount }
    creditApplied { amount } creditNotes { id number }
    customer { creditBalances { amount currency } }
  }
}"""
NOTES = """query($filter: CreditNoteFilter) {
  creditNotes(filter: $filter) { totalCount edges { node { id number } } }
}"""


async def credit(
    admin: GraphQLClient, invoice_id: str, *amounts: int, **extra: Any
) -> dict[str, Any]:
    variables = {
        "input": {
            "invoiceId": invoice_id,
            "lines": [
                {"description": f"Credit {n}", "unitAmount": a} for n, a in enumerate(amounts)
            ],
            "reason": "GOODWILL",
            "idempotencyKey": str(uuid.uuid4()),
            **extra,
        }
    }
    payload: dict[str, Any] = (await admin.data(CREDIT, variables))["creditNoteCreate"]
    return payload


async def test_a_credit_note_reduces_an_open_invoice_then_pays_it(
    admin: GraphQLClient, invoice_factory: Callable[..., Any]
) -> None:
    invoice = await invoice_factory(
        lines=[{"description": "Plan", "unitAmount": 10000}], finalize=True
    )
    first = await credit(admin, invoice["id"], 3000)
    assert first["errors"] == []
    note = first["creditNote"]
    year = invoice["finalizedAt"][:4]
    assert note["number"] == f"INV-CN-{year}-000001"
    assert (note["total"]["amount"], note["appliedToInvoice"]["amount"]) == ("3000", "3000")
    assert note["creditedToBalance"]["amount"] == "0"
    assert (note["invoice"]["status"], note["invoice"]["amountDue"]["amount"]) == ("OPEN", "7000")
    assert note["pdfUrl"].endswith(f"/credit-notes/{note['id']}.pdf")

    too_much = await credit(admin, invoice["id"], 7001)
    assert [(e["field"], e["code"]) for e in too_much["errors"]] == [
        (["input", "lines"], "AMOUNT_EXCEEDS_CREDITABLE")
    ]
    assert too_much["errors"][0]["message"] == (
        "The credit note totals 70.01 USD but only 70.00 of the invoice can still be credited "
        "(its total, less earlier credit notes and refunds of its payment)."
    )
    rest = await credit(admin, invoice["id"], 7000)
    assert rest["creditNote"]["number"] == f"INV-CN-{year}-000002"
    after = (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]
    assert after["status"] == "PAID"
    assert (after["amountDue"]["amount"], after["amountCredited"]["amount"]) == ("0", "10000")
    assert [n["id"] for n in after["creditNotes"]] == [note["id"], rest["creditNote"]["id"]]
    none_left = await credit(admin, invoice["id"], 1)
    assert [e["code"] for e in none_left["errors"]] == ["AMOUNT_EXCEEDS_CREDITABLE"]


async def test_credit_on_a_paid_invoice_becomes_balance_spent_by_the_next_invoice(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    await rate(admin, name="VAT", percentage="20", country="FR")
    customer = await customer_factory(address={"country": "FR"})
    await with_card(admin, customer, "pm_card_visa")
    invoice = await invoice_factory(
        customer=customer,
        currency="EUR",
        lines=[{"description": "Annual plan", "unitAmount": 100000}],
        finalize=True,
    )
    assert invoice["total"]["amount"] == "120000"
    assert (await pay(admin, invoice["id"]))["invoice"]["status"] == "PAID"

    issued = await credit(admin, invoice["id"], 25000, reason="PRORATION", memo="Downgrade")
    assert issued["errors"] == []
    note = issued["creditNote"]
    assert (note["subtotal"]["amount"], note["taxTotal"]["amount"], note["total"]["amount"]) == (
        "25000",
        "5000",
        "30000",
    )
    assert [(line["kind"], line["amount"]["amount"]) for line in note["lines"]] == [
        ("ONE_OFF", "25000"),
        ("TAX", "5000"),
    ]
    assert (note["appliedToInvoice"]["amount"], note["creditedToBalance"]["amount"]) == (
        "0",
        "30000",
    )
    balances = (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]["customer"]
    assert balances["creditBalances"] == [{"amount": "30000", "currency": "EUR"}]

    # The next invoice spends the balance first; the one after spends what is left.
    second = await invoice_factory(
        customer=customer,
        currency="EUR",
        lines=[{"description": "Add-on", "unitAmount": 10000}],
        finalize=True,
    )
    assert (second["total"]["amount"], second["balanceApplied"]["amount"]) == ("12000", "12000")
    assert (second["amountDue"]["amount"], second["status"]) == ("0", "PAID")
    third = await invoice_factory(
        customer=customer,
        currency="EUR",
        lines=[{"description": "Add-on", "unitAmount": 20000}],
        finalize=True,
    )
    assert (third["balanceApplied"]["amount"], third["amountDue"]["amount"]) == ("18000", "6000")
    left = (await admin.data(INVOICE, {"id": third["id"]}))["invoice"]["customer"]
    assert left["creditBalances"] == []
    # A USD invoice does not touch EUR credit; voiding gives the spent credit back.
    voided = await admin.data(
        "mutation($id: ID!) { invoiceVoid(input: {invoiceId: $id}) { errors { code } } }",
        {"id": third["id"]},
    )
    assert voided["invoiceVoid"]["errors"] == []
    back = (await admin.data(INVOICE, {"id": third["id"]}))["invoice"]["customer"]
    assert back["creditBalances"] == [{"amount": "18000", "currency": "EUR"}]


async def test_refund_settlement_and_what_cannot_be_credited(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    await with_card(admin, customer, "pm_card_visa")
    invoice = await invoice_factory(customer=customer, finalize=True)
    await pay(admin, invoice["id"])
    refunded = await credit(admin, invoice["id"], 400, settlement="REFUND", reason="REFUND")
    note = refunded["creditNote"]
    assert (note["refunded"]["amount"], note["creditedToBalance"]["amount"]) == ("400", "0")

    draft = await invoice_factory(customer=customer)
    refused = await credit(admin, draft["id"], 100)
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [
        (["input", "invoiceId"], "INVALID_STATE")
    ]
    for lines, field in (
        ([0], ["input", "lines", "0", "unitAmount"]),
        ([-5], ["input", "lines", "0", "unitAmount"]),
        ([], ["input", "lines"]),
    ):
        bad = await credit(admin, invoice["id"], *lines)
        assert [e["field"] for e in bad["errors"]] == [field]
    missing = await credit(admin, "inv_missing", 100)
    assert [e["code"] for e in missing["errors"]] == ["NOT_FOUND"]
    listing = (await admin.data(NOTES, {"filter": {"invoiceId": invoice["id"]}}))["creditNotes"]
    assert [e["node"]["id"] for e in listing["edges"]] == [note["id"]]


async def test_credit_notes_are_idempotent_and_visible_to_their_customer_only(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    me, other = await customer_factory(), await customer_factory()
    invoice = await invoice_factory(customer=me, finalize=True)
    variables = {
        "input": {
            "invoiceId": invoice["id"],
            "lines": [{"description": "Sorry", "unitAmount": 100}],
            "reason": "GOODWILL",
            "idempotencyKey": "credit-once",
        }
    }
    first = (await admin.data(CREDIT, variables))["creditNoteCreate"]
    second = (await admin.data(CREDIT, variables))["creditNoteCreate"]
    assert first["creditNote"]["id"] == second["creditNote"]["id"]
    assert (await admin.data(INVOICE, {"id": invoice["id"]}))["invoice"]["amountDue"] == {
        "amount": "900"
    }
    query = "query($id: ID!) { creditNote(id: $id) { id number } }"
    mine = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))
    theirs = GraphQLClient(http, token(settings, org, "customer", sub=other["id"]))
    note_id = first["creditNote"]["id"]
    assert (await mine.data(query, {"id": note_id}))["creditNote"]["id"] == note_id
    assert (await theirs.data(query, {"id": note_id}))["creditNote"] is None
    assert (await theirs.data(NOTES))["creditNotes"]["totalCount"] == 0

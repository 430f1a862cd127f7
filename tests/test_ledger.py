"""One ledger for every money movement: credit notes and refunds share what a payment may return,
a refund credit note pays back card money and returns the rest where it came from, credit notes
in pieces reach the invoice's tax exactly, a once coupon waits for an invoice it can discount,
voids and write-offs undo what they must, and `billing verify` catches books that disagree."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from app.ledger.checks import verify
from db.connection import Database
from db.migrate import apply_migrations
from tests.schema.test_credit_notes_api import credit
from tests.schema.test_invoice_payments_api import pay, with_card
from tests.schema.test_invoice_taxes_api import rate
from tests.schema.test_subscriptions_api import CANCEL, advance, subscribe
from tests.support import GraphQLClient, new_org, token

REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id status amount { amount } } errors { code message } }
}"""
PAYMENT = """query($id: ID!) {
  payment(id: $id) { amountRefundable { amount } amountRefunded { amount }
    refunds { status amount { amount } } }
}"""
BALANCES = """query($id: ID!) { customer(id: $id) { creditBalances { amount currency } } }"""
LEDGER = """query($id: ID!, $currency: String!) {
  ledger(customerId: $id, currency: $currency) {
    customerId currency
    balances { account balance { amount } }
    entries(first: 100) {
      totalCount
      edges { node { transactionId account kind amount { amount } invoiceId paymentId } }
    }
  }
}"""


async def refund(client: GraphQLClient, payment_id: str, amount: int | None = None) -> Any:
    value = {"amount": amount, "currency": "USD"} if amount is not None else None
    variables = {
        "input": {
            "paymentId": payment_id,
            "amount": value,
            "reason": "REQUESTED_BY_CUSTOMER",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    return (await client.data(REFUND, variables))["refundCreate"]


async def credit_balance(admin: GraphQLClient, customer_id: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = (await admin.data(BALANCES, {"id": customer_id}))["customer"][
        "creditBalances"
    ]
    return found


async def paid_invoice(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
    amount: int,
    **customer: Any,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    owner = await customer_factory(**customer)
    await with_card(admin, owner, "pm_card_visa")
    invoice = await invoice_factory(
        customer=owner, lines=[{"description": "Plan", "unitAmount": amount}], finalize=True
    )
    paid = await pay(admin, invoice["id"])
    assert paid["errors"] == [], paid["errors"]
    return owner, paid["invoice"], paid["invoice"]["payment"]["id"]


async def test_a_credit_to_the_balance_comes_out_of_what_the_payment_may_refund(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    owner, invoice, payment_id = await paid_invoice(
        admin, customer_factory, invoice_factory, 10_000
    )
    note = await credit(admin, invoice["id"], 4_000)
    assert note["errors"] == []
    assert note["creditNote"]["creditedToBalance"] == {"amount": "4000"}
    assert await credit_balance(admin, owner["id"]) == [{"amount": "4000", "currency": "USD"}]
    shown = (await admin.data(PAYMENT, {"id": payment_id}))["payment"]
    assert shown["amountRefundable"] == {"amount": "6000"}
    # 40.00 went to the balance: refunding all 100.00 would return 140.00 on a 100.00 sale.
    too_much = await refund(admin, payment_id, 10_000)
    assert [e["code"] for e in too_much["errors"]] == ["AMOUNT_EXCEEDS_REFUNDABLE"]
    assert too_much["errors"][0]["message"].startswith(
        "At most 60.00 USD of this payment is still refundable"
    )
    rest = await refund(admin, payment_id)
    assert rest["errors"] == []
    assert (rest["refund"]["status"], rest["refund"]["amount"]) == ("SUCCEEDED", {"amount": "6000"})
    # And a refund first shrinks what a credit note may still credit.
    _, other, other_payment = await paid_invoice(admin, customer_factory, invoice_factory, 5_000)
    assert (await refund(admin, other_payment, 2_000))["errors"] == []
    over = await credit(admin, other["id"], 3_001)
    assert [e["code"] for e in over["errors"]] == ["AMOUNT_EXCEEDS_CREDITABLE"]
    assert (await credit(admin, other["id"], 3_000))["errors"] == []


async def test_a_refund_credit_note_pays_back_the_card_and_returns_the_rest_to_the_balance(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    owner = await customer_factory()
    await with_card(admin, owner, "pm_card_visa")
    # 10.00 of credit balance, from a credit invoice.
    credit_invoice = await invoice_factory(
        customer=owner, lines=[{"description": "Goodwill", "unitAmount": -1_000}], finalize=True
    )
    assert credit_invoice["status"] == "PAID"
    assert await credit_balance(admin, owner["id"]) == [{"amount": "1000", "currency": "USD"}]
    # An invoice of 30.00: 10.00 from the balance, 20.00 by card.
    invoice = await invoice_factory(
        customer=owner, lines=[{"description": "Plan", "unitAmount": 3_000}], finalize=True
    )
    assert (invoice["balanceApplied"]["amount"], invoice["amountDue"]["amount"]) == ("1000", "2000")
    paid = await pay(admin, invoice["id"])
    payment_id = paid["invoice"]["payment"]["id"]
    assert await credit_balance(admin, owner["id"]) == []

    note = (await credit(admin, invoice["id"], 3_000, settlement="REFUND"))["creditNote"]
    assert (note["refunded"], note["creditedToBalance"]) == ({"amount": "2000"}, {"amount": "1000"})
    shown = (await admin.data(PAYMENT, {"id": payment_id}))["payment"]
    assert shown["refunds"] == [{"status": "SUCCEEDED", "amount": {"amount": "2000"}}]
    assert shown["amountRefunded"] == {"amount": "2000"}
    assert shown["amountRefundable"] == {"amount": "0"}
    assert await credit_balance(admin, owner["id"]) == [{"amount": "1000", "currency": "USD"}]
    nothing = await refund(admin, payment_id)
    assert [e["code"] for e in nothing["errors"]] == ["AMOUNT_EXCEEDS_REFUNDABLE"]


async def test_credit_notes_in_pieces_give_back_exactly_the_invoices_tax(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await rate(admin, name="VAT", percentage="20", country="FR")
    owner = await customer_factory(address={"country": "FR", "city": "Paris"})
    invoice = await invoice_factory(
        customer=owner,
        currency="EUR",
        lines=[{"description": "Plan", "unitAmount": 9_999}],
        finalize=True,
    )
    assert (invoice["taxTotal"]["amount"], invoice["total"]["amount"]) == ("2000", "11999")
    notes = [
        (await credit(admin, invoice["id"], amount))["creditNote"]
        for amount in (3_333, 3_333, 3_333)
    ]
    assert [n["taxTotal"]["amount"] for n in notes] == ["667", "666", "667"]
    assert sum(int(n["total"]["amount"]) for n in notes) == 11_999
    assert notes[-1]["invoice"]["status"] == "PAID"
    assert notes[-1]["invoice"]["amountCredited"] == {"amount": "11999"}
    more = await credit(admin, invoice["id"], 1)
    assert [e["code"] for e in more["errors"]] == ["AMOUNT_EXCEEDS_CREDITABLE"]


async def test_a_once_coupon_waits_for_an_invoice_it_can_discount(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    owner = await customer_factory()
    made = await admin.data(
        """mutation($input: CouponCreateInput!) {
             couponCreate(input: $input) { coupon { id } errors { code } } }""",
        {
            "input": {
                "code": f"ONCE{uuid.uuid4().hex[:8]}",
                "name": "Once",
                "percentOff": "50",
                "duration": "ONCE",
            }
        },
    )
    coupon_id = made["couponCreate"]["coupon"]["id"]
    applied = await admin.data(
        """mutation($input: CouponApplyInput!) {
             couponApply(input: $input) { discount { id } errors { code } } }""",
        {"input": {"customerId": owner["id"], "couponId": coupon_id}},
    )
    assert applied["couponApply"]["errors"] == []
    credit_only = await invoice_factory(
        customer=owner, lines=[{"description": "Refund", "unitAmount": -500}], finalize=True
    )
    assert credit_only["discountTotal"] == {"amount": "0"}
    real = await invoice_factory(
        customer=owner, lines=[{"description": "Plan", "unitAmount": 2_000}], finalize=True
    )
    assert real["discountTotal"] == {"amount": "1000"}
    after = await invoice_factory(
        customer=owner, lines=[{"description": "Plan", "unitAmount": 2_000}], finalize=True
    )
    assert after["discountTotal"] == {"amount": "0"}


async def test_the_ledger_shows_every_movement_balanced(
    admin: GraphQLClient,
    http: Any,
    settings: Any,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    owner, invoice, payment_id = await paid_invoice(
        admin, customer_factory, invoice_factory, 10_000
    )
    await credit(admin, invoice["id"], 2_500)
    assert (await refund(admin, payment_id, 1_000))["errors"] == []
    ledger = (await admin.data(LEDGER, {"id": owner["id"], "currency": "USD"}))["ledger"]
    entries = [e["node"] for e in ledger["entries"]["edges"]]
    assert ledger["entries"]["totalCount"] == len(entries)
    by_transaction: dict[str, int] = {}
    for entry in entries:
        by_transaction[entry["transactionId"]] = by_transaction.get(
            entry["transactionId"], 0
        ) + int(entry["amount"]["amount"])
    assert set(by_transaction.values()) == {0}
    kinds = [(e["kind"], e["account"], e["amount"]["amount"]) for e in entries]
    assert kinds == [
        ("INVOICE_FINALIZED", "RECEIVABLE", "10000"),
        ("INVOICE_FINALIZED", "REVENUE", "-10000"),
        ("PAYMENT", "CASH", "10000"),
        ("PAYMENT", "RECEIVABLE", "-10000"),
        ("CREDIT_NOTE", "REVENUE", "2500"),
        ("CREDIT_NOTE", "CUSTOMER_CREDIT", "-2500"),
        ("REFUND", "REVENUE", "1000"),
        ("REFUND", "CASH", "-1000"),
    ]
    balances = {b["account"]: b["balance"]["amount"] for b in ledger["balances"]}
    assert balances["CASH"] == "9000"
    assert balances["CUSTOMER_CREDIT"] == "-2500"
    assert balances["RECEIVABLE"] == "0"
    assert balances["REVENUE"] == "-6500"
    # A customer sees its own side of the books only; another customer's is null.
    mine = GraphQLClient(http, token(settings, org, "customer", sub=owner["id"]))
    seen = (await mine.data(LEDGER, {"id": owner["id"], "currency": "USD"}))["ledger"]
    accounts = {e["node"]["account"] for e in seen["entries"]["edges"]}
    assert accounts == {"RECEIVABLE", "CASH", "CUSTOMER_CREDIT"}
    assert [b["account"] for b in seen["balances"]] == [
        "RECEIVABLE",
        "CUSTOMER_CREDIT",
        "CASH",
        "REFUNDS_PAYABLE",
    ]
    other = await customer_factory()
    assert (await mine.data(LEDGER, {"id": other["id"], "currency": "USD"}))["ledger"] is None


async def test_voiding_undoes_everything_an_invoice_moved(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    owner = await customer_factory()
    await invoice_factory(
        customer=owner, lines=[{"description": "Credit", "unitAmount": -700}], finalize=True
    )
    invoice = await invoice_factory(
        customer=owner, lines=[{"description": "Plan", "unitAmount": 2_000}], finalize=True
    )
    assert invoice["balanceApplied"] == {"amount": "700"}
    assert await credit_balance(admin, owner["id"]) == []
    voided = await admin.data(
        """mutation($input: InvoiceVoidInput!) {
             invoiceVoid(input: $input) { invoice { status } errors { code } } }""",
        {"input": {"invoiceId": invoice["id"]}},
    )
    assert voided["invoiceVoid"]["invoice"]["status"] == "VOID"
    assert await credit_balance(admin, owner["id"]) == [{"amount": "700", "currency": "USD"}]
    ledger = (await admin.data(LEDGER, {"id": owner["id"], "currency": "USD"}))["ledger"]
    balances = {b["account"]: int(b["balance"]["amount"]) for b in ledger["balances"]}
    assert balances["RECEIVABLE"] == 0
    assert balances["REVENUE"] == 700  # only the credit invoice is left
    assert balances["CUSTOMER_CREDIT"] == -700


@pytest.fixture
async def fresh_db(database_factory: Callable[[], Any]) -> Any:
    url = await database_factory()
    await apply_migrations(url)
    db = Database(url, min_size=1, max_size=2)
    await db.connect()
    yield url, db
    await db.disconnect()


async def _customer(url: str, org: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        customer_id = f"cus_{uuid.uuid4().hex[:26]}"
        await conn.execute(
            "INSERT INTO customers (organization_id, id, email, name) "
            "VALUES ($1, $2, 'a@example.com', 'A')",
            org,
            customer_id,
        )
    finally:
        await conn.close()
    return customer_id


async def test_the_database_refuses_unbalanced_or_edited_entries(fresh_db: Any) -> None:
    url, _ = fresh_db
    org = new_org()
    customer_id = await _customer(url, org)
    conn = await asyncpg.connect(url)
    insert = (
        "INSERT INTO ledger_entries (organization_id, id, transaction_id, customer_id, currency,"
        " account, amount, kind, occurred_at) VALUES ($1, $2, $3, $4, 'USD', $5, $6, 'payment',"
        " now())"
    )
    try:
        unbalanced = conn.transaction()
        await unbalanced.start()
        await conn.execute(insert, org, "le_a", "lt_1", customer_id, "cash", 100)
        await conn.execute(insert, org, "le_b", "lt_1", customer_id, "revenue", -95)
        with pytest.raises(asyncpg.CheckViolationError, match="does not balance: off by 5"):
            await unbalanced.commit()
        async with conn.transaction():
            await conn.execute(insert, org, "le_c", "lt_2", customer_id, "cash", 100)
            await conn.execute(insert, org, "le_d", "lt_2", customer_id, "revenue", -100)
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("UPDATE ledger_entries SET amount = 1 WHERE id = 'le_c'")
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute("DELETE FROM ledger_entries WHERE id = 'le_c'")
    finally:
        await conn.close()


async def test_verify_reports_books_that_disagree(fresh_db: Any, tmp_path: Any) -> None:
    url, db = fresh_db
    org = new_org()
    customer_id = await _customer(url, org)
    assert await verify(db) == []
    conn = await asyncpg.connect(url)
    try:
        # A credit balance that no entry explains: minted out of nothing.
        await conn.execute(
            "INSERT INTO customer_balances (organization_id, customer_id, currency, balance) "
            "VALUES ($1, $2, 'USD', 4000)",
            org,
            customer_id,
        )
    finally:
        await conn.close()
    (violation,) = await verify(db)
    assert violation.check == "credit balances"
    assert violation.row == {
        "organization_id": org,
        "customer_id": customer_id,
        "currency": "USD",
        "stored": 4000,
        "from_entries": 0,
    }
    assert await verify(db, org="another") == []
    # The command prints it and exits 1.
    result = subprocess.run(  # noqa: ASYNC221 - a short child process, bounded by its timeout
        [sys.executable, "-m", "app.cli", "verify"],
        env={**os.environ, "DATABASE_URL": url, "BILLING_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"credit balances: organization_id={org}" in result.stdout
    assert result.stdout.strip().endswith("invariants checked: 1 violation(s).")


@pytest.mark.parametrize(("credited", "unused"), [(2_000, 0), (1_000, 500), (0, 1_000)])
async def test_time_given_back_by_a_credit_note_is_not_credited_again_as_unused(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    credited: int,
    unused: int,
) -> None:
    """A month paid 20.00, then a credit note of ``credited`` to the balance on its invoice,
    then an immediate cancellation at mid-month: the unused half is credited only for the
    share of the invoice the organization kept (all given back: nothing more)."""
    start = datetime(2027, 4, 1, tzinfo=UTC)
    await advance(admin, start)
    plan = await plan_factory(price={"amount": 2_000, "currency": "USD"})
    owner = await customer_factory()
    await with_card(admin, owner, "pm_card_visa")
    sub = await subscribe(admin, customerId=owner["id"], planId=plan["id"], trialDays=0)
    assert sub["status"] == "ACTIVE"
    if credited:
        assert (await credit(admin, sub["latestInvoiceId"], credited))["errors"] == []
    await advance(admin, start + timedelta(days=15))
    done = await admin.data(CANCEL, {"input": {"id": sub["id"], "atPeriodEnd": False}})
    assert done["subscriptionCancel"]["errors"] == []
    total = credited + unused
    expected = [{"amount": str(total), "currency": "USD"}] if total else []
    assert await credit_balance(admin, owner["id"]) == expected

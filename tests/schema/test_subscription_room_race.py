"""A refund that lands between an immediate cancellation's commit and the billing of its final
invoice sees the credit for unused time already given (the final invoice is issued in the
cancellation's transaction), so the two never give back more than was paid. Before, the credit
existed only as reserved lines until the invoice was issued after the commit, and a full refund
in that moment took everything: 1.00 refunded + 0.96 credited for a 1.00 payment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.schema.test_subscriptions_api import (  # noqa: F401 - paying_customer: a fixture
    CANCEL,
    CREATE,
    JAN_31,
    advance,
    balances_of,
    paying_customer,
)
from tests.support import GraphQLClient

PAYMENTS = """query($id: ID!) { customer(id: $id) {
  payments(first: 10) { edges { node { id amountRefundable { amount } } } } } }"""
REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id status amount { amount } } errors { code } } }"""


async def test_a_refund_between_the_cancellation_and_its_final_invoice_sees_the_credit(
    admin: GraphQLClient,
    app_services: Any,
    plan_factory: Callable[..., Any],
    paying_customer: Callable[..., Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await advance(admin, JAN_31)
    plan = await plan_factory(price={"amount": 100, "currency": "USD"})
    customer = await paying_customer()
    created = await admin.data(
        CREATE,
        {
            "input": {
                "customerId": customer["id"],
                "planId": plan["id"],
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    sub = created["subscriptionCreate"]["subscription"]
    assert sub["status"] == "ACTIVE"
    await advance(admin, JAN_31 + timedelta(days=1))
    payments = (await admin.data(PAYMENTS, {"id": customer["id"]}))["customer"]["payments"]
    (payment,) = [edge["node"] for edge in payments["edges"]]

    service = app_services.subscriptions
    real_bill_final = service._bill_final
    refunds: list[dict[str, Any]] = []

    async def refund_first(row: Any, lines: Any) -> Any:
        # The cancellation has committed; a full refund arrives before its final invoice.
        made = await admin.data(
            REFUND,
            {
                "input": {
                    "paymentId": payment["id"],
                    "reason": "REQUESTED_BY_CUSTOMER",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
        refunds.append(made["refundCreate"])
        return await real_bill_final(row, lines)

    monkeypatch.setattr(service, "_bill_final", refund_first)
    canceled = await admin.data(
        CANCEL, {"input": {"id": sub["id"], "atPeriodEnd": False, "prorate": True}}
    )
    assert canceled["subscriptionCancel"]["errors"] == []
    (refund,) = refunds
    credit = sum(int(b["amount"]) for b in await balances_of(admin, customer["id"]))
    refunded = int(refund["refund"]["amount"]["amount"]) if refund["refund"] else 0
    assert credit > 0  # most of the month was unused
    assert refunded + credit == 100, (refunded, credit)

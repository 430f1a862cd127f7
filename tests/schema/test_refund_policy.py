"""The refund approval threshold applies to what a payment has refunded in all, and customer
tokens never see staff identities or staff notes on refunds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from app.core.settings import Settings
from tests.schema.test_refunds_api import (
    APPROVE,
    GET,
    PAYMENT,
    REJECT,
    key,
    refund,
    set_thresholds,
    stripe_refunds,
)
from tests.support import GraphQLClient, token

STAFF_FIELDS = (
    "id status note requestedBy approvedBy approvedAt rejectedBy rejectedAt rejectionReason"
)
THROUGH_PAYMENT = f"query($id: ID!) {{ payment(id: $id) {{ refunds {{ {STAFF_FIELDS} }} }} }}"
ONE = f"query($id: ID!) {{ refund(id: $id) {{ {STAFF_FIELDS} }} }}"
LIST = f"{{ refunds {{ edges {{ node {{ {STAFF_FIELDS} }} }} }} }}"


async def test_the_threshold_applies_to_the_cumulative_amount_refunded(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    assert (await set_thresholds(admin, {"amount": 1000, "currency": "USD"}))["errors"] == []
    payment = await payment_factory(confirm=True)
    made = [(await refund(admin, payment["id"], 1000))["refund"] for _ in range(3)]
    assert [r["status"] for r in made] == ["SUCCEEDED", "PENDING_APPROVAL", "PENDING_APPROVAL"]
    assert [r["amount"] for r in await stripe_refunds(settings, payment)] == [1000]
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert (state["amountRefunded"], state["amountRefundable"]) == (
        {"amount": "1000"},
        {"amount": "7000"},
    )

    # Exactly at the threshold in all is not above it.
    other = await payment_factory(confirm=True)
    split = [(await refund(admin, other["id"], amount))["refund"] for amount in (600, 400, 1)]
    assert [r["status"] for r in split] == ["SUCCEEDED", "SUCCEEDED", "PENDING_APPROVAL"]

    # A rejected refund no longer counts: what is left under the threshold goes at once.
    third = await payment_factory(confirm=True)
    held = (await refund(admin, third["id"], 1500))["refund"]
    assert held["status"] == "PENDING_APPROVAL"
    await admin.data(REJECT, {"input": {"refundId": held["id"], "reason": "too much"}})
    assert (await refund(admin, third["id"], 1000))["refund"]["status"] == "SUCCEEDED"


async def test_concurrent_small_refunds_cannot_slip_under_the_threshold_together(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    await set_thresholds(admin, {"amount": 1000, "currency": "USD"})
    payment = await payment_factory(confirm=True)
    made = await asyncio.gather(*(refund(admin, payment["id"], 500) for _ in range(6)))
    statuses = sorted(m["refund"]["status"] for m in made)
    assert statuses == ["PENDING_APPROVAL"] * 4 + ["SUCCEEDED"] * 2
    assert sorted(r["amount"] for r in await stripe_refunds(settings, payment)) == [500, 500]


async def test_customers_never_see_staff_identities_or_notes(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> None:
    me = await customer_factory()
    payment = await payment_factory(customer=me, confirm=True)
    client = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))
    approver = GraphQLClient(http, token(settings, org, "admin", sub="approver@staff"))
    await set_thresholds(admin, {"amount": 0, "currency": "USD"})

    staff_made = (await refund(admin, payment["id"], 1000, note="internal: 3rd this month"))[
        "refund"
    ]
    await approver.data(APPROVE, {"input": {"refundId": staff_made["id"], "idempotencyKey": key()}})
    asked = (await refund(client, payment["id"], 2000, note="arrived broken"))["refund"]
    assert (asked["requestedBy"], asked["note"]) == (me["id"], "arrived broken")
    await approver.data(
        REJECT, {"input": {"refundId": asked["id"], "reason": "used for 6 months, flagged"}}
    )

    staff_view = {
        r["id"]: r
        for r in (await admin.data(THROUGH_PAYMENT, {"id": payment["id"]}))["payment"]["refunds"]
    }
    assert {k: staff_view[staff_made["id"]][k] for k in ("requestedBy", "approvedBy", "note")} == {
        "requestedBy": "test-admin",
        "approvedBy": "approver@staff",
        "note": "internal: 3rd this month",
    }
    assert (staff_view[asked["id"]]["rejectedBy"], staff_view[asked["id"]]["rejectionReason"]) == (
        "approver@staff",
        "used for 6 months, flagged",
    )

    hidden = {"requestedBy": None, "approvedBy": None, "note": None}
    nothing_of_staff = {"rejectedBy": None, "rejectionReason": None, "approvedBy": None}
    one = {
        r: (await client.data(ONE, {"id": r}))["refund"] for r in (staff_made["id"], asked["id"])
    }
    paid = (await client.data(THROUGH_PAYMENT, {"id": payment["id"]}))["payment"]["refunds"]
    listed = [e["node"] for e in (await client.data(LIST))["refunds"]["edges"]]
    for path, seen in (
        ("refund", one),
        ("payment.refunds", {r["id"]: r for r in paid}),
        ("refunds", {r["id"]: r for r in listed}),
    ):
        mine, theirs = seen[asked["id"]], seen[staff_made["id"]]
        assert {k: theirs[k] for k in hidden} == hidden, path
        assert (theirs["status"], theirs["approvedAt"] is not None) == ("SUCCEEDED", True), path
        assert {k: mine[k] for k in nothing_of_staff} == nothing_of_staff, path
        assert (mine["requestedBy"], mine["note"], mine["status"]) == (
            me["id"],
            "arrived broken",
            "REJECTED",
        ), path
        assert mine["rejectedAt"] is not None, path
    assert (await client.data(GET, {"id": asked["id"]}))["refund"]["requestedBy"] == me["id"]

"""Relay's Node: `node(id:)` and `nodes(ids:)` fetch any object by its id, with exactly the
scoping of the typed queries (another organization's or another customer's object is null)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from app.core.settings import Settings
from tests.support import GraphQLClient, error_codes, new_org, token

NODE = """query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Payment { amount { amount currency } customer { id } }
    ... on Customer { email }
    ... on Plan { code }
    ... on Refund { refundStatus: status }
    ... on Invoice { invoiceStatus: status }
    ... on Subscription { subscriptionStatus: status }
    ... on CreditNote { number }
  }
}"""
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
SUBSCRIBE = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id } errors { code } } }"""
REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id } errors { code } } }"""


async def _node(client: GraphQLClient, node_id: str) -> Any:
    return (await client.data(NODE, {"id": node_id}))["node"]


async def test_node_fetches_every_kind_of_object_as_its_typed_query_would(
    admin: GraphQLClient,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    payment_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    plan = await plan_factory(trialDays=7)
    customer = await customer_factory()
    payment = await payment_factory(customer=customer, confirm=True)
    invoice = await invoice_factory(customer=customer)
    subscribed = await admin.data(
        SUBSCRIBE,
        {
            "input": {
                "customerId": customer["id"],
                "planId": plan["id"],
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    subscription_id = subscribed["subscriptionCreate"]["subscription"]["id"]
    refunded = await admin.data(
        REFUND,
        {
            "input": {
                "paymentId": payment["id"],
                "amount": {"amount": 100, "currency": "USD"},
                "reason": "REQUESTED_BY_CUSTOMER",
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    refund_id = refunded["refundCreate"]["refund"]["id"]

    expected = {
        plan["id"]: ("Plan", "code", plan["code"]),
        customer["id"]: ("Customer", "email", customer["email"]),
        payment["id"]: ("Payment", "amount", {"amount": "10000", "currency": "USD"}),
        invoice["id"]: ("Invoice", "invoiceStatus", invoice["status"]),
        subscription_id: ("Subscription", "subscriptionStatus", "TRIALING"),
        refund_id: ("Refund", "refundStatus", "SUCCEEDED"),
    }
    for node_id, (typename, field, value) in expected.items():
        found = await _node(admin, node_id)
        assert (found["__typename"], found["id"], found[field]) == (typename, node_id, value)
    assert (await _node(admin, payment["id"]))["customer"] == {"id": customer["id"]}

    ids = [*expected, "pay_doesnotexist0000000000", "nope", plan["id"]]
    listed = (await admin.data(NODES, {"ids": ids}))["nodes"]
    assert [n and n["id"] for n in listed] == [*expected, None, None, plan["id"]]


async def test_another_organizations_or_customers_objects_are_null(
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    payment_factory: Callable[..., Any],
) -> None:
    mine, theirs = await customer_factory(), await customer_factory()
    my_payment = await payment_factory(customer=mine)
    their_payment = await payment_factory(customer=theirs)
    me = GraphQLClient(http, token(settings, org, "customer", sub=mine["id"]))
    assert (await _node(me, my_payment["id"]))["id"] == my_payment["id"]
    assert await _node(me, their_payment["id"]) is None
    assert await _node(me, theirs["id"]) is None
    stranger = GraphQLClient(http, token(settings, new_org(), "admin"))
    assert await _node(stranger, my_payment["id"]) is None
    assert (await stranger.data(NODES, {"ids": [mine["id"], my_payment["id"]]}))["nodes"] == [
        None,
        None,
    ]
    anonymous = await GraphQLClient(http)(NODE, {"id": my_payment["id"]})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]


async def test_nodes_takes_at_most_a_hundred_ids(admin: GraphQLClient) -> None:
    body = await admin(NODES, {"ids": [f"pay_{n:026d}" for n in range(101)]})
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "at most 100" in body["errors"][0]["message"]


# The refetch query Relay Compiler 21.0.1 generates for
# `fragment PlanCard_plan on Plan @refetchable(queryName: "PlanCardRefetchQuery")`.
RELAY_REFETCH = (
    "query PlanCardRefetchQuery(\n  $id: ID!\n) {\n  node(id: $id) {\n    __typename\n"
    "    ...PlanCard_plan\n    id\n  }\n}\n\nfragment PlanCard_plan on Plan {\n  id\n  code\n"
    "  name\n  price {\n    amount\n    currency\n  }\n}\n"
)


async def test_relays_refetch_query_runs(
    admin: GraphQLClient, plan_factory: Callable[..., Any]
) -> None:
    plan = await plan_factory(price={"amount": 4200, "currency": "EUR"})
    found = (await admin.data(RELAY_REFETCH, {"id": plan["id"]}))["node"]
    assert found == {
        "__typename": "Plan",
        "id": plan["id"],
        "code": plan["code"],
        "name": plan["name"],
        "price": {"amount": "4200", "currency": "EUR"},
    }


CATALOG_NODE = """query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Coupon { code }
    ... on TaxRate { country }
    ... on BillableMetric { code aggregation active }
  }
}"""


async def test_catalog_nodes_are_for_staff(
    admin: GraphQLClient, settings: Settings, org: str, customer_factory: Callable[..., Any]
) -> None:
    coupon = (
        await admin.data(
            'mutation { couponCreate(input: {code: "NODE", name: "N", duration: ONCE, '
            'percentOff: "5"}) { coupon { id } } }'
        )
    )["couponCreate"]["coupon"]
    rate = (
        await admin.data(
            'mutation { taxRateCreate(input: {name: "VAT", percentage: "20", '
            'country: "DE"}) { taxRate { id } } }'
        )
    )["taxRateCreate"]["taxRate"]
    metric = (
        await admin.data(
            'mutation { billableMetricCreate(input: {code: "calls", name: "Calls", '
            "aggregation: COUNT}) { billableMetric { id } } }"
        )
    )["billableMetricCreate"]["billableMetric"]
    ids = [coupon["id"], rate["id"], metric["id"], "bm_notanid", "coup_" + "0" * 26]
    found = (await admin.data(CATALOG_NODE, {"ids": ids}))["nodes"]
    assert found[:3] == [
        {"__typename": "Coupon", "id": coupon["id"], "code": "NODE"},
        {"__typename": "TaxRate", "id": rate["id"], "country": "DE"},
        {
            "__typename": "BillableMetric",
            "id": metric["id"],
            "code": "calls",
            "aggregation": "COUNT",
            "active": True,
        },
    ]
    assert found[3:] == [None, None]
    customer = await customer_factory()
    as_customer = admin.as_(token(settings, org, "customer", sub=customer["id"]))
    assert (await as_customer.data(CATALOG_NODE, {"ids": ids[:3]}))["nodes"] == [None] * 3


PARTS = """query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on InvoiceLine { description }
    ... on LedgerEntry { transactionId }
    ... on Organization { customerCanPause }
  }
}"""


async def test_lines_entries_and_the_organization_are_nodes_for_whom_may_see_them(
    admin: GraphQLClient,
    settings: Settings,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    invoice = await invoice_factory(
        customer=customer, lines=[{"description": "Setup", "unitAmount": 900}], finalize=True
    )
    line_id = (
        await admin.data(
            "query($id: ID!) { invoice(id: $id) { lines { id } } }", {"id": invoice["id"]}
        )
    )["invoice"]["lines"][0]["id"]
    entry_id = (
        await admin.data(
            'query($id: ID!) { ledger(customerId: $id, currency: "USD") '
            "{ entries(first: 1) { edges { node { id } } } } }",
            {"id": customer["id"]},
        )
    )["ledger"]["entries"]["edges"][0]["node"]["id"]
    ids = [line_id, entry_id, org]
    found = (await admin.data(PARTS, {"ids": ids}))["nodes"]
    assert [(n["__typename"], n["id"]) for n in found] == [
        ("InvoiceLine", line_id),
        ("LedgerEntry", entry_id),
        ("Organization", org),
    ]
    assert found[0]["description"] == "Setup"
    # The invoice's customer sees its line only; nobody else sees any of them.
    owner = admin.as_(token(settings, org, "customer", sub=customer["id"]))
    assert [n and n["__typename"] for n in (await owner.data(PARTS, {"ids": ids}))["nodes"]] == [
        "InvoiceLine",
        None,
        None,
    ]
    other = admin.as_(token(settings, org, "customer", sub=(await customer_factory())["id"]))
    assert (await other.data(PARTS, {"ids": ids}))["nodes"] == [None, None, None]
    stranger = admin.as_(token(settings, new_org(), "admin"))
    assert (await stranger.data(PARTS, {"ids": ids}))["nodes"] == [None, None, None]


async def test_keys_and_audit_entries_are_nodes_for_admins(
    admin: GraphQLClient, settings: Settings, org: str
) -> None:
    made = await admin.data(
        'mutation { apiKeyCreate(input: {name: "node", role: SERVICE}) '
        "{ apiKey { id } errors { code } } }"
    )
    key_id = made["apiKeyCreate"]["apiKey"]["id"]
    entry_id = (await admin.data("{ auditLog(last: 1) { edges { node { id } } } }"))["auditLog"][
        "edges"
    ][0]["node"]["id"]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
    found = (await admin.data(query, {"ids": [key_id, entry_id]}))["nodes"]
    assert [n["__typename"] for n in found] == ["ApiKey", "AuditEntry"]
    service = admin.as_(token(settings, org, "service"))
    assert (await service.data(query, {"ids": [key_id, entry_id]}))["nodes"] == [None, None]

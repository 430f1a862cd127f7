"""The authorization matrix: one entry per root field, saying who may call it and how.

`tests/security/test_authorization_matrix.py` fails when the schema has a root field without an
entry here, so every new operation must state its rule (and gets checked against every kind of
caller). Keep entries short: a document, its variables from the `World`, and the roles allowed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.core.pubsub import Event, publish
from tests.conftest import (
    CONFIRM_PAYMENT,
    CREATE_CUSTOMER,
    CREATE_INVOICE,
    CREATE_PAYMENT,
    CREATE_PLAN,
    FINALIZE_INVOICE,
)
from tests.support import GraphQLClient

ADMIN, SERVICE, OWNER = "admin", "service", "customer"
EVERYONE = frozenset({ADMIN, SERVICE, OWNER})
STAFF = frozenset({ADMIN, SERVICE})


@dataclass
class World:
    """Data that exists in organization A: a plan and two customers (the owner and another)."""

    org: str
    plan: dict[str, Any]
    owner: dict[str, Any]
    other: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Values that must never reach a caller without the right to them."""
        return [self.plan["id"], self.owner["id"], self.other["id"], *self.extra.values()]

    def owner_secrets(self) -> list[str]:
        """Values only the owner (and staff) may see."""
        return [self.owner["id"], self.owner["email"]]


Variables = Callable[[World], dict[str, Any]]
# Makes the data a case needs (kept in ``World.extra``), with a client per role of organization A.
Prepare = Callable[[World, dict[str, GraphQLClient]], Awaitable[None]]
# Publishes a live event through the app's services (see ``Case.trigger``).
Trigger = Callable[[World, Any], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    document: str
    variables: Variables = lambda world: {}
    allowed: frozenset[str] = EVERYONE
    public: bool = False
    # Creates something new without naming existing data: another organization's admin may
    # run it (in its own tenant); it must still not touch organization A.
    creates: bool = False
    # The response a right caller gets must contain this value (from the World), if given.
    expect: Callable[[World], str] | None = None
    subscription: bool = False
    prepare: Prepare | None = None
    # A subscription that sends only on events: makes one (without writing anything) once
    # subscribed; called again until the first message arrives.
    trigger: Trigger | None = None
    # Writes what no GraphQL operation makes (after ``prepare``), through the app's services.
    seed: Trigger | None = None


PLAN_ID = "query($id: ID!) { plan(id: $id) { id name } }"
CUSTOMER_ID = "query($id: ID!) { customer(id: $id) { id email } }"

CASES: dict[str, Case] = {
    "Query.serviceInfo": Case("{ serviceInfo { name } }", public=True),
    "Query.plan": Case(PLAN_ID, lambda w: {"id": w.plan["id"]}, expect=lambda w: w.plan["id"]),
    "Query.plans": Case("{ plans { edges { node { id } } } }", expect=lambda w: w.plan["id"]),
    "Query.customer": Case(
        CUSTOMER_ID, lambda w: {"id": w.owner["id"]}, expect=lambda w: w.owner["id"]
    ),
    "Query.customers": Case(
        "{ customers { edges { node { id email } } } }", expect=lambda w: w.owner["id"]
    ),
    "Mutation.planCreate": Case(
        CREATE_PLAN,
        lambda w: {
            "input": {
                "code": "matrix",
                "name": "Matrix",
                "tier": "BASIC",
                "price": {"amount": 100, "currency": "USD"},
                "interval": "MONTH",
            }
        },
        allowed=frozenset({ADMIN}),
        creates=True,
    ),
    "Mutation.planUpdate": Case(
        "mutation($input: PlanUpdateInput!) { planUpdate(input: $input) "
        "{ plan { id name } errors { code } } }",
        lambda w: {"input": {"id": w.plan["id"], "name": "Renamed"}},
        allowed=frozenset({ADMIN}),
        expect=lambda w: w.plan["id"],
    ),
    "Mutation.planArchive": Case(
        "mutation($id: ID!) { planArchive(input: {id: $id}) { plan { id } errors { code } } }",
        lambda w: {"id": w.plan["id"]},
        allowed=frozenset({ADMIN}),
        expect=lambda w: w.plan["id"],
    ),
    "Mutation.customerCreate": Case(
        CREATE_CUSTOMER,
        lambda w: {"input": {"email": "matrix@example.com"}},
        allowed=STAFF,
        creates=True,
    ),
    "Mutation.customerUpdate": Case(
        "mutation($input: CustomerUpdateInput!) { customerUpdate(input: $input) "
        "{ customer { id email } errors { code } } }",
        lambda w: {"input": {"id": w.owner["id"], "name": "Renamed"}},
        allowed=STAFF,
        expect=lambda w: w.owner["id"],
    ),
    "Mutation.customerSetDefaultPaymentMethod": Case(
        "mutation($input: CustomerSetDefaultPaymentMethodInput!) { "
        "customerSetDefaultPaymentMethod(input: $input) { customer { id } errors { code } } }",
        lambda w: {"input": {"customerId": w.owner["id"], "paymentMethodId": "pm_card_visa"}},
        expect=lambda w: w.owner["id"],
    ),
    "Live.heartbeat": Case("subscription { heartbeat(intervalSeconds: 1) }", subscription=True),
}


async def _payment(
    world: World, clients: dict[str, GraphQLClient], name: str, *, confirm: bool, **extra: Any
) -> None:
    """A payment of the owner, stored as ``world.extra[name]``."""
    admin = clients[ADMIN]
    variables = {
        "input": {
            "customerId": world.owner["id"],
            "amount": {"amount": 5000, "currency": "USD"},
            "paymentMethodId": "pm_card_visa",
            "idempotencyKey": str(uuid.uuid4()),
            **extra,
        }
    }
    payment = (await admin.data(CREATE_PAYMENT, variables))["paymentIntentCreate"]["payment"]
    if confirm:
        key = str(uuid.uuid4())
        await admin.data(
            CONFIRM_PAYMENT, {"input": {"paymentId": payment["id"], "idempotencyKey": key}}
        )
    world.extra[name] = payment["id"]


REFUND_CREATE = (
    "mutation($input: RefundCreateInput!) { refundCreate(input: $input) "
    "{ refund { id status } errors { code } } }"
)


async def _paid(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _payment(world, clients, "payment", confirm=True)


async def _unconfirmed(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _payment(world, clients, "unconfirmed", confirm=False)


async def _authorized(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _payment(world, clients, "authorized", confirm=True, captureMethod="MANUAL")


async def _refunded(world: World, clients: dict[str, GraphQLClient], *, by: str = ADMIN) -> None:
    """A refund of the owner's paid payment: sent to Stripe when an admin asks, held for
    approval when the owner does."""
    await _paid(world, clients)
    variables = {
        "input": {
            "paymentId": world.extra["payment"],
            "amount": {"amount": 1000, "currency": "USD"},
            "reason": "REQUESTED_BY_CUSTOMER",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    made = (await clients[by].data(REFUND_CREATE, variables))["refundCreate"]["refund"]
    world.extra["refund"] = made["id"]


async def _held(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _refunded(world, clients, by=OWNER)


def _key(world: World) -> str:
    return f"matrix-{world.org}"


def _mutation(name: str, input_type: str, out: str) -> str:
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {out} }}"


PAYMENT_OUT = "{ payment { id } errors { code } }"
REFUND_OUT = "{ refund { id } errors { code } }"

CASES.update(
    {
        "Query.ledger": Case(
            'query($id: ID!) { ledger(customerId: $id, currency: "USD") { customerId '
            "balances { account balance { amount } } entries { edges { node { id paymentId } } } "
            "} }",
            lambda w: {"id": w.owner["id"]},
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Query.payment": Case(
            "query($id: ID!) { payment(id: $id) { id customerId } }",
            lambda w: {"id": w.extra["payment"]},
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Query.payments": Case(
            "{ payments { edges { node { id customer { email } } } summary { count } } }",
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Query.node": Case(
            "query($id: ID!) { node(id: $id) { id ... on Payment { customerId } } }",
            lambda w: {"id": w.extra["payment"]},
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Query.nodes": Case(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Customer { email } } }",
            lambda w: {"ids": [w.extra["payment"], w.owner["id"]]},
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Query.refund": Case(
            "query($id: ID!) { refund(id: $id) { id paymentId } }",
            lambda w: {"id": w.extra["refund"]},
            prepare=_refunded,
            expect=lambda w: w.extra["refund"],
        ),
        "Query.refunds": Case(
            "{ refunds { edges { node { id payment { id } } } } }",
            prepare=_refunded,
            expect=lambda w: w.extra["refund"],
        ),
        "Query.organization": Case(
            "{ organization { id refundApprovalThresholds { amount currency } } }",
            allowed=frozenset({ADMIN}),
        ),
        "Mutation.paymentIntentCreate": Case(
            _mutation("paymentIntentCreate", "PaymentIntentCreateInput", PAYMENT_OUT),
            lambda w: {
                "input": {
                    "customerId": w.owner["id"],
                    "amount": {"amount": 700, "currency": "EUR"},
                    "idempotencyKey": _key(w),
                }
            },
        ),
        "Mutation.paymentIntentConfirm": Case(
            _mutation("paymentIntentConfirm", "PaymentIntentConfirmInput", PAYMENT_OUT),
            lambda w: {"input": {"paymentId": w.extra["unconfirmed"], "idempotencyKey": _key(w)}},
            prepare=_unconfirmed,
            expect=lambda w: w.extra["unconfirmed"],
        ),
        "Mutation.paymentCapture": Case(
            _mutation("paymentCapture", "PaymentCaptureInput", PAYMENT_OUT),
            lambda w: {"input": {"paymentId": w.extra["authorized"], "idempotencyKey": _key(w)}},
            allowed=STAFF,
            prepare=_authorized,
            expect=lambda w: w.extra["authorized"],
        ),
        "Mutation.paymentCancel": Case(
            _mutation("paymentCancel", "PaymentCancelInput", PAYMENT_OUT),
            lambda w: {"input": {"paymentId": w.extra["unconfirmed"], "idempotencyKey": _key(w)}},
            allowed=STAFF,
            prepare=_unconfirmed,
            expect=lambda w: w.extra["unconfirmed"],
        ),
        "Mutation.paymentRefresh": Case(
            _mutation("paymentRefresh", "PaymentRefreshInput", PAYMENT_OUT),
            lambda w: {"input": {"paymentId": w.extra["payment"]}},
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Mutation.refundCreate": Case(
            _mutation("refundCreate", "RefundCreateInput", REFUND_OUT),
            lambda w: {
                "input": {
                    "paymentId": w.extra["payment"],
                    "amount": {"amount": 100, "currency": "USD"},
                    "reason": "OTHER",
                    "idempotencyKey": _key(w),
                }
            },
            prepare=_paid,
        ),
        "Mutation.refundApprove": Case(
            _mutation("refundApprove", "RefundApproveInput", REFUND_OUT),
            lambda w: {"input": {"refundId": w.extra["refund"], "idempotencyKey": _key(w)}},
            allowed=frozenset({ADMIN}),
            prepare=_held,
            expect=lambda w: w.extra["refund"],
        ),
        "Mutation.refundReject": Case(
            _mutation("refundReject", "RefundRejectInput", REFUND_OUT),
            lambda w: {"input": {"refundId": w.extra["refund"], "reason": "not eligible"}},
            allowed=frozenset({ADMIN}),
            prepare=_held,
            expect=lambda w: w.extra["refund"],
        ),
        "Mutation.refundRefresh": Case(
            _mutation("refundRefresh", "RefundRefreshInput", REFUND_OUT),
            lambda w: {"input": {"refundId": w.extra["refund"]}},
            allowed=STAFF,
            prepare=_refunded,
            expect=lambda w: w.extra["refund"],
        ),
        "Mutation.organizationSettingsUpdate": Case(
            "mutation($input: OrganizationSettingsUpdateInput!) { organizationSettingsUpdate("
            "input: $input) { organization { id } errors { code } } }",
            lambda w: {"input": {"refundApprovalThresholds": [{"amount": 100, "currency": "USD"}]}},
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
    }
)


# -- invoices, credit notes, tax rates, coupons ---------------------------------------------

_POOL_SIZE = 8
_CURSORS: dict[tuple[str, str], int] = {}


def _take(world: World, name: str) -> str:
    """The next unused object of a pool made by ``prepare`` (``name0``, ``name1``, …): each call
    of a case that changes state acts on its own object, so every allowed caller can succeed."""
    index = _CURSORS.get((world.org, name), 0)
    _CURSORS[(world.org, name)] = index + 1
    return str(world.extra[f"{name}{index}"])


async def _invoice(
    world: World, clients: dict[str, GraphQLClient], *, finalize: bool, lines: int = 1
) -> dict[str, Any]:
    admin = clients[ADMIN]
    variables = {
        "input": {
            "customerId": world.owner["id"],
            "currency": "USD",
            "lines": [{"description": f"Item {n}", "unitAmount": 1000} for n in range(lines)],
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    invoice: dict[str, Any] = (await admin.data(CREATE_INVOICE, variables))["invoiceCreate"][
        "invoice"
    ]
    if finalize:
        done = await admin.data(FINALIZE_INVOICE, {"input": {"invoiceId": invoice["id"]}})
        invoice = done["invoiceFinalize"]["invoice"]
    return invoice


async def _one_open(world: World, clients: dict[str, GraphQLClient]) -> None:
    world.extra["invoice"] = (await _invoice(world, clients, finalize=True))["id"]


async def _open_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    for index in range(_POOL_SIZE):
        world.extra[f"open{index}"] = (await _invoice(world, clients, finalize=True))["id"]


async def _draft_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    for index in range(_POOL_SIZE):
        world.extra[f"draft{index}"] = (await _invoice(world, clients, finalize=False))["id"]


async def _draft_with_lines(world: World, clients: dict[str, GraphQLClient]) -> None:
    draft = await _invoice(world, clients, finalize=False, lines=_POOL_SIZE)
    world.extra["draft"] = draft["id"]
    for index, line in enumerate(draft["lines"]):
        world.extra[f"line{index}"] = line["id"]


async def _payable(world: World, clients: dict[str, GraphQLClient]) -> None:
    await clients[ADMIN].data(
        "mutation($input: CustomerSetDefaultPaymentMethodInput!) { "
        "customerSetDefaultPaymentMethod(input: $input) { errors { code } } }",
        {"input": {"customerId": world.owner["id"], "paymentMethodId": "pm_card_visa"}},
    )
    await _one_open(world, clients)


async def _credited(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _one_open(world, clients)
    variables = {
        "input": {
            "invoiceId": world.extra["invoice"],
            "lines": [{"description": "Goodwill", "unitAmount": 100}],
            "reason": "GOODWILL",
            "idempotencyKey": str(uuid.uuid4()),
        }
    }
    document = _mutation("creditNoteCreate", "CreditNoteCreateInput", NOTE_OUT)
    made = await clients[ADMIN].data(document, variables)
    world.extra["note"] = made["creditNoteCreate"]["creditNote"]["id"]


async def _tax_rate(world: World, clients: dict[str, GraphQLClient]) -> None:
    made = await clients[ADMIN].data(
        _mutation("taxRateCreate", "TaxRateCreateInput", "{ taxRate { id } errors { code } }"),
        {"input": {"name": "VAT", "percentage": "20", "country": "FR"}},
    )
    world.extra["rate"] = made["taxRateCreate"]["taxRate"]["id"]


async def _coupon(world: World, clients: dict[str, GraphQLClient]) -> None:
    made = await clients[ADMIN].data(
        _mutation("couponCreate", "CouponCreateInput", "{ coupon { id } errors { code } }"),
        {"input": {"code": "MATRIX", "name": "Matrix", "duration": "ONCE", "percentOff": "10"}},
    )
    world.extra["coupon"] = made["couponCreate"]["coupon"]["id"]


INVOICE_OUT = "{ invoice { id customerId status } errors { code } }"
NOTE_OUT = "{ creditNote { id invoiceId } errors { code } }"


def _owner(world: World) -> str:
    return str(world.owner["id"])


CASES.update(
    {
        "Query.invoice": Case(
            "query($id: ID!) { invoice(id: $id) { id number customerId } }",
            lambda w: {"id": w.extra["invoice"]},
            prepare=_one_open,
            expect=lambda w: w.extra["invoice"],
        ),
        "Query.invoices": Case(
            "{ invoices { edges { node { id customerId lines { id } } } } }",
            prepare=_one_open,
            expect=lambda w: w.extra["invoice"],
        ),
        "Query.invoiceSettings": Case(
            "{ invoiceSettings { numberPrefix issuerName } }", allowed=STAFF
        ),
        "Query.creditNote": Case(
            "query($id: ID!) { creditNote(id: $id) { id number customerId } }",
            lambda w: {"id": w.extra["note"]},
            prepare=_credited,
            expect=lambda w: w.extra["note"],
        ),
        "Query.creditNotes": Case(
            "{ creditNotes { edges { node { id customerId } } } }",
            prepare=_credited,
            expect=lambda w: w.extra["note"],
        ),
        "Query.taxRates": Case(
            "{ taxRates { edges { node { id } } } }",
            allowed=STAFF,
            prepare=_tax_rate,
            expect=lambda w: w.extra["rate"],
        ),
        "Query.coupons": Case(
            "{ coupons { edges { node { id code } } } }",
            allowed=STAFF,
            prepare=_coupon,
            expect=lambda w: w.extra["coupon"],
        ),
        "Mutation.invoiceCreate": Case(
            _mutation("invoiceCreate", "InvoiceCreateInput", INVOICE_OUT),
            lambda w: {
                "input": {
                    "customerId": w.owner["id"],
                    "currency": "USD",
                    "lines": [{"description": "Matrix", "unitAmount": 500}],
                    "idempotencyKey": _key(w),
                }
            },
            allowed=STAFF,
            expect=_owner,
        ),
        "Mutation.invoiceAddLine": Case(
            _mutation("invoiceAddLine", "InvoiceAddLineInput", INVOICE_OUT),
            lambda w: {
                "input": {
                    "invoiceId": w.extra["draft"],
                    "line": {"description": "More", "unitAmount": 100},
                }
            },
            allowed=STAFF,
            prepare=_draft_with_lines,
            expect=lambda w: w.extra["draft"],
        ),
        "Mutation.invoiceRemoveLine": Case(
            _mutation("invoiceRemoveLine", "InvoiceRemoveLineInput", INVOICE_OUT),
            lambda w: {"input": {"invoiceId": w.extra["draft"], "lineId": _take(w, "line")}},
            allowed=STAFF,
            prepare=_draft_with_lines,
            expect=lambda w: w.extra["draft"],
        ),
        "Mutation.invoiceFinalize": Case(
            _mutation("invoiceFinalize", "InvoiceFinalizeInput", INVOICE_OUT),
            lambda w: {"input": {"invoiceId": _take(w, "draft")}},
            allowed=STAFF,
            prepare=_draft_pool,
            expect=_owner,
        ),
        "Mutation.invoicePay": Case(
            _mutation("invoicePay", "InvoicePayInput", INVOICE_OUT),
            lambda w: {"input": {"invoiceId": w.extra["invoice"], "idempotencyKey": _key(w)}},
            prepare=_payable,
            expect=lambda w: w.extra["invoice"],
        ),
        "Mutation.invoiceVoid": Case(
            _mutation("invoiceVoid", "InvoiceVoidInput", INVOICE_OUT),
            lambda w: {"input": {"invoiceId": _take(w, "open"), "reason": "matrix"}},
            allowed=STAFF,
            prepare=_open_pool,
            expect=_owner,
        ),
        "Mutation.invoiceMarkUncollectible": Case(
            _mutation("invoiceMarkUncollectible", "InvoiceMarkUncollectibleInput", INVOICE_OUT),
            lambda w: {"input": {"invoiceId": _take(w, "open")}},
            allowed=STAFF,
            prepare=_open_pool,
            expect=_owner,
        ),
        "Mutation.invoiceSettingsUpdate": Case(
            _mutation(
                "invoiceSettingsUpdate",
                "InvoiceSettingsUpdateInput",
                "{ settings { numberPrefix } errors { code } }",
            ),
            lambda w: {"input": {"numberPrefix": "MATRIX"}},
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
        "Mutation.creditNoteCreate": Case(
            _mutation("creditNoteCreate", "CreditNoteCreateInput", NOTE_OUT),
            lambda w: {
                "input": {
                    "invoiceId": w.extra["invoice"],
                    "lines": [{"description": "Goodwill", "unitAmount": 100}],
                    "reason": "GOODWILL",
                    "idempotencyKey": _key(w),
                }
            },
            allowed=STAFF,
            prepare=_one_open,
            expect=lambda w: w.extra["invoice"],
        ),
        "Mutation.taxRateCreate": Case(
            _mutation("taxRateCreate", "TaxRateCreateInput", "{ taxRate { id } errors { code } }"),
            lambda w: {"input": {"name": "GST", "percentage": "10", "country": "AU"}},
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
        "Mutation.taxRateArchive": Case(
            _mutation(
                "taxRateArchive", "TaxRateArchiveInput", "{ taxRate { id } errors { code } }"
            ),
            lambda w: {"input": {"id": w.extra["rate"]}},
            allowed=frozenset({ADMIN}),
            prepare=_tax_rate,
            expect=lambda w: w.extra["rate"],
        ),
        "Mutation.couponCreate": Case(
            _mutation("couponCreate", "CouponCreateInput", "{ coupon { id } errors { code } }"),
            lambda w: {
                "input": {"code": "NEW", "name": "New", "duration": "FOREVER", "percentOff": "5"}
            },
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
        "Mutation.couponArchive": Case(
            _mutation("couponArchive", "CouponArchiveInput", "{ coupon { id } errors { code } }"),
            lambda w: {"input": {"id": w.extra["coupon"]}},
            allowed=frozenset({ADMIN}),
            prepare=_coupon,
            expect=lambda w: w.extra["coupon"],
        ),
        "Mutation.couponApply": Case(
            _mutation(
                "couponApply", "CouponApplyInput", "{ discount { id customerId } errors { code } }"
            ),
            lambda w: {"input": {"customerId": w.owner["id"], "couponId": w.extra["coupon"]}},
            allowed=STAFF,
            prepare=_coupon,
            expect=_owner,
        ),
    }
)


SUB_OUT = "{ subscription { id status customer { id } } errors { code } }"
_SUBSCRIBE = _mutation("subscriptionCreate", "SubscriptionCreateInput", SUB_OUT)


async def _plan_pool(
    world: World, clients: dict[str, GraphQLClient], *, prefix: str = "plan"
) -> None:
    for index in range(_POOL_SIZE):
        made = await clients[ADMIN].data(
            CREATE_PLAN,
            {
                "input": {
                    "code": f"pool-{prefix}-{index}",
                    "name": f"Pool {index}",
                    "tier": "BASIC",
                    "price": {"amount": 1000 + index, "currency": "USD"},
                    "interval": "MONTH",
                    "trialDays": 7,
                }
            },
        )
        world.extra[f"{prefix}{index}"] = made["planCreate"]["plan"]["id"]


async def _subscription_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    """Trialing subscriptions of the owner (no charge needed), one per pool plan."""
    await _plan_pool(world, clients)
    for index in range(_POOL_SIZE):
        made = await clients[ADMIN].data(
            _SUBSCRIBE,
            {
                "input": {
                    "customerId": world.owner["id"],
                    "planId": world.extra[f"plan{index}"],
                    "trialDays": 7,
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
        world.extra[f"sub{index}"] = made["subscriptionCreate"]["subscription"]["id"]
    world.extra["sub"] = world.extra["sub0"]


async def _change_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    """Subscriptions and, for each, a plan to move it to."""
    await _subscription_pool(world, clients)
    pool = {k: v for k, v in world.extra.items() if k.startswith("plan")}
    await _plan_pool(world, clients, prefix="target")
    world.extra.update(pool)


async def _customers_may_pause(world: World, clients: dict[str, GraphQLClient]) -> None:
    """Customer tokens pause and resume only where the organization allows it."""
    done = await clients[ADMIN].data(
        "mutation { organizationSettingsUpdate(input: {customerCanPause: true}) "
        "{ errors { code } } }"
    )
    assert done["organizationSettingsUpdate"]["errors"] == []


async def _pausable_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _customers_may_pause(world, clients)
    await _subscription_pool(world, clients)


async def _paused_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    await _customers_may_pause(world, clients)
    await _subscription_pool(world, clients)
    pause = _mutation("subscriptionPause", "SubscriptionPauseInput", SUB_OUT)
    for index in range(_POOL_SIZE):
        await clients[ADMIN].data(pause, {"input": {"id": world.extra[f"sub{index}"]}})


CASES.update(
    {
        "Query.subscription": Case(
            "query($id: ID!) { subscription(id: $id) { id status customer { id } } }",
            lambda w: {"id": w.extra["sub"]},
            prepare=_subscription_pool,
            expect=lambda w: w.extra["sub"],
        ),
        "Query.subscriptions": Case(
            "{ subscriptions { edges { node { id customer { id } } } } }",
            prepare=_subscription_pool,
            expect=lambda w: w.extra["sub"],
        ),
        "Mutation.subscriptionCreate": Case(
            _SUBSCRIBE,
            lambda w: {
                "input": {
                    "customerId": w.owner["id"],
                    "planId": _take(w, "plan"),
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
            prepare=_plan_pool,
            expect=_owner,
        ),
        "Mutation.subscriptionChangePlan": Case(
            _mutation("subscriptionChangePlan", "SubscriptionChangePlanInput", SUB_OUT),
            lambda w: {
                "input": {
                    "id": _take(w, "sub"),
                    "planId": _take(w, "target"),
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
            prepare=_change_pool,
        ),
        "Mutation.subscriptionCancel": Case(
            _mutation("subscriptionCancel", "SubscriptionCancelInput", SUB_OUT),
            lambda w: {"input": {"id": _take(w, "sub"), "atPeriodEnd": False}},
            prepare=_subscription_pool,
        ),
        "Mutation.subscriptionPause": Case(
            _mutation("subscriptionPause", "SubscriptionPauseInput", SUB_OUT),
            lambda w: {"input": {"id": _take(w, "sub")}},
            prepare=_pausable_pool,
        ),
        "Mutation.subscriptionResume": Case(
            _mutation("subscriptionResume", "SubscriptionResumeInput", SUB_OUT),
            lambda w: {"input": {"id": _take(w, "sub")}},
            prepare=_paused_pool,
        ),
        "Mutation.testClockAdvance": Case(
            _mutation("testClockAdvance", "TestClockAdvanceInput", "{ now steps errors { code } }"),
            lambda w: {"input": {"to": "2031-01-01T00:00:00+00:00"}},
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
    }
)


async def _announce_payment(world: World, services: Any) -> None:
    """A payment event of the owner's paid payment, as its writer would publish it."""
    event = Event(
        world.org,
        "payment",
        world.extra["payment"],
        {"status": "succeeded", "customer_id": world.owner["id"]},
    )
    await publish(services.db, event)


CASES.update(
    {
        "Live.revenue": Case(
            "subscription { revenue { at currencies { currency netTotal { amount } } } }",
            allowed=frozenset({ADMIN}),
            subscription=True,
            prepare=_paid,
        ),
        "Live.paymentEvents": Case(
            "subscription($id: ID) { paymentEvents(customerId: $id) "
            "{ kind status payment { id customerId } } }",
            lambda w: {"id": w.owner["id"]},
            subscription=True,
            prepare=_paid,
            trigger=_announce_payment,
            expect=lambda w: w.extra["payment"],
        ),
    }
)


# -- statistics -------------------------------------------------------------------------------


def _around_now(world: World) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }


CASES.update(
    {
        "Query.revenueStats": Case(
            "query($from: DateTime!, $to: DateTime!) { revenueStats(from: $from, to: $to) "
            "{ currency total { gross { amount } paymentCount } } }",
            _around_now,
            allowed=frozenset({ADMIN}),
            prepare=_paid,
        ),
        "Query.subscriptionStats": Case(
            "{ subscriptionStats { counts { total } byPlan { planId } "
            "currencies { currency mrr { amount } } } }",
            allowed=frozenset({ADMIN}),
        ),
        "Query.stats": Case(
            "{ stats { paymentCount currencies { currency today { gross { amount } } } } }",
            allowed=frozenset({ADMIN}),
            prepare=_paid,
        ),
    }
)


async def _metered(world: World, clients: dict[str, GraphQLClient]) -> None:
    """A metric, a plan that prices it, and the owner's trialing subscription on that plan."""
    made = await clients[ADMIN].data(
        _mutation(
            "billableMetricCreate",
            "BillableMetricCreateInput",
            "{ billableMetric { id } errors { code } }",
        ),
        {"input": {"code": "calls", "name": "Calls", "aggregation": "COUNT"}},
    )
    world.extra["metric"] = made["billableMetricCreate"]["billableMetric"]["id"]
    plan = await clients[ADMIN].data(
        CREATE_PLAN,
        {
            "input": {
                "code": "metered",
                "name": "Metered",
                "tier": "PRO",
                "price": {"amount": 100, "currency": "USD"},
                "interval": "MONTH",
                "trialDays": 7,
                "meteredPrices": [{"metric": "calls", "model": "PER_UNIT", "unitPrice": "0.01"}],
            }
        },
    )
    subscribed = await clients[ADMIN].data(
        _SUBSCRIBE,
        {
            "input": {
                "customerId": world.owner["id"],
                "planId": plan["planCreate"]["plan"]["id"],
                "idempotencyKey": str(uuid.uuid4()),
            }
        },
    )
    world.extra["sub"] = subscribed["subscriptionCreate"]["subscription"]["id"]


def _usage_event(world: World) -> dict[str, Any]:
    return {
        "metric": "calls",
        "subscriptionId": world.extra["sub"],
        "idempotencyKey": str(uuid.uuid4()),
    }


_EVENT_OUT = "{ status subscriptionId errors { code } }"

CASES.update(
    {
        "Query.billableMetrics": Case(
            "{ billableMetrics { edges { node { id code } } } }",
            allowed=STAFF,
            prepare=_metered,
            expect=lambda w: w.extra["metric"],
        ),
        "Query.usage": Case(
            "query($sub: ID!, $from: DateTime!, $to: DateTime!) { usage(subscriptionId: $sub, "
            'metric: "calls", from: $from, to: $to) { subscriptionId total } }',
            lambda w: {"sub": w.extra["sub"], **_around_now(w)},
            prepare=_metered,
            expect=lambda w: w.extra["sub"],
        ),
        "Mutation.billableMetricCreate": Case(
            _mutation(
                "billableMetricCreate",
                "BillableMetricCreateInput",
                "{ billableMetric { id } errors { code } }",
            ),
            lambda w: {"input": {"code": "matrix", "name": "Matrix", "aggregation": "COUNT"}},
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
        "Mutation.billableMetricArchive": Case(
            _mutation(
                "billableMetricArchive",
                "BillableMetricArchiveInput",
                "{ billableMetric { id } errors { code } }",
            ),
            lambda w: {"input": {"id": w.extra["metric"]}},
            allowed=frozenset({ADMIN}),
            prepare=_metered,
            expect=lambda w: w.extra["metric"],
        ),
        "Mutation.usageRecord": Case(
            _mutation("usageRecord", "UsageEventInput", f"{{ result {_EVENT_OUT} }}"),
            lambda w: {"input": _usage_event(w)},
            allowed=STAFF,
            prepare=_metered,
            expect=lambda w: w.extra["sub"],
        ),
        "Mutation.usageRecordBatch": Case(
            _mutation("usageRecordBatch", "UsageRecordBatchInput", f"{{ results {_EVENT_OUT} }}"),
            lambda w: {"input": {"events": [_usage_event(w)]}},
            allowed=STAFF,
            prepare=_metered,
            expect=lambda w: w.extra["sub"],
        ),
    }
)


_PREVIEW_OUT = "{ preview { subscription { status planId } } errors { code } }"

CASES.update(
    {
        "Query.upcomingInvoice": Case(
            "query($id: ID!) { upcomingInvoice(subscriptionId: $id) { subscriptionId total "
            "{ amount } } }",
            lambda w: {"id": w.extra["sub"]},
            prepare=_subscription_pool,
            expect=lambda w: w.extra["sub"],
        ),
        "Query.subscriptionChangePreview": Case(
            "query($input: SubscriptionChangePlanInput!) { subscriptionChangePreview(input: "
            f"$input) {_PREVIEW_OUT} }}",
            lambda w: {
                "input": {
                    "id": w.extra["sub0"],
                    "planId": w.extra["target0"],
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
            prepare=_change_pool,
        ),
        "Query.subscriptionCreatePreview": Case(
            "query($input: SubscriptionCreateInput!) { subscriptionCreatePreview(input: "
            f"$input) {_PREVIEW_OUT} }}",
            lambda w: {
                "input": {
                    "customerId": w.owner["id"],
                    "planId": w.extra["plan0"],
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
            prepare=_plan_pool,
        ),
        "Query.subscriptionCancelPreview": Case(
            "query($input: SubscriptionCancelInput!) { subscriptionCancelPreview(input: "
            f"$input) {_PREVIEW_OUT} }}",
            lambda w: {"input": {"id": w.extra["sub0"], "atPeriodEnd": False}},
            prepare=_subscription_pool,
        ),
    }
)

CASES.update(
    {
        "Query.entitlements": Case(
            "query($id: ID!) { entitlements(customerId: $id) { customerId features maxUsers } }",
            lambda w: {"id": w.owner["id"]},
            expect=_owner,
        ),
        "Live.entitlements": Case(
            "subscription($id: ID!) { entitlements(customerId: $id) { customerId maxUsers } }",
            lambda w: {"id": w.owner["id"]},
            subscription=True,
            expect=_owner,
        ),
    }
)

CASES.update(
    {
        "Query.checkoutPreview": Case(
            "query($input: CheckoutPreviewInput!) { checkoutPreview(input: $input) "
            "{ quote { currency dueNow { amount } } errors { code } } }",
            lambda w: {"input": {"customerId": w.owner["id"], "items": [{"planId": w.plan["id"]}]}},
        ),
    }
)

# -- identity: API keys and the audit log ------------------------------------------------------

API_KEY_OUT = "{ apiKey { id prefix status } errors { code } }"
API_KEY_SECRET_OUT = "{ apiKey { id prefix status } key errors { code } }"


async def _api_key_pool(world: World, clients: dict[str, GraphQLClient]) -> None:
    """Service keys of organization A (``key0``, ``key1``, …), made by its admin."""
    create = _mutation("apiKeyCreate", "ApiKeyCreateInput", API_KEY_SECRET_OUT)
    for index in range(_POOL_SIZE):
        made = await clients[ADMIN].data(
            create, {"input": {"name": f"pool {index}", "role": "SERVICE"}}
        )
        assert made["apiKeyCreate"]["errors"] == [], made
        world.extra[f"key{index}"] = made["apiKeyCreate"]["apiKey"]["id"]
    world.extra["key"] = world.extra["key0"]


CASES.update(
    {
        "Query.apiKeys": Case(
            "{ apiKeys { edges { node { id prefix name role status createdBy } } } }",
            allowed=frozenset({ADMIN}),
            prepare=_api_key_pool,
            expect=lambda w: w.extra["key"],
        ),
        "Query.auditLog": Case(
            "{ auditLog { edges { node { id actor actorType role action targetIds outcome } } } }",
            allowed=frozenset({ADMIN}),
            prepare=_api_key_pool,
            expect=lambda w: w.extra["key"],
        ),
        "Mutation.apiKeyCreate": Case(
            _mutation("apiKeyCreate", "ApiKeyCreateInput", API_KEY_SECRET_OUT),
            lambda w: {"input": {"name": "matrix", "role": "SERVICE"}},
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
        "Mutation.apiKeyRevoke": Case(
            _mutation("apiKeyRevoke", "ApiKeyRevokeInput", API_KEY_OUT),
            lambda w: {"input": {"id": _take(w, "key")}},
            allowed=frozenset({ADMIN}),
            prepare=_api_key_pool,
        ),
        "Mutation.apiKeyRoll": Case(
            _mutation("apiKeyRoll", "ApiKeyRollInput", API_KEY_SECRET_OUT),
            lambda w: {"input": {"id": _take(w, "key"), "gracePeriodSeconds": 60}},
            allowed=frozenset({ADMIN}),
            prepare=_api_key_pool,
        ),
    }
)

# -- outgoing webhooks and received Stripe events ---------------------------------------------

ENDPOINT_OUT = "{ endpoint { id url } errors { code } }"
SECRET_OUT = "{ endpoint { id } secret errors { code } }"
_ENDPOINT_CREATE = _mutation("webhookEndpointCreate", "WebhookEndpointCreateInput", SECRET_OUT)


async def _endpoint(world: World, clients: dict[str, GraphQLClient]) -> None:
    variables = {"input": {"url": "http://127.0.0.1:9/hooks", "eventTypes": ["PAYMENT_SUCCEEDED"]}}
    made = (await clients[ADMIN].data(_ENDPOINT_CREATE, variables))["webhookEndpointCreate"]
    world.extra["endpoint"] = made["endpoint"]["id"]


async def _delivered(world: World, clients: dict[str, GraphQLClient]) -> None:
    """An endpoint, then a paid payment: one delivery of its payment.succeeded."""
    await _endpoint(world, clients)
    await _paid(world, clients)


async def _find_delivery(world: World, services: Any) -> None:
    world.extra["delivery"] = await services.db.fetch_val(
        "SELECT id FROM webhook_deliveries WHERE organization_id = :org",
        {"org": world.org},
    )


async def _failed_stripe_event(world: World, services: Any) -> None:
    """A Stripe event about the owner's payment recorded as failed, with its body."""
    event_id = f"evt_matrix{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "id": event_id,
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "metadata": {
                        "billing_organization": world.org,
                        "billing_payment_id": world.extra["payment"],
                    }
                }
            },
        }
    )
    await services.db.execute(
        "INSERT INTO stripe_events (organization_id, event_id, type, state, error, payload) "
        "VALUES (:org, :id, 'payment_intent.succeeded', 'failed', 'matrix', :body)",
        {"org": world.org, "id": event_id, "body": body},
    )
    world.extra["stripe_event"] = event_id


CASES.update(
    {
        "Query.webhookEndpoints": Case(
            "{ webhookEndpoints { edges { node { id url eventTypes } } totalCount } }",
            allowed=frozenset({ADMIN}),
            prepare=_endpoint,
            expect=lambda w: w.extra["endpoint"],
        ),
        "Query.webhookDeliveries": Case(
            "query($id: ID) { webhookDeliveries(endpointId: $id) { edges { node { id eventId "
            "eventType status log { attempt } } } } }",
            lambda w: {"id": w.extra["endpoint"]},
            allowed=frozenset({ADMIN}),
            prepare=_delivered,
            seed=_find_delivery,
            expect=lambda w: w.extra["delivery"],
        ),
        "Query.events": Case(
            "{ events(type: PAYMENT_SUCCEEDED) { edges { node { id type objectId envelope } } } }",
            allowed=STAFF,
            prepare=_paid,
            expect=lambda w: w.extra["payment"],
        ),
        "Query.stripeEvents": Case(
            "{ stripeEvents(status: FAILED) { edges { node { id type status error replayable } } "
            "totalCount } }",
            allowed=frozenset({ADMIN}),
            prepare=_paid,
            seed=_failed_stripe_event,
            expect=lambda w: w.extra["stripe_event"],
        ),
        "Mutation.webhookEndpointCreate": Case(
            _ENDPOINT_CREATE,
            lambda w: {
                "input": {"url": "http://127.0.0.1:9/created", "eventTypes": ["INVOICE_PAID"]}
            },
            allowed=frozenset({ADMIN}),
            creates=True,
        ),
        "Mutation.webhookEndpointUpdate": Case(
            _mutation("webhookEndpointUpdate", "WebhookEndpointUpdateInput", ENDPOINT_OUT),
            lambda w: {"input": {"endpointId": w.extra["endpoint"], "enabled": False}},
            allowed=frozenset({ADMIN}),
            prepare=_endpoint,
            expect=lambda w: w.extra["endpoint"],
        ),
        "Mutation.webhookEndpointRotateSecret": Case(
            _mutation(
                "webhookEndpointRotateSecret", "WebhookEndpointRotateSecretInput", SECRET_OUT
            ),
            lambda w: {"input": {"endpointId": w.extra["endpoint"], "graceHours": 1}},
            allowed=frozenset({ADMIN}),
            prepare=_endpoint,
            expect=lambda w: w.extra["endpoint"],
        ),
        "Mutation.webhookEndpointDelete": Case(
            _mutation("webhookEndpointDelete", "WebhookEndpointDeleteInput", ENDPOINT_OUT),
            lambda w: {"input": {"endpointId": w.extra["endpoint"]}},
            allowed=frozenset({ADMIN}),
            prepare=_endpoint,
            expect=lambda w: w.extra["endpoint"],
        ),
        "Mutation.webhookRedeliver": Case(
            _mutation(
                "webhookRedeliver",
                "WebhookRedeliverInput",
                "{ delivery { id status } errors { code } }",
            ),
            lambda w: {"input": {"deliveryId": w.extra["delivery"]}},
            allowed=frozenset({ADMIN}),
            prepare=_delivered,
            seed=_find_delivery,
            expect=lambda w: w.extra["delivery"],
        ),
        "Mutation.stripeEventReplay": Case(
            _mutation(
                "stripeEventReplay",
                "StripeEventReplayInput",
                "{ event { id status } errors { code } }",
            ),
            lambda w: {"input": {"eventId": w.extra["stripe_event"]}},
            allowed=frozenset({ADMIN}),
            prepare=_paid,
            seed=_failed_stripe_event,
            expect=lambda w: w.extra["stripe_event"],
        ),
    }
)

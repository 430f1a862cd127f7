"""Payments: type, inputs, payloads, queries and mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from app.core.money import Money as DomainMoney
from app.customers import Customer as DomainCustomer
from app.payments import BreakdownDraft, CurrencySummary, PaymentDeclined, PaymentDraft, refundable
from app.payments import Payment as DomainPayment
from app.payments import Refund as DomainRefund
from resolvers import payments as resolve
from resolvers.payments import PaymentPage
from schema.base import INPUT, Info
from schema.enums import CaptureMethod, PaymentStatus
from schema.errors import UserError, attempt
from schema.filters import created_from, created_range, created_to
from schema.money import Money, MoneyInput
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    ORDER_BY,
    Connection,
    Edge,
    ListOrder,
    Window,
    ordered,
    to_connection,
    window,
)
from schema.permissions import AdminOrService, AnyRole
from schema.refunds import Refund
from schema.scalars import BigInt

if TYPE_CHECKING:
    from schema.customers import Customer

__all__ = [
    "Payment",
    "PaymentConnection",
    "PaymentMutations",
    "PaymentQueries",
    "customer_payments",
]

IDEMPOTENCY_KEY = (
    "Your unique key for this request (1-255 chars, e.g. a UUID). Retrying with the same key "
    "and input returns the first result and never charges twice; the same key with another "
    "input is IDEMPOTENCY_KEY_REUSED. Kept 24 hours."
)


@strawberry.type(description="How a payment's amount is made up, in its currency.")
class PaymentBreakdown:
    subtotal: Money = strawberry.field(description="Goods and services before tax.")
    tax: Money = strawberry.field(description="Tax.")
    shipping: Money = strawberry.field(description="Shipping.")
    discount: Money = strawberry.field(description="Discount, subtracted.")


@strawberry.type(description="A charge of a customer through one Stripe PaymentIntent.")
class Payment(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `pay_…`, sortable by creation.")

    is_type_of = serves(DomainPayment)

    customer_id: strawberry.ID = strawberry.field(description="The customer charged, `cus_…`.")
    amount: Money = strawberry.field(description="Amount to charge.")
    status: PaymentStatus = strawberry.field(description="Where it stands (Stripe's word).")
    capture_method: CaptureMethod = strawberry.field(description="When the money is taken.")
    description: str = strawberry.field(description="Your description; may be empty.")
    order_id: str | None = strawberry.field(description="Your order reference, if given.")
    breakdown: PaymentBreakdown | None = strawberry.field(
        description="Subtotal, tax, shipping and discount, if given (they add up to `amount`)."
    )
    metadata: JSON = strawberry.field(description="Your string key-value pairs.")
    payment_method_id: str | None = strawberry.field(
        description="The Stripe PaymentMethod charged (`pm_…`), once known."
    )
    stripe_payment_intent_id: str = strawberry.field(description="The Stripe PaymentIntent.")
    client_secret: str | None = strawberry.field(
        description="The PaymentIntent's client secret, for Stripe.js (3-D Secure, or "
        "confirming in the browser). Do not log it."
    )
    next_action: JSON | None = strawberry.field(
        description="What the customer must do when `REQUIRES_ACTION` (Stripe's `next_action`)."
    )
    amount_capturable: Money = strawberry.field(
        description="Authorized and not yet captured (manual capture); zero otherwise."
    )
    amount_captured: Money = strawberry.field(
        description="Charged, as Stripe reported it; zero until `SUCCEEDED`."
    )
    amount_refunded: Money = strawberry.field(description="Refunds that succeeded, in total.")
    failure_code: str | None = strawberry.field(
        description="Stripe's decline or error code of the last failed attempt, e.g. "
        "`card_declined`, `insufficient_funds`."
    )
    failure_message: str | None = strawberry.field(
        description="Stripe's message for the last failed attempt."
    )
    created_at: datetime = strawberry.field(description="Creation time (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")

    @strawberry.field(
        description="The customer charged; null if not visible to you.",
        graphql_type=Annotated["Customer", strawberry.lazy("schema.customers")] | None,
    )
    async def customer(
        self, info: Info, root: strawberry.Parent[DomainPayment]
    ) -> DomainCustomer | None:
        return await info.context.loaders.customer_by_id.load(root.customer_id)

    @strawberry.field(
        description="This payment's refunds, oldest first, whatever their status.",
        graphql_type=list[Refund],
    )
    async def refunds(
        self, info: Info, root: strawberry.Parent[DomainPayment]
    ) -> list[DomainRefund]:
        return await resolve.refunds_of(info.context, root)

    @strawberry.field(
        description="What can still be refunded: captured, minus refunds that succeeded, are in "
        "flight or await approval, minus what credit notes gave to the customer's credit "
        "balance out of this payment (a refund and a credit note come out of the same amount); "
        "for a subscription's invoice, never more than what the customer paid for that "
        "subscription and was not given back yet (credit for unused time included).",
        graphql_type=Money,
    )
    async def amount_refundable(
        self, info: Info, root: strawberry.Parent[DomainPayment]
    ) -> DomainMoney:
        loaders = info.context.loaders
        refunds = await resolve.refunds_of(info.context, root)
        limits = await loaders.refund_limits_by_payment_id.load(root.id)
        return refundable(root, refunds, limits.credited, limits.room)


@strawberry.type(description="Payments in one currency, over everything a filter matches.")
class PaymentCurrencySummary:
    currency: str = strawberry.field(description="ISO 4217 code.")
    count: int = strawberry.field(description="Payments in this currency, whatever their status.")
    succeeded_count: int = strawberry.field(description="Of which succeeded.")
    succeeded: Money = strawberry.field(description="Captured by succeeded payments.")
    refunded: Money = strawberry.field(description="Refunded (refunds that succeeded).")
    net: Money = strawberry.field(description="Succeeded minus refunded.")


@strawberry.type(description="A page of payments, with totals per currency over all pages.")
class PaymentConnection(Connection[Payment]):
    summarize: strawberry.Private[Callable[[], Awaitable[list[CurrencySummary]]]]

    @strawberry.field(
        description="Count and succeeded, refunded and net totals per currency, over every "
        "payment the filter matches (not only this page). Never mixes currencies.",
        graphql_type=list[PaymentCurrencySummary],
    )
    async def summary(self) -> list[CurrencySummary]:
        return await self.summarize()


def _connection(page: PaymentPage, window: Window) -> PaymentConnection:
    base = to_connection(page.nodes, page.has_next, page.count, window)
    return PaymentConnection(
        # PaymentConnection is a named subclass of Connection[Payment] (the GraphQL type), so
        # its edges are declared with the schema type; they hold the domain payments it serves.
        edges=cast("list[Edge[Payment]]", base.edges),
        page_info=base.page_info,
        count=page.count,
        summarize=page.summary,
    )


async def customer_payments(info: Info, customer_id: str, page: Window) -> PaymentConnection:
    """``Customer.payments``, batched across the customers of a response."""
    found = await resolve.of_customer(
        info.context, customer_id, first=page.size, after=page.cursor, newest=page.backward
    )
    return _connection(found, page)


@strawberry.input(description="Filters for `payments`; omitted fields do not filter.")
class PaymentFilter:
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this customer's payments."
    )
    status: list[PaymentStatus] | None = strawberry.field(
        default=None, description="Only payments in one of these statuses."
    )
    from_: datetime | None = created_from()
    to: datetime | None = created_to()
    currency: str | None = strawberry.field(
        default=None, description="Only payments in this ISO 4217 currency."
    )

    def filters(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "statuses": [s.value for s in self.status] if self.status else None,
            **created_range(self.from_, self.to),
            "currency": self.currency.strip().upper() if self.currency else None,
        }


@strawberry.input(description="How the amount is made up; the parts must add up to it.")
class PaymentBreakdownInput:
    subtotal: BigInt = strawberry.field(description="Before tax, in minor units, ≥ 0.")
    tax: BigInt = strawberry.field(default=0, description="Tax, in minor units, ≥ 0.")
    shipping: BigInt = strawberry.field(default=0, description="Shipping, in minor units, ≥ 0.")
    discount: BigInt = strawberry.field(
        default=0, description="Discount, in minor units, ≥ 0; subtracted."
    )


@strawberry.input(description="A new payment: creates a Stripe PaymentIntent.")
class PaymentIntentCreateInput:
    customer_id: strawberry.ID = strawberry.field(description="The customer to charge, `cus_…`.")
    amount: MoneyInput = strawberry.field(description="Amount in minor units, more than zero.")
    description: str = strawberry.field(default="", description="At most 1000 characters.")
    order_id: str | None = strawberry.field(
        default=None, description="Your order reference (≤ 200 chars); also sent to Stripe."
    )
    breakdown: PaymentBreakdownInput | None = strawberry.field(
        default=None,
        description="Subtotal, tax, shipping and discount in the amount's currency; "
        "subtotal + tax + shipping - discount must equal the amount.",
    )
    metadata: JSON | None = strawberry.field(
        default=None,
        description="Up to 40 string pairs (keys ≤ 40, values ≤ 500 chars; keys starting with "
        "`billing_` are reserved); also sent to Stripe.",
    )
    payment_method_id: str | None = strawberry.field(
        default=None,
        description="A Stripe PaymentMethod (`pm_…`). With it the payment is "
        "`REQUIRES_CONFIRMATION`; without, `REQUIRES_PAYMENT_METHOD`.",
    )
    capture_method: CaptureMethod = strawberry.field(
        default=CaptureMethod.AUTOMATIC, description="Charge on confirmation, or only authorize."
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)

    def to_draft(self) -> PaymentDraft:
        breakdown = None
        if self.breakdown is not None:
            breakdown = BreakdownDraft(
                subtotal=self.breakdown.subtotal,
                tax=self.breakdown.tax,
                shipping=self.breakdown.shipping,
                discount=self.breakdown.discount,
            )
        return PaymentDraft(
            customer_id=self.customer_id,
            amount=self.amount.amount,
            currency=self.amount.currency,
            description=self.description,
            order_id=self.order_id,
            breakdown=breakdown,
            metadata={} if self.metadata is None else self.metadata,
            payment_method_id=self.payment_method_id,
            capture_method=self.capture_method,
        )


@strawberry.input(description="Confirm a payment with Stripe.")
class PaymentIntentConfirmInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment, `pay_…`.")
    payment_method_id: str | None = strawberry.field(
        default=None,
        description="The PaymentMethod to charge (`pm_…`); default: the payment's, else the "
        "customer's default.",
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.input(description="Capture an authorized payment.")
class PaymentCaptureInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment, `pay_…`.")
    amount: MoneyInput | None = strawberry.field(
        default=None,
        description="How much to capture, at most `amountCapturable`; omitted: all of it. The "
        "rest of the authorization is released.",
    )
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.input(description="Cancel a payment that has not succeeded.")
class PaymentCancelInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment, `pay_…`.")
    idempotency_key: str = strawberry.field(description=IDEMPOTENCY_KEY)


@strawberry.input(description="Read a payment's state from Stripe.")
class PaymentRefreshInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment, `pay_…`.")


@strawberry.type(description="Result of the payment mutations.")
class PaymentPayload:
    payment: DomainPayment | None = strawberry.field(
        graphql_type=Payment | None,
        description="The payment; null on errors, except CARD_DECLINED: then the payment is "
        "returned `FAILED` with its `failureCode`.",
    )
    errors: list[UserError] = strawberry.field(description="What went wrong, if anything.")


async def _payload(action: Awaitable[DomainPayment]) -> PaymentPayload:
    carried: list[DomainPayment] = []

    async def run() -> DomainPayment:
        try:
            return await action
        except PaymentDeclined as exc:
            carried.append(exc.payment)
            raise

    payment, errors = await attempt(run())
    return PaymentPayload(payment=payment or next(iter(carried), None), errors=errors)


@strawberry.type
class PaymentQueries:
    @strawberry.field(
        description="One payment by id; null if it does not exist or is not yours.",
        permission_classes=[AnyRole],
        graphql_type=Payment | None,
    )
    async def payment(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="`pay_…`")]
    ) -> DomainPayment | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="Payments, oldest first; filters apply before the page is cut. A customer "
        "token sees its own payments.",
        permission_classes=[AnyRole],
    )
    async def payments(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[PaymentFilter | None, strawberry.argument(description="Filters.")] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> PaymentConnection:
        page = window(first, after, last, before)
        found = await resolve.list_page(
            info.context,
            ordered(filter.filters() if filter else {}, order_by, page),
            first=page.size,
            after=page.cursor,
        )
        return _connection(found, page)


@strawberry.type
class PaymentMutations:
    @strawberry.mutation(
        description="Create a payment and its Stripe PaymentIntent; returns its `clientSecret`. "
        "A customer token may create payments for itself only.",
        permission_classes=[AnyRole],
    )
    async def payment_intent_create(
        self,
        info: Info,
        input: Annotated[PaymentIntentCreateInput, strawberry.argument(description=INPUT)],
    ) -> PaymentPayload:
        return await _payload(resolve.create(info.context, input.to_draft(), input.idempotency_key))

    @strawberry.mutation(
        description="Confirm the payment with Stripe and record Stripe's outcome: SUCCEEDED, "
        "REQUIRES_ACTION (3-D Secure: see `nextAction`), REQUIRES_CAPTURE, or a CARD_DECLINED "
        "error with the payment left FAILED. Charges at most once per idempotency key.",
        permission_classes=[AnyRole],
    )
    async def payment_intent_confirm(
        self,
        info: Info,
        input: Annotated[PaymentIntentConfirmInput, strawberry.argument(description=INPUT)],
    ) -> PaymentPayload:
        return await _payload(
            resolve.confirm(
                info.context, input.payment_id, input.payment_method_id, input.idempotency_key
            )
        )

    @strawberry.mutation(
        description="Capture an authorized (REQUIRES_CAPTURE) payment, in full or in part. "
        "Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def payment_capture(
        self,
        info: Info,
        input: Annotated[PaymentCaptureInput, strawberry.argument(description=INPUT)],
    ) -> PaymentPayload:
        return await _payload(
            resolve.capture(
                info.context,
                input.payment_id,
                input.amount.amount if input.amount else None,
                input.amount.currency if input.amount else None,
                input.idempotency_key,
            )
        )

    @strawberry.mutation(
        description="Cancel a payment that has not succeeded (releases an authorization). "
        "Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def payment_cancel(
        self,
        info: Info,
        input: Annotated[PaymentCancelInput, strawberry.argument(description=INPUT)],
    ) -> PaymentPayload:
        return await _payload(resolve.cancel(info.context, input.payment_id, input.idempotency_key))

    @strawberry.mutation(
        description="Read the PaymentIntent from Stripe and record its current state: how a "
        "payment completed with 3-D Secure (or in Stripe.js) is picked up. Changes nothing at "
        "Stripe.",
        permission_classes=[AnyRole],
    )
    async def payment_refresh(
        self,
        info: Info,
        input: Annotated[PaymentRefreshInput, strawberry.argument(description=INPUT)],
    ) -> PaymentPayload:
        return await _payload(resolve.refresh(info.context, input.payment_id))

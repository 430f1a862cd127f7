"""Previews: the upcoming invoice, and what creating, changing or canceling a subscription
would do — computed by the very code of the mutation (or of the worker) in a transaction that
is rolled back, so a preview and the result cannot disagree. Nothing is written, nothing is
charged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from app.invoicing import InvoiceLine as DomainInvoiceLine
from app.subscriptions import ChangePreview, CheckoutItem, CheckoutQuote
from app.subscriptions import InvoicePreview as DomainInvoicePreview
from app.subscriptions import Subscription as DomainSubscription
from resolvers import previews as resolve
from schema.base import INPUT, Info
from schema.catalog.plans import Plan
from schema.customers import AddressInput
from schema.enums import Status
from schema.errors import UserError, attempt
from schema.invoicing.invoices import InvoiceLine, InvoiceTax, invoice_tax
from schema.money import Money
from schema.permissions import AnyRole
from schema.subscriptions import (
    SubscriptionCancelInput,
    SubscriptionChangePlanInput,
    SubscriptionCreateInput,
)

__all__ = ["PreviewQueries"]


@strawberry.type(
    description="An invoice as it would be issued (not issued: it has no id or number). "
    "`total` equals the sum of the non-informational lines exactly, as on a real invoice."
)
class InvoicePreview:
    customer_id: strawberry.ID = strawberry.field(description="The customer billed.")
    subscription_id: strawberry.ID | None = strawberry.field(description="The subscription.")
    currency: str = strawberry.field(description="ISO 4217 code of every amount.")
    subtotal: Money = strawberry.field(description="Sum of the lines given.")
    discount_total: Money = strawberry.field(description="The coupon's discount (≥ 0).")
    taxable_amount: Money = strawberry.field(description="Tax base, net of tax.")
    tax_total: Money = strawberry.field(description="Tax (already included when inclusive).")
    tax_inclusive: bool = strawberry.field(description="True when prices include the tax.")
    total: Money = strawberry.field(description="subtotal - discount (+ exclusive tax).")
    balance_applied: Money = strawberry.field(
        description="Credit balance it would spend (the balance now)."
    )
    credit_to_balance: Money = strawberry.field(
        description="For a negative total, what would go to the credit balance."
    )
    amount_due: Money = strawberry.field(description="What would be charged.")
    tax: InvoiceTax | None = strawberry.field(description="The tax it would carry, if any.")
    lines: list[InvoiceLine] = strawberry.field(
        description="Its lines in order: given lines (period, proration, usage), then discount, "
        "then tax."
    )

    @classmethod
    def of(cls, preview: DomainInvoicePreview | None) -> InvoicePreview | None:
        if preview is None:
            return None
        invoice = preview.invoice
        tax = invoice_tax(
            invoice.tax_name, invoice.tax_rate, invoice.tax_inclusive, invoice.reverse_charge
        )
        lines: list[DomainInvoiceLine] = preview.lines
        return cls(
            customer_id=strawberry.ID(invoice.customer_id),
            subscription_id=(
                None if invoice.subscription_id is None else strawberry.ID(invoice.subscription_id)
            ),
            currency=invoice.currency,
            subtotal=invoice.subtotal,  # type: ignore[arg-type]
            discount_total=invoice.discount_total,  # type: ignore[arg-type]
            taxable_amount=invoice.taxable_amount,  # type: ignore[arg-type]
            tax_total=invoice.tax_total,  # type: ignore[arg-type]
            tax_inclusive=invoice.tax_inclusive,
            total=invoice.total,  # type: ignore[arg-type]
            balance_applied=invoice.balance_applied,  # type: ignore[arg-type]
            credit_to_balance=invoice.credit_to_balance,  # type: ignore[arg-type]
            amount_due=invoice.amount_due,  # type: ignore[arg-type]
            tax=tax,
            lines=lines,  # type: ignore[arg-type]
        )


@strawberry.type(description="A subscription as it would be after the previewed operation.")
class PreviewedSubscription:
    status: Status = strawberry.field(description="Its status after.")
    plan_id: strawberry.ID = strawberry.field(description="Its plan after.")
    quantity: int = strawberry.field(description="Its quantity after.")
    price: Money = strawberry.field(description="Unit price per period after.")
    current_period_start: datetime = strawberry.field(description="Current period's start.")
    current_period_end: datetime = strawberry.field(description="Current period's end.")
    trial_end: datetime | None = strawberry.field(description="Trial end, if any.")
    cancel_at_period_end: bool = strawberry.field(description="Ends at the period's end.")
    ended_at: datetime | None = strawberry.field(description="When it would end, if it does.")

    @strawberry.field(description="The plan after.", graphql_type=Plan | None)
    async def plan(self, info: Info) -> object:
        return await info.context.loaders.plan_by_id.load(self.plan_id)


def _previewed(sub: DomainSubscription) -> PreviewedSubscription:
    return PreviewedSubscription(
        status=sub.status,
        plan_id=strawberry.ID(sub.plan_id),
        quantity=sub.quantity,
        price=sub.price,  # type: ignore[arg-type]
        current_period_start=sub.current_period_start,
        current_period_end=sub.current_period_end,
        trial_end=sub.trial_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        ended_at=sub.ended_at,
    )


@strawberry.type(description="What a subscription operation would do.")
class SubscriptionPreview:
    subscription: PreviewedSubscription = strawberry.field(description="The subscription after.")
    invoice: InvoicePreview | None = strawberry.field(
        description="The invoice it would issue now (a plan change invoiced at once, a first "
        "period, a final invoice); null when none."
    )
    credit_granted: Money = strawberry.field(
        description="The credit for unused time it would grant: on `invoice`, or pending for "
        "the next invoice (CREATE_PRORATIONS)."
    )
    next_invoice: InvoicePreview | None = strawberry.field(
        description="The next renewal invoice after it (or the final one at period end); null "
        "when none is coming."
    )

    @classmethod
    def of(cls, preview: ChangePreview) -> SubscriptionPreview:
        return cls(
            subscription=_previewed(preview.subscription),
            invoice=InvoicePreview.of(preview.invoice),
            credit_granted=preview.credit,  # type: ignore[arg-type]
            next_invoice=InvoicePreview.of(preview.next_invoice),
        )


@strawberry.type(description="A preview, or why the operation would be refused.")
class SubscriptionPreviewPayload:
    preview: SubscriptionPreview | None = strawberry.field(
        description="What it would do; null when it would be refused."
    )
    errors: list[UserError] = strawberry.field(
        description="Why the operation would be refused: the errors the mutation would return."
    )


def _payload(found: tuple[ChangePreview | None, list[UserError]]) -> SubscriptionPreviewPayload:
    preview, errors = found
    return SubscriptionPreviewPayload(
        preview=None if preview is None else SubscriptionPreview.of(preview), errors=errors
    )


_SAME = (
    " Computed by the mutation's own code in a transaction that is rolled back: nothing is "
    "written or charged, and the mutation with the same input (at the same moment) does "
    "exactly this. The input's idempotencyKey is not used. Customers: their own, under the "
    "organization's customer policy, as for the mutation."
)


@strawberry.input(description="One plan of a basket.")
class CheckoutItemInput:
    plan_id: strawberry.ID = strawberry.field(description="`plan_…`.")
    quantity: int = strawberry.field(default=1, description="Units (seats), ≥ 1.")


@strawberry.input(description="A basket to quote, for a customer or for a visitor.")
class CheckoutPreviewInput:
    items: list[CheckoutItemInput] = strawberry.field(
        description="1-20 plans (a base plan and add-ons), each once, in one currency."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The customer buying (its address, tax status and credit balance apply); "
        "a customer token: itself. Or give `currency` and `address` for a visitor.",
    )
    currency: str | None = strawberry.field(
        default=None, description="A visitor's currency (ISO 4217), without `customerId`."
    )
    address: AddressInput | None = strawberry.field(
        default=None, description="A visitor's billing address (selects the tax)."
    )
    coupon_code: str | None = strawberry.field(
        default=None, description="A coupon code to apply (as `couponApply` would)."
    )


@strawberry.type(description="One item of a quote.")
class QuotedItem:
    subscription: PreviewedSubscription = strawberry.field(
        description="The subscription it would start."
    )
    first_invoice: InvoicePreview | None = strawberry.field(
        description="Its first invoice, charged at checkout; null when it starts with a trial."
    )
    next_invoice: InvoicePreview | None = strawberry.field(
        description="Its first renewal (or the first invoice after the trial)."
    )


@strawberry.type(
    name="CheckoutQuote", description="A priced, taxed quote for a basket: nothing exists yet."
)
class CheckoutQuoteType:
    currency: str = strawberry.field(description="The basket's currency.")
    items: list[QuotedItem] = strawberry.field(description="Per item, in the input's order.")
    due_now: Money = strawberry.field(description="What checkout would charge now, in all.")
    recurring: Money = strawberry.field(
        description="What the first renewals would charge, in all (per period; items on "
        "different intervals renew at different times)."
    )

    @classmethod
    def of(cls, quote: CheckoutQuote) -> CheckoutQuoteType:
        return cls(
            currency=quote.currency,
            items=[
                QuotedItem(
                    subscription=_previewed(q.subscription),
                    first_invoice=InvoicePreview.of(q.first_invoice),
                    next_invoice=InvoicePreview.of(q.next_invoice),
                )
                for q in quote.items
            ],
            due_now=quote.due_now,  # type: ignore[arg-type]
            recurring=quote.recurring,  # type: ignore[arg-type]
        )


@strawberry.type(description="Result of `checkoutPreview`.")
class CheckoutPreviewPayload:
    quote: CheckoutQuoteType | None = strawberry.field(
        description="The quote; null when the basket would be refused."
    )
    errors: list[UserError] = strawberry.field(
        description="Why checkout would be refused (at `input.items.N…` for an item)."
    )


@strawberry.type
class PreviewQueries:
    @strawberry.field(
        description="The next invoice the worker will issue for the subscription at its "
        "period's end — its lines (fixed price, pending prorations, usage so far), coupon, tax "
        "and credit balance applied — exactly as it would issue it now; null when none is "
        "coming (canceled, in dunning, paused beyond the period's end, not yours). Nothing is "
        "written.",
        permission_classes=[AnyRole],
    )
    async def upcoming_invoice(
        self,
        info: Info,
        subscription_id: Annotated[strawberry.ID, strawberry.argument(description="`sub_…`.")],
    ) -> InvoicePreview | None:
        return InvoicePreview.of(await resolve.upcoming_invoice(info.context, subscription_id))

    @strawberry.field(
        description="A priced, taxed quote for a basket of plans before anything exists: "
        "each item's first invoice and first renewal, computed by `subscriptionCreate`'s own "
        "code (with the coupon applied as `couponApply` would) in a transaction that is "
        "rolled back. For a customer, or for a visitor from a currency and an address. "
        "Customers: for themselves, under the customer policy.",
        permission_classes=[AnyRole],
    )
    async def checkout_preview(
        self,
        info: Info,
        input: Annotated[CheckoutPreviewInput, strawberry.argument(description=INPUT)],
    ) -> CheckoutPreviewPayload:
        address = input.address.to_domain() if input.address else None
        quote, errors = await attempt(
            resolve.checkout(
                info.context,
                customer_id=input.customer_id,
                currency=input.currency,
                address=address,
                items=[CheckoutItem(i.plan_id, i.quantity) for i in input.items],
                coupon_code=input.coupon_code,
            )
        )
        return CheckoutPreviewPayload(
            quote=None if quote is None else CheckoutQuoteType.of(quote), errors=errors
        )

    @strawberry.field(
        description="What `subscriptionChangePlan` with this input would do." + _SAME,
        permission_classes=[AnyRole],
    )
    async def subscription_change_preview(
        self,
        info: Info,
        input: Annotated[SubscriptionChangePlanInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPreviewPayload:
        return _payload(
            await attempt(
                resolve.change_plan(
                    info.context,
                    input.id,
                    plan_id=input.plan_id,
                    quantity=input.quantity,
                    behavior=input.proration_behavior,
                )
            )
        )

    @strawberry.field(
        description="What `subscriptionCreate` with this input would do (its first invoice, "
        "unless it starts with a trial)." + _SAME,
        permission_classes=[AnyRole],
    )
    async def subscription_create_preview(
        self,
        info: Info,
        input: Annotated[SubscriptionCreateInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPreviewPayload:
        return _payload(await attempt(resolve.create(info.context, input.to_draft())))

    @strawberry.field(
        description="What `subscriptionCancel` with `atPeriodEnd: false` would do now: its "
        "final invoice and the credit for unused time (with `prorate`)." + _SAME,
        permission_classes=[AnyRole],
    )
    async def subscription_cancel_preview(
        self,
        info: Info,
        input: Annotated[SubscriptionCancelInput, strawberry.argument(description=INPUT)],
    ) -> SubscriptionPreviewPayload:
        return _payload(
            await attempt(resolve.cancel(info.context, input.id, prorate=input.prorate))
        )

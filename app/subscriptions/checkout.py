"""Checkout quotes: a priced, taxed quote for a basket of plans before anything exists.

``CheckoutQuotes.quote`` subscribes the customer (or, for a visitor, a customer made from the
given address and currency) to each item of the basket with ``SubscriptionService.create``,
after applying the coupon, inside one ``dry_run`` of the subscription service: every first
invoice and every first renewal are those the real checkout would issue (same proration rules,
coupon, tax, credit balance), then everything is rolled back. Nothing is written; Stripe is
never called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.catalog import CouponService
from app.core.auth import Principal, Role
from app.core.errors import DomainError, ErrorCode, ValidationFailed
from app.core.money import Money
from app.customers import CustomerDraft, CustomerService
from app.subscriptions.base import SubscriptionDraft
from app.subscriptions.model import Subscription
from app.subscriptions.previews import InvoicePreview, IssueOnly, Previews

__all__ = ["CheckoutItem", "CheckoutQuote", "CheckoutQuotes", "QuotedItem"]

MAX_ITEMS = 20


@dataclass(frozen=True, slots=True)
class CheckoutItem:
    plan_id: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class QuotedItem:
    subscription: Subscription  # as it would start
    first_invoice: InvoicePreview | None  # None when it starts with a trial
    next_invoice: InvoicePreview | None  # its first renewal


@dataclass(frozen=True, slots=True)
class CheckoutQuote:
    currency: str
    items: list[QuotedItem]
    due_now: Money  # what the first invoices charge together
    recurring: Money  # what the first renewals charge together (per period)


class CheckoutQuotes:
    def __init__(
        self, subscriptions: Previews, customers: CustomerService, coupons: CouponService
    ) -> None:
        self._subscriptions = subscriptions
        self._customers = customers
        self._coupons = coupons

    async def quote(
        self,
        org: str,
        actor: Principal,
        *,
        customer_id: str | None,
        visitor: CustomerDraft | None,
        items: Sequence[CheckoutItem],
        coupon_code: str | None,
    ) -> CheckoutQuote:
        """The quote for ``items`` for the customer (or the ``visitor``); the errors the real
        subscriptions would meet, if any."""
        if not 1 <= len(items) <= MAX_ITEMS:
            raise DomainError(
                ErrorCode.INVALID,
                f"A basket holds 1 to {MAX_ITEMS} items.",
                field=("input", "items"),
            )
        if (customer_id is None) == (visitor is None):
            raise DomainError(
                ErrorCode.INVALID,
                "Give customerId, or currency and address for a visitor.",
                field=("input", "customerId"),
            )

        async def work(clone: Previews, billing: IssueOnly) -> CheckoutQuote:
            buyer = customer_id
            who = actor
            if buyer is None:
                assert visitor is not None
                buyer = (await self._customers.quote_customer(org, visitor)).id
                if actor.role is Role.CUSTOMER:  # a visitor's quote, under the customer policy
                    who = Principal(buyer, org, Role.CUSTOMER)
            if coupon_code:
                coupon = await self._coupons.find(org, coupon_id=None, code=coupon_code)
                try:
                    await self._coupons.apply(org, coupon, buyer, subscription_id=None)
                except DomainError as exc:
                    raise exc.at(("input", "couponCode")) from None
            quoted: list[QuotedItem] = []
            for index, item in enumerate(items):
                before = len(billing.invoices)
                draft = SubscriptionDraft(
                    customer_id=buyer, plan_id=item.plan_id, quantity=item.quantity
                )
                try:
                    made = await clone.create(org, who, draft, key=f"checkout-{index}-{buyer}")
                except DomainError as exc:
                    raise _at_item(exc, index) from None
                except ValidationFailed as exc:
                    raise ValidationFailed(
                        [
                            e.at(("input", "items", str(index), *(e.field or ())[1:]))
                            for e in exc.errors
                        ]
                    ) from None
                first = None
                if len(billing.invoices) > before:
                    first = await clone.snapshot(org, billing.invoices[-1])
                quoted.append(QuotedItem(made, first, None))
            currencies = {q.subscription.price.currency for q in quoted}
            if len(currencies) > 1:
                raise DomainError(
                    ErrorCode.CURRENCY_MISMATCH,
                    "The basket's plans are priced in different currencies.",
                    field=("input", "items"),
                )
            (currency,) = currencies
            renewed = [
                QuotedItem(
                    q.subscription,
                    q.first_invoice,
                    await clone.next_renewal(org, q.subscription.id),
                )
                for q in quoted
            ]
            due_now = sum(
                q.first_invoice.invoice.amount_due.amount for q in renewed if q.first_invoice
            )
            recurring = sum(q.next_invoice.invoice.total.amount for q in renewed if q.next_invoice)
            return CheckoutQuote(
                currency=currency,
                items=renewed,
                due_now=Money(due_now, currency),
                recurring=Money(recurring, currency),
            )

        return await self._subscriptions.dry_run(work)


def _at_item(error: DomainError, index: int) -> DomainError:
    """An error of one item's subscription, reported at that item (``input.items.N.…``)."""
    return error.at(("input", "items", str(index), *(error.field or ())[1:]))

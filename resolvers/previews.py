"""Previews: the upcoming invoice and what a subscription change would do, read-only (the
service runs the real code in a transaction it rolls back). Who may preview is who may act:
a customer token previews only its own subscriptions, under the organization's policy."""

from __future__ import annotations

from collections.abc import Sequence

from app.context import Context
from app.core.errors import NotFound
from app.customers import Address, CustomerDraft
from app.organizations import ProrationBehavior
from app.subscriptions import (
    ChangePreview,
    CheckoutItem,
    CheckoutQuote,
    InvoicePreview,
    SubscriptionDraft,
)
from resolvers.subscriptions import get

__all__ = ["cancel", "change_plan", "checkout", "create", "upcoming_invoice"]


async def checkout(
    ctx: Context,
    *,
    customer_id: str | None,
    currency: str | None,
    address: Address | None,
    items: Sequence[CheckoutItem],
    coupon_code: str | None,
) -> CheckoutQuote:
    """A quote for the customer (a customer token: itself), or for a visitor from a currency
    and an address."""
    visitor = None
    if customer_id is not None:
        if not ctx.can_see_customer(customer_id):
            raise NotFound("Customer", ("input", "customerId"))
    elif currency is not None:
        visitor = CustomerDraft(
            email="visitor@example.com", address=address, preferred_currency=currency
        )
    return await ctx.services.checkout.quote(
        ctx.org,
        ctx.require_principal(),
        customer_id=customer_id,
        visitor=visitor,
        items=items,
        coupon_code=coupon_code,
    )


async def upcoming_invoice(ctx: Context, subscription_id: str) -> InvoicePreview | None:
    if await get(ctx, subscription_id) is None:
        return None
    return await ctx.services.subscriptions.upcoming_invoice(
        ctx.org, ctx.require_principal(), subscription_id
    )


async def _owned(ctx: Context, subscription_id: str) -> str:
    found = await get(ctx, subscription_id)
    if found is None:
        raise NotFound("Subscription", ("input", "id"))
    return found.id


async def change_plan(
    ctx: Context,
    subscription_id: str,
    *,
    plan_id: str,
    quantity: int | None,
    behavior: ProrationBehavior | None,
) -> ChangePreview:
    owned = await _owned(ctx, subscription_id)
    return await ctx.services.subscriptions.preview_change(
        ctx.org,
        ctx.require_principal(),
        owned,
        plan_id=plan_id,
        quantity=quantity,
        behavior=behavior,
    )


async def create(ctx: Context, draft: SubscriptionDraft) -> ChangePreview:
    if not ctx.can_see_customer(draft.customer_id):
        raise NotFound("Customer", ("input", "customerId"))
    return await ctx.services.subscriptions.preview_create(ctx.org, ctx.require_principal(), draft)


async def cancel(ctx: Context, subscription_id: str, *, prorate: bool) -> ChangePreview:
    owned = await _owned(ctx, subscription_id)
    return await ctx.services.subscriptions.preview_cancel(
        ctx.org, ctx.require_principal(), owned, prorate=prorate
    )

"""Previews: the upcoming invoice and what a subscription change would do, read-only (the
service runs the real code in a transaction it rolls back). Who may preview is who may act:
a customer token previews only its own subscriptions, under the organization's policy."""

from __future__ import annotations

from app.context import Context
from app.core.errors import NotFound
from app.organizations import ProrationBehavior
from app.subscriptions import ChangePreview, InvoicePreview, SubscriptionDraft
from resolvers.subscriptions import get

__all__ = ["cancel", "change_plan", "create", "upcoming_invoice"]


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

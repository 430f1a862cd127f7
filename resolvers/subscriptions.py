"""Subscription queries and mutations. A customer token sees and manages only its own, and the
service holds it to the organization's customer policy (it gets the caller)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from app.context import Context
from app.core.errors import NotFound
from app.core.ids import has_prefix
from app.organizations import ProrationBehavior
from app.subscriptions import Subscription, SubscriptionDraft

__all__ = [
    "advance_clock",
    "cancel",
    "change_plan",
    "create",
    "get",
    "list_page",
    "pause",
    "resume",
]


async def get(ctx: Context, subscription_id: str) -> Subscription | None:
    if not has_prefix(subscription_id, "sub"):
        return None
    found = await ctx.loaders.subscription_by_id.load(subscription_id)
    if found is None or not ctx.can_see_customer(found.customer_id):
        return None
    return found


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[Subscription], bool, Callable[[], Awaitable[int]]]:
    org, own = ctx.org, ctx.require_principal().customer_id
    scoped = {**filters, "customer_id": own} if own else dict(filters)
    service = ctx.services.subscriptions
    nodes, has_next = await service.read.page(org, scoped, first=first, after=after)
    for node in nodes:
        ctx.loaders.subscription_by_id.prime(node.id, node)
    return nodes, has_next, lambda: service.read.count(org, scoped)


async def _owned(ctx: Context, subscription_id: str) -> str:
    """The id, if the caller may act on it (a customer only on its own)."""
    found = await get(ctx, subscription_id)
    if found is None:
        raise NotFound("Subscription", ("input", "id"))
    return found.id


async def create(ctx: Context, draft: SubscriptionDraft, key: str) -> Subscription:
    if not ctx.can_see_customer(draft.customer_id):
        raise NotFound("Customer", ("input", "customerId"))
    return await ctx.services.subscriptions.create(ctx.org, ctx.require_principal(), draft, key=key)


async def change_plan(
    ctx: Context,
    subscription_id: str,
    *,
    plan_id: str,
    quantity: int | None,
    behavior: ProrationBehavior | None,
    key: str,
) -> Subscription:
    owned = await _owned(ctx, subscription_id)
    return await ctx.services.subscriptions.change_plan(
        ctx.org,
        ctx.require_principal(),
        owned,
        plan_id=plan_id,
        quantity=quantity,
        behavior=behavior,
        key=key,
    )


async def cancel(
    ctx: Context,
    subscription_id: str,
    *,
    at_period_end: bool,
    reason: str | None,
    feedback: str | None,
    prorate: bool = True,
) -> Subscription:
    owned = await _owned(ctx, subscription_id)
    return await ctx.services.subscriptions.cancel(
        ctx.org,
        owned,
        at_period_end=at_period_end,
        reason=reason,
        feedback=feedback,
        prorate=prorate,
    )


async def pause(ctx: Context, subscription_id: str, resumes_at: datetime | None) -> Subscription:
    owned = await _owned(ctx, subscription_id)
    return await ctx.services.subscriptions.pause(
        ctx.org, ctx.require_principal(), owned, resumes_at=resumes_at
    )


async def resume(ctx: Context, subscription_id: str) -> Subscription:
    owned = await _owned(ctx, subscription_id)
    return await ctx.services.subscriptions.resume(ctx.org, ctx.require_principal(), owned)


async def advance_clock(ctx: Context, to: datetime) -> tuple[datetime, int]:
    return await ctx.services.subscriptions.advance_clock(ctx.org, to)

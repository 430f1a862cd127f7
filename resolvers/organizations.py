"""The caller's organization and its settings."""

from __future__ import annotations

from collections.abc import Sequence

from app.context import Context
from app.organizations import (
    EndedSubscriptionInvoices,
    LateUsage,
    Organization,
    ProrationBehavior,
)

__all__ = ["get", "set_refund_approval_thresholds", "update_settings"]


async def get(ctx: Context) -> Organization:
    return await ctx.services.organizations.get(ctx.org)


async def set_refund_approval_thresholds(
    ctx: Context, thresholds: Sequence[tuple[int, str]]
) -> Organization:
    return await ctx.services.organizations.set_refund_approval_thresholds(ctx.org, thresholds)


async def update_settings(
    ctx: Context,
    *,
    refund_approval_thresholds: Sequence[tuple[int, str]] | None,
    customer_max_quantity: int | None,
    customer_proration_behavior: ProrationBehavior | None,
    customer_can_pause: bool | None,
    ended_subscription_invoices: EndedSubscriptionInvoices | None = None,
    late_usage: LateUsage | None = None,
) -> Organization:
    return await ctx.services.organizations.update_settings(
        ctx.org,
        refund_approval_thresholds=refund_approval_thresholds,
        customer_max_quantity=customer_max_quantity,
        customer_proration_behavior=customer_proration_behavior,
        customer_can_pause=customer_can_pause,
        ended_subscription_invoices=ended_subscription_invoices,
        late_usage=late_usage,
    )

"""Usage queries and mutations: metrics, events, usage series and current usage. A customer
token reads the usage of its own subscriptions only; recording usage is for staff."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.context import Context
from app.core.ids import has_prefix
from app.subscriptions import Status, Subscription
from app.usage import (
    BillableMetric,
    EventResult,
    Granularity,
    MetricDraft,
    MetricUsage,
    UsageBucket,
    UsageEventInput,
)

__all__ = [
    "archive_metric",
    "create_metric",
    "current_usage",
    "metrics_page",
    "record",
    "series",
]

# Statuses in which a period's usage will be billed at its end.
_BILLED = {Status.ACTIVE, Status.PAST_DUE, Status.UNPAID}
_LIVE = {Status.TRIALING, Status.PAUSED, Status.INCOMPLETE, *_BILLED}


async def metrics_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[BillableMetric], bool, Callable[[], Awaitable[int]]]:
    org, read = ctx.org, ctx.services.metrics.read
    nodes, has_next = await read.page(org, filters, first=first, after=after)
    return nodes, has_next, lambda: read.count(org, filters)


async def create_metric(ctx: Context, draft: MetricDraft) -> BillableMetric:
    return await ctx.services.metrics.create(ctx.org, draft)


async def archive_metric(ctx: Context, metric_id: str) -> BillableMetric:
    return await ctx.services.metrics.archive(ctx.org, metric_id)


async def record(ctx: Context, events: Sequence[UsageEventInput]) -> list[EventResult]:
    return await ctx.services.usage.record(ctx.org, events)


async def _visible(ctx: Context, subscription_id: str) -> Subscription | None:
    if not has_prefix(subscription_id, "sub"):
        return None
    found = await ctx.loaders.subscription_by_id.load(subscription_id)
    if found is None or not ctx.can_see_customer(found.customer_id):
        return None
    return found


async def series(
    ctx: Context,
    subscription_id: str,
    metric_code: str,
    start: datetime,
    end: datetime,
    granularity: Granularity,
) -> tuple[BillableMetric, Decimal, list[UsageBucket]] | None:
    """The metric's total and buckets on a visible subscription; None when the subscription
    is not visible or the metric unknown."""
    sub = await _visible(ctx, subscription_id)
    if sub is None:
        return None
    metric = (await ctx.services.metrics.by_codes(ctx.org, [metric_code])).get(metric_code)
    if metric is None:
        return None
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    buckets = await ctx.services.usage_queries.buckets(
        ctx.org, sub.id, metric, start, end, granularity
    )
    (measured,) = await ctx.services.usage_rating.measure(ctx.org, [(sub.id, [metric], start, end)])
    return metric, measured[metric.id], buckets


async def current_usage(ctx: Context, subscription: Any) -> list[MetricUsage]:
    """Each priced metric's usage in the subscription's current period (none once it ended);
    amounts only where the period will be billed (not in a trial or a pause)."""
    sub: Subscription = subscription
    if sub.status not in _LIVE:
        return []
    billable = sub.status in _BILLED and sub.period_index is not None
    return await ctx.loaders.current_usage_by_subscription.load(
        (sub.id, sub.plan_id, sub.price.currency, sub.current_period_start, billable)
    )

"""Statistics queries (admin only: the schema's permission class checks the role). "Now" is the
organization's clock, so a test clock's simulated time is what the figures follow."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from app.context import Context
from app.core.errors import DomainError, PublicError
from app.statistics import CurrencyRevenue, Overview, StatsInterval, SubscriptionStats

__all__ = ["overview", "revenue", "subscription_stats"]

T = TypeVar("T")


async def _answer(call: Awaitable[T]) -> T:
    """Turn a caller-fixable problem (a bad range, zone or currency) into a top-level error
    with its message: queries have no payload to carry it."""
    try:
        return await call
    except DomainError as exc:
        raise PublicError(exc.message) from None


async def revenue(
    ctx: Context,
    *,
    start: datetime,
    end: datetime,
    interval: StatsInterval,
    currency: str | None,
    time_zone: str,
) -> list[CurrencyRevenue]:
    return await _answer(
        ctx.services.statistics.revenue(
            ctx.org,
            start=start,
            end=end,
            interval=interval,
            currency=currency,
            time_zone=time_zone,
        )
    )


async def subscription_stats(
    ctx: Context, *, at: datetime | None, start: datetime | None, end: datetime | None
) -> SubscriptionStats:
    services = ctx.services
    when = at if at is not None else await services.clock.now(ctx.org)
    return await _answer(
        services.statistics.subscription_stats(ctx.org, at=when, start=start, end=end)
    )


async def overview(ctx: Context, *, time_zone: str) -> Overview:
    services = ctx.services
    now = await services.clock.now(ctx.org)
    return await _answer(services.statistics.overview(ctx.org, now=now, time_zone=time_zone))

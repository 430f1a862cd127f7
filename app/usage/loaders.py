"""Usage's batching loaders, scoped to one organization (assembled by `app.context`)."""

from __future__ import annotations

from datetime import datetime

from aiodataloader import DataLoader

from app.core.clock import Clock
from app.core.money import exponent
from app.usage.metrics import MeteredPriceRecord, MetricService
from app.usage.rating import MetricUsage, UsageRating

__all__ = ["CurrentUsageKey", "UsageLoaders"]

# (subscription id, plan id, currency, period start, billable): billable is false in a trial.
CurrentUsageKey = tuple[str, str, str, datetime, bool]


class UsageLoaders:
    """A plan's metered prices, and a subscription's usage in its current period: one or two
    statements per batch."""

    def __init__(self, metrics: MetricService, rating: UsageRating, clock: Clock, org: str) -> None:
        async def prices_by_plans(
            keys: list[tuple[str, str]],
        ) -> list[list[MeteredPriceRecord]]:
            plan_ids = [plan for plan, _ in keys]
            exponents = {plan: exponent(currency) for plan, currency in keys}
            return await metrics.prices_of_plans(org, plan_ids, exponents)

        async def current_usage(keys: list[CurrentUsageKey]) -> list[list[MetricUsage]]:
            now = await clock.now(org)
            return await rating.current(
                org,
                [
                    (sub, plan, currency, start, max(start, now), billable)
                    for sub, plan, currency, start, billable in keys
                ],
            )

        self.metered_prices_by_plan: DataLoader[tuple[str, str], list[MeteredPriceRecord]] = (
            DataLoader(prices_by_plans)
        )
        self.current_usage_by_subscription: DataLoader[CurrentUsageKey, list[MetricUsage]] = (
            DataLoader(current_usage)
        )

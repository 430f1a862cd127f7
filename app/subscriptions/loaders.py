"""Subscriptions' batching loaders, scoped to one organization (assembled by `app.context`)."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.subscriptions.model import Subscription
from app.subscriptions.service import SubscriptionService

__all__ = ["SubscriptionLoaders"]


class SubscriptionLoaders:
    """Subscriptions by id and by customer: one statement per batch."""

    def __init__(self, subscriptions: SubscriptionService, org: str) -> None:
        async def subscriptions_by_ids(ids: list[str]) -> list[Subscription | None]:
            return await subscriptions.read.by_ids(org, ids)

        async def subscriptions_of_customers(ids: list[str]) -> list[list[Subscription]]:
            return await subscriptions.of_customers(org, ids)

        self.subscription_by_id: DataLoader[str, Subscription | None] = DataLoader(
            subscriptions_by_ids
        )
        self.subscriptions_by_customer_id: DataLoader[str, list[Subscription]] = DataLoader(
            subscriptions_of_customers
        )

"""Outgoing webhooks' batching loaders, scoped to one organization (assembled by
`app.context`)."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.outgoing_webhooks.endpoints import WebhookEndpoints
from app.outgoing_webhooks.model import DeliveryAttempt, WebhookDelivery, WebhookEndpoint

__all__ = ["WebhookLoaders"]


class WebhookLoaders:
    """Endpoints and deliveries by id, and the attempt log by delivery: one statement per
    batch."""

    def __init__(self, endpoints: WebhookEndpoints, org: str) -> None:
        async def endpoints_by_ids(ids: list[str]) -> list[WebhookEndpoint | None]:
            return await endpoints.read.by_ids(org, ids)

        async def attempts_of(delivery_ids: list[str]) -> list[list[DeliveryAttempt]]:
            return await endpoints.attempts_of(org, delivery_ids)

        async def deliveries_by_ids(ids: list[str]) -> list[WebhookDelivery | None]:
            return await endpoints.deliveries.by_ids(org, ids)

        self.webhook_endpoint_by_id = DataLoader(endpoints_by_ids)
        self.webhook_delivery_by_id = DataLoader(deliveries_by_ids)
        self.attempts_by_delivery_id = DataLoader(attempts_of)

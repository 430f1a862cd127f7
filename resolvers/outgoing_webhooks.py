"""Outgoing webhooks (endpoints, deliveries, the event log) and the received Stripe events:
admins manage them; ``events`` is also open to service tokens (other back ends catching up).
The schema's permission classes check the roles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from app.context import Context
from app.core.auth import Role
from app.core.ids import has_prefix
from app.outgoing_webhooks import (
    DeliveryAttempt,
    EndpointChange,
    EndpointDraft,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.payments import ReceivedEvent

__all__ = [
    "attempts",
    "create",
    "delete",
    "deliveries_page",
    "endpoint_of",
    "endpoints_page",
    "events_page",
    "get_delivery",
    "get_endpoint",
    "redeliver",
    "replay",
    "rotate_secret",
    "stripe_events_page",
    "update",
]

Page = tuple[list[Any], bool, Callable[[], Awaitable[int]]]


async def endpoints_page(ctx: Context, *, first: int, after: str | None, newest: bool) -> Page:
    org = ctx.org
    filters = {"newest_first": newest}
    nodes, more = await ctx.services.webhook_endpoints.read.page(
        org, filters, first=first, after=after
    )
    for node in nodes:
        ctx.loaders.webhook_endpoint_by_id.prime(node.id, node)
    return nodes, more, lambda: ctx.services.webhook_endpoints.read.count(org, filters)


async def deliveries_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> Page:
    org = ctx.org
    listing = ctx.services.webhook_endpoints.deliveries
    nodes, more = await listing.page(org, filters, first=first, after=after)
    return nodes, more, lambda: listing.count(org, filters)


async def events_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> Page:
    org = ctx.org
    listing = ctx.services.webhook_endpoints.events
    nodes, more = await listing.page(org, filters, first=first, after=after)
    return nodes, more, lambda: listing.count(org, filters)


async def stripe_events_page(
    ctx: Context,
    state: str | None,
    *,
    first: int,
    after: tuple[datetime, str] | None,
    oldest: bool = False,
) -> tuple[list[ReceivedEvent], bool, Callable[[], Awaitable[int]]]:
    org = ctx.org
    webhooks = ctx.services.webhooks
    nodes, more = await webhooks.page(org, state, first=first, after=after, oldest=oldest)
    return nodes, more, lambda: webhooks.count(org, state)


def _admin(ctx: Context) -> bool:
    principal = ctx.principal
    return principal is not None and principal.role is Role.ADMIN


async def get_endpoint(ctx: Context, endpoint_id: str) -> WebhookEndpoint | None:
    """An endpoint by id (`node`): admins only; null for anyone else, as if missing."""
    if not _admin(ctx) or not has_prefix(endpoint_id, "we"):
        return None
    return await ctx.loaders.webhook_endpoint_by_id.load(endpoint_id)


async def get_delivery(ctx: Context, delivery_id: str) -> WebhookDelivery | None:
    """A delivery by id (`node`): admins only; null for anyone else, as if missing."""
    if not _admin(ctx) or len(delivery_id) > 100:
        return None
    return await ctx.loaders.webhook_delivery_by_id.load(delivery_id)


async def attempts(ctx: Context, delivery: WebhookDelivery) -> list[DeliveryAttempt]:
    return await ctx.loaders.attempts_by_delivery_id.load(delivery.id)


async def endpoint_of(ctx: Context, delivery: WebhookDelivery) -> WebhookEndpoint | None:
    return await ctx.loaders.webhook_endpoint_by_id.load(delivery.endpoint_id)


async def create(ctx: Context, draft: EndpointDraft) -> tuple[WebhookEndpoint, str]:
    return await ctx.services.webhook_endpoints.create(ctx.org, draft)


async def update(ctx: Context, endpoint_id: str, change: EndpointChange) -> WebhookEndpoint:
    return await ctx.services.webhook_endpoints.update(ctx.org, endpoint_id, change)


async def rotate_secret(
    ctx: Context, endpoint_id: str, grace_hours: int
) -> tuple[WebhookEndpoint, str]:
    return await ctx.services.webhook_endpoints.rotate_secret(
        ctx.org, endpoint_id, timedelta(hours=grace_hours)
    )


async def delete(ctx: Context, endpoint_id: str) -> WebhookEndpoint:
    return await ctx.services.webhook_endpoints.delete(ctx.org, endpoint_id)


async def redeliver(ctx: Context, delivery_id: str) -> WebhookDelivery:
    return await ctx.services.webhook_endpoints.redeliver(ctx.org, delivery_id)


async def replay(ctx: Context, event_id: str) -> ReceivedEvent:
    return await ctx.services.webhooks.replay(ctx.org, event_id)

"""Entitlements: a customer's, now (customer tokens: their own), and as a live stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.context import Context
from app.core.errors import Forbidden, PublicError
from app.core.ids import has_prefix
from app.core.pubsub import Event
from app.entitlements import Entitlements

__all__ = ["of_customer", "watch"]


class CustomerNotFound(PublicError):
    code = "NOT_FOUND"


async def of_customer(ctx: Context, customer_id: str) -> Entitlements | None:
    """The customer's entitlements; None when the customer is not visible to the caller."""
    if not has_prefix(customer_id, "cus") or not ctx.can_see_customer(customer_id):
        return None
    if await ctx.loaders.customer_by_id.load(customer_id) is None:
        return None
    return await ctx.services.entitlements.of_customer(ctx.org, customer_id)


async def watch(ctx: Context, customer_id: str) -> AsyncIterator[Entitlements]:
    """The customer's entitlements now, then after every change that may alter them: its
    subscriptions' changes, plan updates, and usage (which uses included credits)."""
    principal = ctx.require_principal()
    if principal.customer_id not in (None, customer_id):
        raise Forbidden("A customer token may watch its own entitlements only.")
    if (
        not has_prefix(customer_id, "cus")
        or await ctx.loaders.customer_by_id.load(customer_id) is None
    ):
        raise CustomerNotFound("Customer not found.")
    org, services = principal.org, ctx.services

    def accept(event: Event) -> bool:
        if event.org != org:
            return False
        if event.kind == "subscription":
            return bool(event.data.get("customer_id") == customer_id)
        if event.kind == "usage":
            named = event.data.get("customer_ids")
            return named is None or customer_id in named
        return event.kind == "plan"

    async def compute() -> Entitlements:
        return await services.entitlements.of_customer(org, customer_id)

    async for value in services.live.watch(accept, compute):
        ctx.require_unexpired()
        ctx.fresh_loaders()
        yield value

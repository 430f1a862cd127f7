"""Customer queries and mutations. Customer tokens see and change only themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.context import Context
from app.core.errors import NotFound
from app.core.ids import has_prefix
from app.customers import Customer, CustomerDraft

__all__ = ["create", "get", "list_page", "set_default_payment_method", "update"]


async def get(ctx: Context, customer_id: str) -> Customer | None:
    if not has_prefix(customer_id, "cus") or not ctx.can_see_customer(customer_id):
        return None
    return await ctx.loaders.customer_by_id.load(customer_id)


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[Customer], bool, Callable[[], Awaitable[int]]]:
    org, own = ctx.org, ctx.require_principal().customer_id
    scoped = {**filters, "id": own} if own else dict(filters)
    nodes, has_next = await ctx.services.customers.read.page(org, scoped, first=first, after=after)
    for node in nodes:
        ctx.loaders.customer_by_id.prime(node.id, node)
    return nodes, has_next, lambda: ctx.services.customers.read.count(org, scoped)


async def create(ctx: Context, draft: CustomerDraft) -> Customer:
    return await ctx.services.customers.create(ctx.org, draft)


async def update(ctx: Context, customer_id: str, changes: Mapping[str, Any]) -> Customer:
    return await ctx.services.customers.update(ctx.org, customer_id, changes)


async def set_default_payment_method(
    ctx: Context, customer_id: str, payment_method_id: str
) -> Customer:
    if not ctx.can_see_customer(customer_id):
        raise NotFound("Customer", ("input", "customerId"))
    return await ctx.services.customers.set_default_payment_method(
        ctx.org, customer_id, payment_method_id
    )

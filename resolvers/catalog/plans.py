"""Plan queries and mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.catalog import Plan, PlanDraft
from app.context import Context
from app.core.ids import has_prefix

__all__ = ["archive", "create", "get", "list_page", "update"]


async def get(ctx: Context, plan_id: str) -> Plan | None:
    if not has_prefix(plan_id, "plan"):
        return None
    return await ctx.loaders.plan_by_id.load(plan_id)


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[Plan], bool, Callable[[], Awaitable[int]]]:
    org = ctx.org
    nodes, has_next = await ctx.services.plans.read.page(org, filters, first=first, after=after)
    for node in nodes:
        ctx.loaders.plan_by_id.prime(node.id, node)
    return nodes, has_next, lambda: ctx.services.plans.read.count(org, filters)


async def create(ctx: Context, draft: PlanDraft) -> Plan:
    return await ctx.services.plans.create(ctx.org, draft)


async def update(ctx: Context, plan_id: str, changes: Mapping[str, Any]) -> Plan:
    return await ctx.services.plans.update(ctx.org, plan_id, changes)


async def archive(ctx: Context, plan_id: str) -> Plan:
    return await ctx.services.plans.archive(ctx.org, plan_id)

"""Plan queries and mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from app.catalog import Plan, PlanDraft
from app.context import Context
from app.core.errors import DomainError
from app.core.ids import has_prefix
from app.core.money import exponent
from app.usage import MeteredPriceDraft

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


async def create(ctx: Context, draft: PlanDraft, metered: Sequence[MeteredPriceDraft] = ()) -> Plan:
    """The plan, with its metered prices checked before it is made (a bad one makes
    nothing) and attached once it exists."""
    rows: list[dict[str, Any]] = []
    if metered:
        try:
            currency_exponent = exponent(draft.currency)
        except DomainError as exc:
            raise exc.at(("input", "price", "currency")) from None
        rows = await ctx.services.metrics.check_prices(ctx.org, metered, currency_exponent)
    plan = await ctx.services.plans.create(ctx.org, draft)
    await ctx.services.metrics.attach(ctx.org, plan.id, rows)
    return plan


async def update(ctx: Context, plan_id: str, changes: Mapping[str, Any]) -> Plan:
    return await ctx.services.plans.update(ctx.org, plan_id, changes)


async def archive(ctx: Context, plan_id: str) -> Plan:
    return await ctx.services.plans.archive(ctx.org, plan_id)

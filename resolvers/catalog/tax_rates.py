"""Tax rate queries and mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.catalog import TaxRateDraft, TaxRateRecord
from app.context import Context

__all__ = ["archive", "create", "list_page"]


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[TaxRateRecord], bool, Callable[[], Awaitable[int]]]:
    org, service = ctx.org, ctx.services.tax_rates
    nodes, has_next = await service.read.page(org, filters, first=first, after=after)
    return nodes, has_next, lambda: service.read.count(org, filters)


async def create(ctx: Context, draft: TaxRateDraft) -> TaxRateRecord:
    return await ctx.services.tax_rates.create(ctx.org, draft)


async def archive(ctx: Context, rate_id: str) -> TaxRateRecord:
    return await ctx.services.tax_rates.archive(ctx.org, rate_id)

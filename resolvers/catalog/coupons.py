"""Coupon queries and mutations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.catalog import CouponDraft, CouponRecord, Discount
from app.context import Context

__all__ = ["apply", "archive", "coupon_of", "create", "list_page"]


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[CouponRecord], bool, Callable[[], Awaitable[int]]]:
    org, service = ctx.org, ctx.services.coupons
    nodes, has_next = await service.read.page(org, filters, first=first, after=after)
    for node in nodes:
        ctx.loaders.coupon_by_id.prime(node.id, node)
    return nodes, has_next, lambda: service.read.count(org, filters)


async def coupon_of(ctx: Context, coupon_id: str | None) -> CouponRecord | None:
    if coupon_id is None:
        return None
    return await ctx.loaders.coupon_by_id.load(coupon_id)


async def create(ctx: Context, draft: CouponDraft) -> CouponRecord:
    return await ctx.services.coupons.create(ctx.org, draft)


async def archive(ctx: Context, coupon_id: str) -> CouponRecord:
    return await ctx.services.coupons.archive(ctx.org, coupon_id)


async def apply(
    ctx: Context, customer_id: str, *, coupon_id: str | None, code: str | None
) -> Discount:
    service = ctx.services.coupons
    coupon = await service.find(ctx.org, coupon_id=coupon_id, code=code)
    return await service.apply(ctx.org, coupon, customer_id, subscription_id=None)

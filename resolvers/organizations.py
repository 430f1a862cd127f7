"""The caller's organization and its settings."""

from __future__ import annotations

from collections.abc import Sequence

from app.context import Context
from app.organizations import Organization

__all__ = ["get", "set_refund_approval_thresholds"]


async def get(ctx: Context) -> Organization:
    return await ctx.services.organizations.get(ctx.org)


async def set_refund_approval_thresholds(
    ctx: Context, thresholds: Sequence[tuple[int, str]]
) -> Organization:
    return await ctx.services.organizations.set_refund_approval_thresholds(ctx.org, thresholds)

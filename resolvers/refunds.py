"""Refund queries and mutations. Customer tokens see (and ask for) refunds of their own
payments only, without staff identities or notes; approvals are for admins (checked by the
schema's permission classes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.context import Context
from app.core.ids import has_prefix
from app.payments import Payment, Refund, RefundAudit, RefundReason, audit_for

__all__ = ["approve", "audit", "create", "get", "list_page", "payment_of", "refresh", "reject"]


def audit(ctx: Context, refund: Refund) -> RefundAudit:
    """Who asked for, approved and rejected the refund, as this caller may see it."""
    return audit_for(refund, ctx.principal)


async def get(ctx: Context, refund_id: str) -> Refund | None:
    if not has_prefix(refund_id, "re"):
        return None
    refund = await ctx.loaders.refund_by_id.load(refund_id)
    if refund is None or not ctx.can_see_customer(refund.customer_id):
        return None
    return refund


async def _zero() -> int:
    return 0


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[Refund], bool, Callable[[], Awaitable[int]]]:
    org, own = ctx.org, ctx.require_principal().customer_id
    scoped = dict(filters)
    if own is not None:
        if scoped.get("customer_id") not in (None, own):
            return [], False, _zero
        scoped["customer_id"] = own
    nodes, has_next = await ctx.services.refunds.read.page(org, scoped, first=first, after=after)
    for node in nodes:
        ctx.loaders.refund_by_id.prime(node.id, node)
    return nodes, has_next, lambda: ctx.services.refunds.read.count(org, scoped)


async def payment_of(ctx: Context, refund: Refund) -> Payment | None:
    return await ctx.loaders.payment_by_id.load(refund.payment_id)


async def create(
    ctx: Context,
    payment_id: str,
    *,
    amount: int | None,
    currency: str | None,
    reason: RefundReason,
    note: str,
    idempotency_key: str,
) -> Refund:
    return await ctx.services.refunds.create(
        ctx.org,
        ctx.require_principal(),
        payment_id,
        amount=amount,
        currency=currency,
        reason=reason,
        note=note,
        idempotency_key=idempotency_key,
    )


async def approve(ctx: Context, refund_id: str, idempotency_key: str) -> Refund:
    return await ctx.services.refunds.approve(
        ctx.org, ctx.require_principal(), refund_id, idempotency_key=idempotency_key
    )


async def reject(ctx: Context, refund_id: str, reason: str) -> Refund:
    return await ctx.services.refunds.reject(
        ctx.org, ctx.require_principal(), refund_id, reason=reason
    )


async def refresh(ctx: Context, refund_id: str) -> Refund:
    return await ctx.services.refunds.refresh(ctx.org, ctx.require_principal(), refund_id)

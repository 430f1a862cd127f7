"""Payment queries and mutations. Customer tokens see and act on their own payments only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.context import Context
from app.core.ids import has_prefix
from app.payments import CurrencySummary, Payment, PaymentDraft, Refund

__all__ = [
    "PaymentPage",
    "cancel",
    "capture",
    "confirm",
    "create",
    "get",
    "list_page",
    "of_customer",
    "refresh",
    "refunds_of",
]


class PaymentPage:
    """A page of payments with lazy totals (computed only when selected)."""

    def __init__(
        self,
        nodes: list[Payment],
        has_next: bool,
        count: Callable[[], Awaitable[int]],
        summary: Callable[[], Awaitable[list[CurrencySummary]]],
    ) -> None:
        self.nodes = nodes
        self.has_next = has_next
        self.count = count
        self.summary = summary


async def _nothing_count() -> int:
    return 0


async def _nothing_summary() -> list[CurrencySummary]:
    return []


async def get(ctx: Context, payment_id: str) -> Payment | None:
    if not has_prefix(payment_id, "pay"):
        return None
    payment = await ctx.loaders.payment_by_id.load(payment_id)
    if payment is None or not ctx.can_see_customer(payment.customer_id):
        return None
    return payment


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> PaymentPage:
    org, own = ctx.org, ctx.require_principal().customer_id
    scoped = dict(filters)
    if own is not None:
        if scoped.get("customer_id") not in (None, own):
            return PaymentPage([], False, _nothing_count, _nothing_summary)
        scoped["customer_id"] = own
    service = ctx.services.payments
    nodes, has_next = await service.read.page(org, scoped, first=first, after=after)
    for node in nodes:
        ctx.loaders.payment_by_id.prime(node.id, node)
    return PaymentPage(
        nodes,
        has_next,
        lambda: service.read.count(org, scoped),
        lambda: service.summary(org, scoped),
    )


async def of_customer(
    ctx: Context, customer_id: str, *, first: int, after: str | None, newest: bool = False
) -> PaymentPage:
    """A customer's payments; batched with the other customers of the same response."""
    key = (customer_id, first, after, newest)
    nodes, has_next = await ctx.loaders.payments_by_customer_id.load(key)
    for node in nodes:
        ctx.loaders.payment_by_id.prime(node.id, node)
    summaries = ctx.loaders.payment_summary_by_customer_id

    async def count() -> int:
        return sum(s.count for s in await summaries.load(customer_id))

    async def summary() -> list[CurrencySummary]:
        return await summaries.load(customer_id)

    # totalCount and summary come from one statement for all the customers of a response.
    return PaymentPage(nodes, has_next, count, summary)


async def refunds_of(ctx: Context, payment: Payment) -> list[Refund]:
    return await ctx.loaders.refunds_by_payment_id.load(payment.id)


async def create(ctx: Context, draft: PaymentDraft, idempotency_key: str) -> Payment:
    return await ctx.services.payments.create(
        ctx.org, ctx.require_principal(), draft, idempotency_key=idempotency_key
    )


async def confirm(
    ctx: Context, payment_id: str, payment_method_id: str | None, idempotency_key: str
) -> Payment:
    return await ctx.services.payments.confirm(
        ctx.org,
        ctx.require_principal(),
        payment_id,
        payment_method_id=payment_method_id,
        idempotency_key=idempotency_key,
    )


async def capture(
    ctx: Context,
    payment_id: str,
    amount: int | None,
    currency: str | None,
    idempotency_key: str,
) -> Payment:
    return await ctx.services.payments.capture(
        ctx.org,
        ctx.require_principal(),
        payment_id,
        amount=amount,
        currency=currency,
        idempotency_key=idempotency_key,
    )


async def cancel(ctx: Context, payment_id: str, idempotency_key: str) -> Payment:
    return await ctx.services.payments.cancel(
        ctx.org, ctx.require_principal(), payment_id, idempotency_key=idempotency_key
    )


async def refresh(ctx: Context, payment_id: str) -> Payment:
    return await ctx.services.payments.refresh(ctx.org, ctx.require_principal(), payment_id)

"""Invoice queries and mutations. Customer tokens see (and pay) their own invoices only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from app.context import Context
from app.core.errors import NotFound
from app.core.ids import has_prefix
from app.invoicing import (
    ChargeResult,
    Invoice,
    InvoiceDraft,
    InvoiceLine,
    InvoiceSettings,
    LineInput,
)

__all__ = [
    "add_line",
    "create",
    "document_url",
    "finalize",
    "get",
    "lines_of",
    "list_page",
    "mark_uncollectible",
    "of_customer",
    "pay",
    "remove_line",
    "settings",
    "update_settings",
    "void",
]

Page = tuple[list[Invoice], bool, Callable[[], Awaitable[int]]]


async def _no_count() -> int:
    return 0


async def get(ctx: Context, invoice_id: str) -> Invoice | None:
    if not has_prefix(invoice_id, "inv"):
        return None
    invoice = await ctx.loaders.invoice_by_id.load(invoice_id)
    if invoice is None or not ctx.can_see_customer(invoice.customer_id):
        return None
    return invoice


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> Page:
    org, own = ctx.org, ctx.require_principal().customer_id
    scoped = dict(filters)
    if own is not None:
        if scoped.get("customer_id") not in (None, own):
            return [], False, _no_count
        scoped["customer_id"] = own
    service = ctx.services.invoices
    nodes, has_next = await service.read.page(org, scoped, first=first, after=after)
    for node in nodes:
        ctx.loaders.invoice_by_id.prime(node.id, node)
    return nodes, has_next, lambda: service.read.count(org, scoped)


async def of_customer(
    ctx: Context,
    customer_id: str,
    *,
    first: int,
    after: str | None,
    statuses: Sequence[str] | None,
    newest: bool = False,
) -> Page:
    """``Customer.invoices``: one statement for the pages of every customer in the response
    (the customer itself was already checked visible)."""
    shape = tuple(statuses) if statuses else None
    nodes, has_next = await ctx.loaders.invoices_by_customer_id.load(
        (customer_id, first, after, shape, newest)
    )
    for node in nodes:
        ctx.loaders.invoice_by_id.prime(node.id, node)
    return (
        nodes,
        has_next,
        lambda: ctx.loaders.invoice_count_by_customer_id.load((customer_id, shape)),
    )


async def lines_of(ctx: Context, invoice: Invoice) -> list[InvoiceLine]:
    return await ctx.loaders.lines_by_invoice_id.load(invoice.id)


def document_url(ctx: Context, path: str) -> str:
    """An absolute URL on this server when serving HTTP, else the path."""
    request = ctx.request
    if request is None:
        return path
    return str(request.base_url).rstrip("/") + path


async def create(ctx: Context, draft: InvoiceDraft, idempotency_key: str) -> Invoice:
    return await ctx.services.invoices.create(ctx.org, draft, idempotency_key=idempotency_key)


async def add_line(ctx: Context, invoice_id: str, line: LineInput) -> Invoice:
    return await ctx.services.invoices.add_line(ctx.org, invoice_id, line)


async def remove_line(ctx: Context, invoice_id: str, line_id: str) -> Invoice:
    return await ctx.services.invoices.remove_line(ctx.org, invoice_id, line_id)


async def finalize(ctx: Context, invoice_id: str) -> Invoice:
    return await ctx.services.invoices.finalize(ctx.org, invoice_id)


async def void(ctx: Context, invoice_id: str, reason: str) -> Invoice:
    return await ctx.services.invoices.void(ctx.org, invoice_id, reason)


async def mark_uncollectible(ctx: Context, invoice_id: str, reason: str) -> Invoice:
    return await ctx.services.invoices.mark_uncollectible(ctx.org, invoice_id, reason)


async def pay(
    ctx: Context, invoice_id: str, payment_method_id: str | None, idempotency_key: str
) -> ChargeResult:
    """Charge an invoice; a customer token may pay its own invoices only."""
    invoice = await visible_invoice(ctx, invoice_id, ("input", "invoiceId"))
    return await ctx.services.invoice_billing.charge(
        ctx.org,
        invoice.id,
        idempotency_key=idempotency_key,
        payment_method_id=payment_method_id,
        actor=ctx.require_principal(),
    )


async def visible_invoice(ctx: Context, invoice_id: str, field: tuple[str, ...]) -> Invoice:
    """The invoice if the caller may act on it; NOT_FOUND otherwise (as for a missing id)."""
    invoice = await get(ctx, invoice_id)
    if invoice is None:
        raise NotFound("Invoice", field)
    return invoice


async def settings(ctx: Context) -> InvoiceSettings:
    return await ctx.services.invoice_settings.get(ctx.org)


async def update_settings(ctx: Context, changes: Mapping[str, Any]) -> InvoiceSettings:
    return await ctx.services.invoice_settings.update(ctx.org, changes)

"""Credit note queries and mutations. Customer tokens see their own credit notes only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from app.context import Context
from app.core.ids import has_prefix
from app.invoicing import CreditNote, CreditNoteDraft, CreditNoteLine

__all__ = ["create", "get", "lines_of", "list_page", "of_invoice"]


async def _no_count() -> int:
    return 0


async def get(ctx: Context, note_id: str) -> CreditNote | None:
    if not has_prefix(note_id, "cn"):
        return None
    note = await ctx.loaders.credit_note_by_id.load(note_id)
    if note is None or not ctx.can_see_customer(note.customer_id):
        return None
    return note


async def list_page(
    ctx: Context, filters: Mapping[str, Any], *, first: int, after: str | None
) -> tuple[list[CreditNote], bool, Callable[[], Awaitable[int]]]:
    org, own = ctx.org, ctx.require_principal().customer_id
    scoped = dict(filters)
    if own is not None:
        if scoped.get("customer_id") not in (None, own):
            return [], False, _no_count
        scoped["customer_id"] = own
    service = ctx.services.credit_notes
    nodes, has_next = await service.read.page(org, scoped, first=first, after=after)
    for node in nodes:
        ctx.loaders.credit_note_by_id.prime(node.id, node)
    return nodes, has_next, lambda: service.read.count(org, scoped)


async def of_invoice(ctx: Context, invoice_id: str) -> list[CreditNote]:
    return await ctx.loaders.credit_notes_by_invoice_id.load(invoice_id)


async def lines_of(ctx: Context, note: CreditNote) -> list[CreditNoteLine]:
    return await ctx.loaders.lines_by_credit_note_id.load(note.id)


async def create(ctx: Context, draft: CreditNoteDraft, idempotency_key: str) -> CreditNote:
    return await ctx.services.credit_notes.create(
        ctx.org, ctx.require_principal(), draft, idempotency_key=idempotency_key
    )

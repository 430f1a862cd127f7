"""Any object by its id (Relay's `node`): the id's prefix names the type, and the type's own
`get` answers, with the same scoping as the typed query (null when missing or not yours)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.context import Context
from app.core.auth import Role
from app.core.ids import has_prefix
from resolvers import customers, outgoing_webhooks, payments, refunds, subscriptions
from resolvers.catalog import plans
from resolvers.invoicing import credit_notes, invoices

__all__ = ["MAX_NODES", "get", "get_many"]

MAX_NODES = 100


async def _staff_only(ctx: Context, read: Any, node_id: str, prefix: str) -> Any:
    """A catalog object (staff see it; a customer token gets null, as from the typed list)."""
    if ctx.require_principal().role not in (Role.ADMIN, Role.SERVICE):
        return None
    if not has_prefix(node_id, prefix):
        return None
    (found,) = await read.by_ids(ctx.org, [node_id])
    return found


async def _invoice_line(ctx: Context, node_id: str) -> Any:
    (found,) = await ctx.services.invoices.lines_by_ids(ctx.org, [node_id])
    return found[0] if found is not None and ctx.can_see_customer(found[1]) else None


async def _credit_note_line(ctx: Context, node_id: str) -> Any:
    (found,) = await ctx.services.credit_notes.lines_by_ids(ctx.org, [node_id])
    return found[0] if found is not None and ctx.can_see_customer(found[1]) else None


async def _discount(ctx: Context, node_id: str) -> Any:
    (found,) = await ctx.services.coupons.discounts.by_ids(ctx.org, [node_id])
    return found if found is not None and ctx.can_see_customer(found.customer_id) else None


async def _ledger_entry(ctx: Context, node_id: str) -> Any:
    if ctx.require_principal().role not in (Role.ADMIN, Role.SERVICE):
        return None  # customers read their ledger through `ledger`, their side only
    (found,) = await ctx.services.ledger.entries_by_ids(ctx.org, [node_id])
    return found


async def _metered_price(ctx: Context, node_id: str) -> Any:
    (found,) = await ctx.services.metrics.prices_by_ids(ctx.org, [node_id])
    return None if found is None else found[0]


async def _api_key(ctx: Context, node_id: str) -> Any:
    if ctx.require_principal().role is not Role.ADMIN:
        return None  # admins manage keys; nobody else sees them (as `apiKeys`)
    return await ctx.services.identity.api_keys.by_id(ctx.org, node_id)


async def _audit_entry(ctx: Context, node_id: str) -> Any:
    if ctx.require_principal().role is not Role.ADMIN:
        return None  # as `auditLog`: admins only
    return await ctx.services.audit.by_id(ctx.org, node_id)


async def _event(ctx: Context, node_id: str) -> Any:
    """`evt_…`: an event written for other back ends (our id), else a Stripe event received
    (Stripe's id): as `events` (admins and services) and `stripeEvents` (admins)."""
    role = ctx.require_principal().role
    if has_prefix(node_id, "evt"):
        if role not in (Role.ADMIN, Role.SERVICE):
            return None
        (found,) = await ctx.services.webhook_endpoints.events.by_ids(ctx.org, [node_id])
        return found
    if role is not Role.ADMIN:
        return None
    return await ctx.services.webhooks.received(ctx.org, node_id)


def _checked(prefix: str, getter: Callable[[Context, str], Awaitable[Any]]) -> Any:
    async def get(ctx: Context, node_id: str) -> Any:
        return await getter(ctx, node_id) if has_prefix(node_id, prefix) else None

    return get


_BY_PREFIX: dict[str, Callable[[Context, str], Awaitable[Any]]] = {
    "il": _checked("il", _invoice_line),
    "cnl": _checked("cnl", _credit_note_line),
    "di": _checked("di", _discount),
    "le": _checked("le", _ledger_entry),
    "mp": _checked("mp", _metered_price),
    "key": _checked("key", _api_key),
    "evt": _event,
    "aud": _checked("aud", _audit_entry),
    "coup": lambda ctx, i: _staff_only(ctx, ctx.services.coupons.read, i, "coup"),
    "txr": lambda ctx, i: _staff_only(ctx, ctx.services.tax_rates.read, i, "txr"),
    "bm": lambda ctx, i: _staff_only(ctx, ctx.services.metrics.read, i, "bm"),
    "plan": plans.get,
    "cus": customers.get,
    "pay": payments.get,
    "re": refunds.get,
    "inv": invoices.get,
    "cn": credit_notes.get,
    "sub": subscriptions.get,
    "we": outgoing_webhooks.get_endpoint,
    "whd": outgoing_webhooks.get_delivery,
}


async def get(ctx: Context, node_id: str) -> Any:
    """The object ``node_id`` names, or None (unknown prefix, missing, or not visible). The
    organization itself is a node too: its id is the token's organization (admins only)."""
    principal = ctx.require_principal()
    if node_id == principal.org:
        if principal.role is not Role.ADMIN:
            return None
        return await ctx.services.organizations.get(principal.org)
    getter = _BY_PREFIX.get(node_id.partition("_")[0])
    return None if getter is None else await getter(ctx, node_id)


async def get_many(ctx: Context, node_ids: Sequence[str]) -> list[Any]:
    """``get`` for each id, in order; the loads of one type are batched together."""
    return list(await asyncio.gather(*(get(ctx, node_id) for node_id in node_ids)))

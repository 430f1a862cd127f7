"""Any object by its id (Relay's `node`): the id's prefix names the type, and the type's own
`get` answers, with the same scoping as the typed query (null when missing or not yours)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.context import Context
from resolvers import customers, outgoing_webhooks, payments, refunds, subscriptions
from resolvers.catalog import plans
from resolvers.invoicing import credit_notes, invoices

__all__ = ["MAX_NODES", "get", "get_many"]

MAX_NODES = 100

_BY_PREFIX: dict[str, Callable[[Context, str], Awaitable[Any]]] = {
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
    """The object ``node_id`` names, or None (unknown prefix, missing, or not visible)."""
    getter = _BY_PREFIX.get(node_id.partition("_")[0])
    return None if getter is None else await getter(ctx, node_id)


async def get_many(ctx: Context, node_ids: Sequence[str]) -> list[Any]:
    """``get`` for each id, in order; the loads of one type are batched together."""
    return list(await asyncio.gather(*(get(ctx, node_id) for node_id in node_ids)))

"""Relay's Node interface: every object `Query.node` can fetch by its id implements it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import strawberry

from app.core.errors import PublicError
from resolvers import node as resolve
from schema.base import Info
from schema.permissions import AnyRole

__all__ = ["Node", "NodeQueries", "converted", "serves"]

# Domain classes that `node` cannot serve as they are (their schema type is built from them):
# each schema module registers how (``converted``).
_CONVERTERS: dict[type, Callable[[Any], Any]] = {}


def converted(domain: type, convert: Callable[[Any], Any]) -> None:
    """Serve ``domain`` objects that `node` finds through ``convert`` (to their schema type)."""
    _CONVERTERS[domain] = convert


def _served(found: Any) -> Any:
    convert = _CONVERTERS.get(type(found))
    return found if convert is None else convert(found)


@strawberry.interface(
    description="An object with an id unique across all types (`pay_…`, `cus_…`, `inv_…`), "
    "which `Query.node` fetches (Relay's Node interface)."
)
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque id, unique across types.")


def serves(domain: type) -> Any:
    """A Node type's ``is_type_of``: resolvers return the domain object served as the schema
    type, so an object is of the type when it is one or the other (for `node`'s resolution)."""

    def is_type_of(cls: type, obj: Any, info: Any) -> bool:
        return isinstance(obj, cls | domain)

    return classmethod(is_type_of)


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="The object with this id, whatever its type (every object with an id is a "
        "Node: Plan, Customer, Payment, Refund, Invoice, InvoiceLine, CreditNote, "
        "CreditNoteLine, Subscription, Coupon, Discount, TaxRate, BillableMetric, "
        "MeteredPrice, LedgerEntry, WebhookEndpoint, WebhookDelivery, and the Organization by its "
        "id); null if it does not exist "
        "or is not yours, exactly as the typed query or list would answer (catalog objects and "
        "ledger entries: staff only; webhooks and the organization: admins).",
        permission_classes=[AnyRole],
        graphql_type=Node | None,
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Any object's id.")],
    ) -> Any:
        return _served(await resolve.get(info.context, id))

    @strawberry.field(
        description=f"The objects with these ids, in order (at most {resolve.MAX_NODES}); "
        "null for each that does not exist or is not yours.",
        permission_classes=[AnyRole],
        graphql_type=list[Node | None],
    )
    async def nodes(
        self,
        info: Info,
        ids: Annotated[list[strawberry.ID], strawberry.argument(description="Objects' ids.")],
    ) -> list[Any]:
        if len(ids) > resolve.MAX_NODES:
            raise PublicError(f"`ids` holds at most {resolve.MAX_NODES} ids.")
        return [_served(found) for found in await resolve.get_many(info.context, ids)]

"""Relay connections with keyset cursors."""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import strawberry

from app.core.errors import PublicError

__all__ = [
    "AFTER",
    "FIRST",
    "ORDER_BY",
    "Connection",
    "Edge",
    "ListOrder",
    "PageInfo",
    "decode_cursor",
    "ordered",
    "page_size",
    "to_connection",
    "to_keyed_connection",
]

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
FIRST = f"Page size, 1-{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})."
AFTER = "Return the nodes after this cursor (`pageInfo.endCursor` of the previous page)."
ORDER_BY = (
    "Oldest first (the default) or newest first; `after` continues in the same order (pass "
    "the same `orderBy` with it)."
)
# Keys are our ids (``plan_01jd…``): ASCII letters, digits, '_' and '-', so a cursor can never
# carry a NUL or another character PostgreSQL would refuse into the query.
_KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")
_MAX_CURSOR = 200


@strawberry.enum(description="The order of a list's pages (ids sort by creation time).")
class ListOrder(enum.Enum):
    OLDEST_FIRST = strawberry.enum_value("oldest_first", description="Creation order.")
    NEWEST_FIRST = strawberry.enum_value("newest_first", description="Latest created first.")


def ordered(filters: Mapping[str, Any], order: ListOrder) -> dict[str, Any]:
    """``filters`` with the order a repository's ``page`` reads (``newest_first``)."""
    return {**filters, "newest_first": order is ListOrder.NEWEST_FIRST}


class HasId(Protocol):
    """What a connection's node needs: its id is the keyset cursor."""

    @property
    def id(self) -> str: ...


N = TypeVar("N", bound=HasId)


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor from ``encode_cursor`` holds; anything else (not base64, not UTF-8, a
    NUL or any character an id cannot have, too long) is a BAD_USER_INPUT error."""
    if cursor is None:
        return None
    raw = ""
    if len(cursor) <= _MAX_CURSOR:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raw = ""
    key = raw[2:] if raw.startswith("k:") else ""
    if not _KEY.fullmatch(key):
        raise PublicError("The `after` cursor is not one this API issued.")
    return key


def page_size(first: int | None) -> int:
    size = DEFAULT_PAGE_SIZE if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise PublicError(f"`first` must be between 1 and {MAX_PAGE_SIZE}.")
    return size


@strawberry.type(
    description="Where a page starts and ends and whether more follow (Relay's PageInfo)."
)
class PageInfo:
    has_next_page: bool = strawberry.field(description="True when another page follows.")
    has_previous_page: bool = strawberry.field(
        description="Always false: pages are read forward with `first`/`after`, and the Relay "
        "specification lets a forward page answer false here (backward paging is not offered "
        "yet)."
    )
    start_cursor: str | None = strawberry.field(
        description="The cursor of the page's first node; null on an empty page."
    )
    end_cursor: str | None = strawberry.field(
        description="Pass as `after` to get the next page; null on an empty page."
    )


@strawberry.type(description="One node of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque position of this node.")
    node: T = strawberry.field(description="The object.")


@strawberry.type(description="A page of objects in a stable order (keyset pagination).")
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The objects of this page.")
    page_info: PageInfo = strawberry.field(description="Pagination state.")
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="Number of objects matching the filter (all pages).")
    async def total_count(self) -> int:
        return await self.count()


def to_keyed_connection(
    keyed: Sequence[tuple[str, T]], has_next: bool, count: Callable[[], Awaitable[int]]
) -> Connection[T]:
    """A page of nodes whose keyset position is not their id: (key, node) pairs."""
    edges = [Edge(cursor=encode_cursor(key), node=node) for key, node in keyed]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


def to_connection(
    nodes: Sequence[N], has_next: bool, count: Callable[[], Awaitable[int]]
) -> Connection[N]:
    """A page of ``nodes`` (domain objects; the field's ``graphql_type`` names the GraphQL
    type they are served as)."""
    edges = [Edge(cursor=encode_cursor(node.id), node=node) for node in nodes]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )

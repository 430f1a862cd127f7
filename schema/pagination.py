"""Relay connections with keyset cursors."""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import strawberry

from app.core.errors import PublicError

__all__ = [
    "AFTER",
    "BEFORE",
    "FIRST",
    "LAST",
    "ORDER_BY",
    "Connection",
    "Edge",
    "ListOrder",
    "PageInfo",
    "Window",
    "decode_cursor",
    "newest_first",
    "ordered",
    "page_size",
    "to_connection",
    "to_keyed_connection",
    "window",
]

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
FIRST = f"Page size, 1-{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})."
AFTER = "Return the nodes after this cursor (`pageInfo.endCursor` of the previous page)."
LAST = (
    f"Backward page size, 1-{MAX_PAGE_SIZE}: the last nodes (before `before`), in the list's "
    "order. Not with `first`/`after`."
)
BEFORE = "Return the nodes before this cursor (`pageInfo.startCursor` of the page after)."
ORDER_BY = (
    "Oldest first (the default) or newest first; `after` and `before` continue in the same "
    "order (pass the same `orderBy` with them)."
)
# Keys are our ids (``plan_01jd…``): ASCII letters, digits, '_' and '-', so a cursor can never
# carry a NUL or another character PostgreSQL would refuse into the query.
_KEY = re.compile(r"[A-Za-z0-9_-]{1,100}")
_MAX_CURSOR = 200


@strawberry.enum(description="The order of a list's pages (ids sort by creation time).")
class ListOrder(enum.Enum):
    OLDEST_FIRST = strawberry.enum_value("oldest_first", description="Creation order.")
    NEWEST_FIRST = strawberry.enum_value("newest_first", description="Latest created first.")


@dataclass(frozen=True, slots=True)
class Window:
    """The page asked for: ``size`` nodes after ``cursor`` (forward, ``first``/``after``), or
    before it (``backward``, ``last``/``before``), which is read as a forward page in the
    opposite order and turned around. ``bounded``: a cursor was given (a node lies beyond)."""

    size: int
    cursor: str | None
    backward: bool = False

    @property
    def bounded(self) -> bool:
        return self.cursor is not None


def window(
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> Window:
    """The page ``first``/``after`` or ``last``/``before`` name (a PublicError for both)."""
    if last is None and before is None:
        return Window(page_size(first), decode_cursor(after))
    if first is not None or after is not None:
        raise PublicError("Page with `first`/`after` or with `last`/`before`, not both.")
    return Window(page_size(last, "last"), decode_cursor(before, "before"), backward=True)


def newest_first(order: ListOrder, page: Window | None = None) -> bool:
    """Whether a page is read newest first: the list's order, or the opposite one to read a
    backward page."""
    newest = order is ListOrder.NEWEST_FIRST
    return not newest if page is not None and page.backward else newest


def ordered(
    filters: Mapping[str, Any], order: ListOrder, page: Window | None = None
) -> dict[str, Any]:
    """``filters`` with the order a repository's ``page`` reads (``newest_first``)."""
    return {**filters, "newest_first": newest_first(order, page)}


class HasId(Protocol):
    """What a connection's node needs: its id is the keyset cursor."""

    @property
    def id(self) -> str: ...


N = TypeVar("N", bound=HasId)


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"k:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, name: str = "after") -> str | None:
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
        raise PublicError(f"The `{name}` cursor is not one this API issued.")
    return key


def page_size(first: int | None, name: str = "first") -> int:
    size = DEFAULT_PAGE_SIZE if first is None else first
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise PublicError(f"`{name}` must be between 1 and {MAX_PAGE_SIZE}.")
    return size


@strawberry.type(
    description="Where a page starts and ends and whether more follow (Relay's PageInfo)."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="True when another page follows (with `last`/`before`: when `before` was "
        "given, since that node follows)."
    )
    has_previous_page: bool = strawberry.field(
        description="True when another page precedes (with `first`/`after`: when `after` was "
        "given, since that node precedes)."
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
    keyed: Sequence[tuple[str, T]],
    has_next: bool,
    count: Callable[[], Awaitable[int]],
    *,
    has_previous: bool = False,
) -> Connection[T]:
    """A page of nodes whose keyset position is not their id: (key, node) pairs, in order."""
    edges = [Edge(cursor=encode_cursor(key), node=node) for key, node in keyed]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


def to_connection(
    nodes: Sequence[N],
    has_next: bool,
    count: Callable[[], Awaitable[int]],
    page: Window | None = None,
) -> Connection[N]:
    """A page of ``nodes`` (domain objects; the field's ``graphql_type`` names the GraphQL
    type they are served as), read as ``page`` says: a backward page was read in the opposite
    order, so it is turned around, and its "more" is the previous pages'."""
    backward = page is not None and page.backward
    bounded = page is not None and page.bounded
    if backward:
        nodes = list(reversed(nodes))
    edges = [Edge(cursor=encode_cursor(node.id), node=node) for node in nodes]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=bounded if backward else has_next,
            has_previous_page=has_next if backward else bounded,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )

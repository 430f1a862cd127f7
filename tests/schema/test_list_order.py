"""`orderBy: NEWEST_FIRST` on the lists front ends show latest first: keyset pages that
continue in the same order with `after`, the same nodes as oldest first, reversed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import GraphQLClient

LISTS = ["payments", "refunds", "invoices", "creditNotes", "subscriptions"]


def _page(field: str) -> str:
    return f"""query($after: String, $order: ListOrder) {{
      {field}(first: 2, after: $after, orderBy: $order) {{
        edges {{ node {{ id }} }} pageInfo {{ hasNextPage endCursor }} totalCount
      }}
    }}"""


async def _all(admin: GraphQLClient, field: str, order: str) -> list[str]:
    ids: list[str] = []
    after = None
    for _ in range(20):
        page = (await admin.data(_page(field), {"after": after, "order": order}))[field]
        ids += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("more pages than expected")


async def test_payments_newest_first_pages_through_everything_in_reverse(
    admin: GraphQLClient, payment_factory: Callable[..., Any]
) -> None:
    made = [(await payment_factory())["id"] for _ in range(5)]
    assert await _all(admin, "payments", "OLDEST_FIRST") == made
    assert await _all(admin, "payments", "NEWEST_FIRST") == made[::-1]
    newest = (await admin.data(_page("payments"), {"order": "NEWEST_FIRST"}))["payments"]
    assert [e["node"]["id"] for e in newest["edges"]] == made[:-3:-1]
    assert newest["totalCount"] == 5


@pytest.mark.parametrize("field", LISTS)
def test_every_list_front_ends_show_latest_first_takes_order_by(field: str) -> None:
    from graphql import get_named_type

    from schema import schema
    from schema.strawberry_internals import graphql_core_schema

    core = graphql_core_schema(schema)
    assert core.query_type is not None
    argument = core.query_type.fields[field].args["orderBy"]
    assert get_named_type(argument.type).name == "ListOrder"
    assert argument.default_value is not None  # oldest first unless asked

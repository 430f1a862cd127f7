"""Every connection exposes Relay's whole PageInfo, which Relay's `@connection` requires
(`hasNextPage`, `hasPreviousPage`, `startCursor`, `endCursor`; Relay Compiler 21 refused the
schema without the middle two), and the values follow the page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLNonNull, GraphQLObjectType

from schema import schema
from schema.strawberry_internals import graphql_core_schema
from tests.support import GraphQLClient

PAGE = """query($after: String) {
  plans(first: 2, after: $after) {
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


def test_every_connection_has_relays_page_info() -> None:
    core = graphql_core_schema(schema)
    connections = [
        t
        for name, t in core.type_map.items()
        if isinstance(t, GraphQLObjectType) and name.endswith("Connection")
    ]
    assert len(connections) >= 9
    for connection in connections:
        page_info = connection.fields["pageInfo"].type
        assert isinstance(page_info, GraphQLNonNull)
        fields = page_info.of_type.fields
        for name in ("hasNextPage", "hasPreviousPage", "startCursor", "endCursor"):
            assert name in fields, (connection.name, name)


async def test_page_info_follows_the_page(
    admin: GraphQLClient, plan_factory: Callable[..., Any]
) -> None:
    for _ in range(3):
        await plan_factory()
    first = (await admin.data(PAGE))["plans"]
    info = first["pageInfo"]
    assert info["hasNextPage"] is True
    assert info["hasPreviousPage"] is False
    assert info["startCursor"] == first["edges"][0]["cursor"]
    assert info["endCursor"] == first["edges"][-1]["cursor"]
    second = (await admin.data(PAGE, {"after": info["endCursor"]}))["plans"]
    assert len(second["edges"]) == 1
    assert second["pageInfo"]["hasNextPage"] is False
    assert second["pageInfo"]["startCursor"] == second["pageInfo"]["endCursor"]
    assert second["pageInfo"]["startCursor"] == second["edges"][0]["cursor"]
    assert second["pageInfo"]["hasPreviousPage"] is True  # `after`: that node precedes


BACKWARD = """query($before: String, $order: ListOrder!) {
  invoices(last: 2, before: $before, orderBy: $order) {
    edges { node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
NESTED = """query($id: ID!, $before: String) {
  customer(id: $id) {
    invoices(last: 2, before: $before) {
      edges { node { id } } pageInfo { hasPreviousPage startCursor }
    }
    payments(last: 1) { edges { node { id } } pageInfo { hasPreviousPage hasNextPage } }
  }
}"""


async def test_backward_pages_walk_the_list_from_its_end_in_both_orders(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
    payment_factory: Callable[..., Any],
) -> None:
    customer = await customer_factory()
    made = [
        (await invoice_factory(customer=customer, lines=[{"description": "x", "unitAmount": 100}]))[
            "id"
        ]
        for _ in range(5)
    ]
    await payment_factory(customer=customer)
    await payment_factory(customer=customer)
    for order, expected in (("OLDEST_FIRST", made), ("NEWEST_FIRST", made[::-1])):
        seen: list[str] = []
        before = None
        while True:
            page = (await admin.data(BACKWARD, {"before": before, "order": order}))["invoices"]
            ids = [e["node"]["id"] for e in page["edges"]]
            seen = ids + seen
            assert page["pageInfo"]["hasNextPage"] is (before is not None)
            if not page["pageInfo"]["hasPreviousPage"]:
                break
            before = page["pageInfo"]["startCursor"]
        assert seen == expected, order  # every node once, in the list's own order
    last_two = (await admin.data(NESTED, {"id": customer["id"]}))["customer"]
    assert [e["node"]["id"] for e in last_two["invoices"]["edges"]] == made[-2:]
    assert last_two["invoices"]["pageInfo"]["hasPreviousPage"] is True
    assert last_two["payments"]["pageInfo"] == {"hasPreviousPage": True, "hasNextPage": False}
    both = await admin("{ plans(first: 1, last: 1) { edges { cursor } } }")
    assert "not both" in both["errors"][0]["message"]

"""N+1 guard over the whole schema: every list and connection reachable from a root list answers
with a constant number of SQL statements, whatever the number of rows.

The queries are generated from the schema, so a field added later is walked too: for each root
connection of `Query`, one query selects every field of its nodes that needs no argument, one
per path to an object field of the node (a nested object, list or connection, with its own
fields) and one per path one level deeper (184 queries today). Each runs on two organizations
`billing demo` filled with the same scenario at two sizes: the large one must not repeat a
statement the small one ran (a statement per row), and no query may run more than
``MAX_STATEMENTS``. Seeded with one loader made per row, it fails on every path through it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    is_leaf_type,
)

from app.core.settings import Settings
from app.demo import DemoOptions, run_demo
from app.web.app import create_app
from db.connection import count_statements
from schema import schema
from schema.strawberry_internals import graphql_core_schema
from tests.conftest import running
from tests.support import new_org, token

MAX_STATEMENTS = 6
# Roots with more rows in the large organization (the catalog is the same size in both).
GROWING = {"customers", "payments", "invoices", "subscriptions"}
PAGE = 10  # rows per root page: the small organization has fewer, the large one this many
NESTED_PAGE = 5


def _named(kind: GraphQLOutputType) -> tuple[GraphQLNamedType, bool]:
    """The named type under wrappers, and whether a list is among them."""
    listed = False
    while isinstance(kind, GraphQLNonNull | GraphQLList):
        listed = listed or isinstance(kind, GraphQLList)
        kind = kind.of_type
    return kind, listed


def _callable(field: GraphQLField) -> bool:
    """No argument is required (so the walk can select it as it is)."""
    return not any(
        isinstance(arg.type, GraphQLNonNull) and arg.default_value is None
        for arg in field.args.values()
    )


def _is_connection(kind: GraphQLNamedType) -> bool:
    return isinstance(kind, GraphQLObjectType) and kind.name.endswith("Connection")


def _node_type(connection: GraphQLObjectType) -> GraphQLObjectType:
    edge, _ = _named(connection.fields["edges"].type)
    assert isinstance(edge, GraphQLObjectType)
    node, _ = _named(edge.fields["node"].type)
    assert isinstance(node, GraphQLObjectType)
    return node


def _leaves(kind: GraphQLObjectType) -> str:
    names = [
        name
        for name, field in kind.fields.items()
        if _callable(field) and is_leaf_type(_named(field.type)[0])
    ]
    return " ".join(names) or "__typename"


def _objects(kind: GraphQLObjectType) -> Iterator[tuple[str, GraphQLField, GraphQLObjectType]]:
    for name, field in kind.fields.items():
        target, _ = _named(field.type)
        if _callable(field) and isinstance(target, GraphQLObjectType):
            yield name, field, target


def _select(name: str, field: GraphQLField, kind: GraphQLObjectType, inner: str) -> str:
    """``name`` selecting ``inner`` of its objects (through edges/node for a connection)."""
    if _is_connection(kind):
        arguments = f"(first: {NESTED_PAGE})" if "first" in field.args else ""
        total = " totalCount" if "totalCount" in kind.fields else ""
        return f"{name}{arguments} {{{total} edges {{ node {{ {inner} }} }} }}"
    return f"{name} {{ {inner} }}"


def _inner(kind: GraphQLObjectType) -> GraphQLObjectType:
    return _node_type(kind) if _is_connection(kind) else kind


def generated_queries() -> dict[str, str]:
    """Path -> document: per root connection, its nodes' leaves (``payments``), each object
    field of the node with its leaves (``payments.refunds``), and each object field of that
    with its leaves (``payments.refunds.payment``)."""
    core = graphql_core_schema(schema)
    root = core.query_type
    assert root is not None
    queries: dict[str, str] = {}
    for root_name, root_field in root.fields.items():
        connection, _ = _named(root_field.type)
        if not _is_connection(connection) or not _callable(root_field):
            continue
        assert isinstance(connection, GraphQLObjectType)
        node = _node_type(connection)
        head = f"{root_name}(first: {PAGE}) {{ totalCount edges {{ node {{ id "
        queries[root_name] = f"{{ {head}{_leaves(node)} }} }} }} }}"
        for name, field, target in _objects(node):
            inner = _inner(target)
            one = _select(name, field, target, _leaves(inner))
            queries[f"{root_name}.{name}"] = f"{{ {head}{one} }} }} }} }}"
            for sub, sub_field, sub_target in _objects(inner):
                two = _select(sub, sub_field, sub_target, _leaves(_inner(sub_target)))
                selection = _select(name, field, target, f"{_leaves(inner)} {two}")
                queries[f"{root_name}.{name}.{sub}"] = f"{{ {head}{selection} }} }} }} }}"
    return queries


QUERIES = generated_queries()


@pytest.fixture(scope="module")
async def walked(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """Two organizations filled by the same demo scenario, a small and a large one, and an
    app whose per-document limits let the generated queries through."""
    small, large = new_org(), new_org()
    for org, customers in ((small, 4), (large, 14)):
        await run_demo(settings, DemoOptions(org=org, customers=customers, months=3, seed=11))
    roomy = settings.with_overrides(
        graphql_max_tokens=100_000,
        graphql_max_depth=30,
        graphql_max_cost=10_000_000,
        rate_limit_points=10_000_000,
    )
    async for http in running(create_app(roomy)):
        yield http, token(roomy, small, "admin"), token(roomy, large, "admin")


async def _statements(http: httpx.AsyncClient, bearer: str, query: str) -> tuple[list[str], Any]:
    with count_statements() as log:
        response = await http.post(
            "/graphql", json={"query": query}, headers={"authorization": f"Bearer {bearer}"}
        )
    body = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, (query, body["errors"][:2])
    return log.statements, body["data"]


def test_the_walk_covers_every_root_list_and_their_object_fields() -> None:
    roots = {name.split(".")[0] for name in QUERIES}
    assert {
        "plans",
        "customers",
        "payments",
        "refunds",
        "invoices",
        "creditNotes",
        "subscriptions",
        "coupons",
        "taxRates",
    } <= roots
    assert "customers.subscriptions" in QUERIES
    assert "invoices.lines" in QUERIES or "invoices.payments" in QUERIES


@pytest.mark.parametrize("name", sorted(QUERIES))
async def test_statements_do_not_grow_with_rows(
    walked: tuple[httpx.AsyncClient, str, str], name: str
) -> None:
    """The large organization may run a statement the small one did not (a kind of object
    only it has, e.g. an invoice with a coupon), but never one the small one ran, again: that
    is a statement per row."""
    http, small, large = walked
    query = QUERIES[name]
    few, few_data = await _statements(http, small, query)
    many, many_data = await _statements(http, large, query)
    root = name.split(".")[0]
    rows = (len(few_data[root]["edges"]), len(many_data[root]["edges"]))
    if root in GROWING:
        assert rows[0] < rows[1], rows  # else the comparison shows nothing
    more = Counter(many) - Counter(few)
    repeated = [statement for statement in more if statement in few]
    assert repeated == [], f"{name}: per row ({rows[0]} -> {rows[1]} rows): {repeated}"
    assert len(many) <= MAX_STATEMENTS, f"{name}: {len(many)} statements: {many}"

"""Abusive requests are refused before they execute, with an error that names the limit."""

from __future__ import annotations

import json
from typing import Any

import httpx
from graphql import parse

from app.core.settings import Settings
from app.web.app import create_app
from schema import schema
from schema.limits import LIST_ESTIMATE, MUTATION_COST, TOO_COMPLEX, operation_cost
from tests.conftest import running
from tests.support import GraphQLClient, error_codes, token

NESTED = "{ plans { edges { node { id } } } }"


async def test_depth_limit(settings: Settings, org: str) -> None:
    shallow = settings.with_overrides(graphql_max_depth=3)
    async for http in running(create_app(shallow)):
        client = GraphQLClient(http, token(settings, org))
        assert "errors" not in await client("{ plans { edges { node { id } } } }")
        body = await client("{ plans { edges { node { price { currency } } } } }")
        assert body["data"] is None
        assert "exceeds maximum operation depth of 3" in body["errors"][0]["message"]


async def test_aliases_tokens_and_mutation_count_are_limited(admin: GraphQLClient) -> None:
    aliases = "{ " + " ".join(f"a{i}: serviceInfo {{ name }}" for i in range(31)) + " }"
    body = await admin(aliases)
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"].lower()

    tokens = "{ serviceInfo { " + " ".join(["name"] * 2100) + " } }"
    body = await admin(tokens)
    assert body["data"] is None
    assert "token" in body["errors"][0]["message"].lower()

    archive = 'planArchive(input: {id: "plan_x"}) { errors { code } }'
    six = "mutation { " + " ".join(f"m{i}: {archive}" for i in range(6)) + " }"
    body = await admin(six)
    assert error_codes(body) == ["TOO_MANY_MUTATIONS"]
    assert body["errors"][0]["message"] == "A document may run at most 5 mutations; it has 6."


def cost(text: str, variables: dict[str, Any] | None = None) -> int:
    document = parse(text)
    fragments = {d.name.value: d for d in document.definitions if d.kind == "fragment_definition"}
    operation = next(d for d in document.definitions if d.kind == "operation_definition")
    return operation_cost(schema._schema, operation, fragments, variables or {})  # type: ignore[arg-type]


def test_cost_multiplies_what_a_connection_pages() -> None:
    assert cost("{ serviceInfo { name version } }") == 3
    # plans(first: 50): 1 + edges (1 + 50 x (node 1 + id 1)) = 102
    assert cost("{ plans(first: 50) { edges { node { id } } } }") == 102
    assert cost("query($n: Int) { plans(first: $n) { edges { node { id } } } }", {"n": 10}) == 22
    # Without `first` a connection counts its default page size (20).
    assert cost(NESTED) == 42
    # pageInfo and totalCount count once, not once per node.
    paged = "{ plans(first: 50) { totalCount pageInfo { hasNextPage } edges { node { id } } } }"
    assert cost(paged) == 105


def test_cost_sees_through_fragments() -> None:
    spread = "query { plans { ...P } } fragment P on PlanConnection { edges { node { id } } }"
    inline = "{ plans { ... on PlanConnection { edges { node { id } } } } }"
    nested = (
        "query { plans(first: 50) { edges { ...E } } } "
        "fragment E on PlanEdge { node { ...N } } fragment N on Plan { id }"
    )
    assert cost(spread) == cost(inline) == cost(NESTED) == 42
    assert cost(nested) == cost("{ plans(first: 50) { edges { node { id } } } }") == 102


def test_plain_lists_of_objects_count_an_estimate() -> None:
    # customers(first: 10): 1 + edges (1 + 10 x (node 1 + subscriptions (1 + 20 x id 1)))
    query = "{ customers(first: 10) { edges { node { subscriptions { id } } } } }"
    assert cost(query) == 2 + 10 * (1 + 1 + LIST_ESTIMATE)
    # A list of scalars counts as one field.
    assert cost('{ plan(id: "plan_x") { features } }') == 2


def test_mutations_cost_more_than_reads() -> None:
    archive = 'planArchive(input: {id: "plan_x"}) { errors { code } }'
    assert cost("mutation { " + archive + " }") == MUTATION_COST + 1 + 1 + LIST_ESTIMATE


def test_fragments_spread_twice_count_once_like_execution() -> None:
    """A spread repeated in one selection set is expanded once, as execution does, so a chain
    of doubling fragments costs what it runs, not 2^30."""
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(30))
    document = "query { ...F0 } " + fragments + " fragment F30 on Query { serviceInfo { name } }"
    assert cost(document) == 2


def test_documents_too_large_to_cost_count_as_too_costly() -> None:
    wide = "{ " + " ".join(f"a{i}: serviceInfo {{ name }}" for i in range(25_000)) + " }"
    assert cost(wide) == TOO_COMPLEX


async def test_costly_query_is_refused_before_execution(settings: Settings, org: str) -> None:
    cheap = settings.with_overrides(graphql_max_cost=100)
    async for http in running(create_app(cheap)):
        client = GraphQLClient(http, token(settings, org))
        body = await client("{ plans(first: 100) { edges { node { id code } } } }")
        assert body["data"] is None
        assert error_codes(body) == ["QUERY_TOO_COSTLY"]
        assert body["errors"][0]["message"].startswith("Query cost 302 exceeds the limit of 100")
        assert "errors" not in await client("{ plans(first: 10) { edges { node { id } } } }")
        hidden = (
            "query { plans(first: 100) { ...P } } "
            "fragment P on PlanConnection { edges { node { id code } } }"
        )
        body = await client(hidden)
        assert error_codes(body) == ["QUERY_TOO_COSTLY"]
        assert body["errors"][0]["message"].startswith("Query cost 302 exceeds the limit of 100")


async def test_production_hides_introspection_and_suggestions(settings: Settings, org: str) -> None:
    production = settings.with_overrides(env="production")
    async for http in running(create_app(production)):
        client = GraphQLClient(http, token(settings, org))
        body = await client("{ __schema { queryType { name } } }")
        assert "introspection has been disabled" in body["errors"][0]["message"]
        body = await client("{ plns { totalCount } }")
        assert body["errors"][0]["message"] == "Cannot query field 'plns' on type 'Query'."
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code != 200 or "graphiql" not in page.text.lower()
    async for http in running(create_app(settings)):
        client = GraphQLClient(http, token(settings, org))
        body = await client("{ plns { totalCount } }")
        assert "Did you mean 'plans'" in body["errors"][0]["message"]


async def test_large_bodies_get_413(http: httpx.AsyncClient, settings: Settings) -> None:
    huge = "x" * (settings.max_body_bytes + 1)
    response = await http.post(
        "/graphql",
        content=json.dumps({"query": "{ serviceInfo { name } }", "pad": huge}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["message"] == (
        f"Request body exceeds {settings.max_body_bytes} bytes."
    )

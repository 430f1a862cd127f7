"""Abusive requests are refused before they execute, with an error that names the limit."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from schema.limits import query_cost
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


def test_cost_multiplies_connection_children() -> None:
    from graphql import parse

    def cost(text: str, variables: dict[str, Any] | None = None) -> int:
        document = parse(text)
        operation = document.definitions[0]
        return query_cost(operation.selection_set, {}, variables or {})  # type: ignore[attr-defined]

    assert cost("{ serviceInfo { name version } }") == 3
    # plans(first: 50): 1 + 50 x (edges 1 + node 1 + id 1) = 151
    assert cost("{ plans(first: 50) { edges { node { id } } } }") == 151
    assert cost("query($n: Int) { plans(first: $n) { edges { node { id } } } }", {"n": 10}) == 31
    # Without `first` a connection counts its default page size (20).
    assert cost(NESTED) == 61


async def test_costly_query_is_refused_before_execution(settings: Settings, org: str) -> None:
    cheap = settings.with_overrides(graphql_max_cost=100)
    async for http in running(create_app(cheap)):
        client = GraphQLClient(http, token(settings, org))
        body = await client("{ plans(first: 100) { edges { node { id code } } } }")
        assert body["data"] is None
        assert error_codes(body) == ["QUERY_TOO_COSTLY"]
        assert body["errors"][0]["message"].startswith("Query cost 401 exceeds the limit of 100")
        assert "errors" not in await client("{ plans(first: 10) { edges { node { id } } } }")


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


async def test_rate_limit_across_processes_gives_429_with_retry_after(
    settings: Settings, org: str
) -> None:
    limited = settings.with_overrides(rate_limit_per_minute=5, rate_limit_anonymous_per_minute=3)
    bearer = token(settings, org)
    seconds = datetime.now(UTC).second
    if seconds >= 55:  # keep the whole burst inside one one-minute window
        await asyncio.sleep(61 - seconds)
    # Two app instances stand for two processes: the counters live in PostgreSQL.
    first_app, second_app = running(create_app(limited)), running(create_app(limited))
    first, second = await anext(first_app), await anext(second_app)
    try:
        statuses, retry_after = [], []
        for i in range(8):
            response = await (first if i % 2 else second).post(
                "/graphql",
                json={"query": "{ serviceInfo { name } }"},
                headers={"authorization": f"Bearer {bearer}"},
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                retry_after.append(int(response.headers["retry-after"]))
                assert error_codes(response.json()) == ["RATE_LIMITED"]
        anonymous = [
            (await first.post("/graphql", json={"query": "{ serviceInfo { name } }"})).status_code
            for _ in range(4)
        ]
    finally:
        for generator in (first_app, second_app):
            with pytest.raises(StopAsyncIteration):
                await anext(generator)
    assert statuses == [200] * 5 + [429] * 3
    assert all(1 <= value <= 60 for value in retry_after)
    assert anonymous[-1] == 429

"""The rate limit is a budget of query-cost points per caller, shared by every process and every
way in (HTTP, WebSocket, document downloads), reported on every response as Shopify does."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.web.app import create_app
from app.web.document_routes import DOCUMENT_COST
from tests.conftest import running
from tests.support import GraphQLClient, error_codes, token

EMPTY_PAGE = "{ plans(first: 50) { edges { node { id } } } }"  # costs 102; 2 on an empty page
FIFTY = "{ " + " ".join(f"a{i}: serviceInfo {{ name }}" for i in range(25)) + " }"  # costs 50


def unique_address() -> str:
    """An address no other test uses: anonymous budgets are per address, in the shared
    database."""
    address = random.randrange(0x0A000001, 0x0AFFFFFE)  # noqa: S311 - not a secret
    return str(ipaddress.IPv4Address(address))


def budget(settings: Settings, points: int, **more: Any) -> Settings:
    return settings.with_overrides(
        rate_limit_points=points,
        rate_limit_restore_rate=1,
        graphql_max_cost=min(points, settings.graphql_max_cost),
        **more,
    )


def throttle_status(body: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = body["extensions"]["cost"]["throttleStatus"]
    return status


async def test_every_response_reports_its_cost_and_gives_back_what_it_did_not_use(
    settings: Settings, org: str
) -> None:
    async for http in running(create_app(budget(settings, 1000))):
        client = GraphQLClient(http, token(settings, org))
        body = await client(EMPTY_PAGE)
        assert body["data"] == {"plans": {"edges": []}}
        assert body["extensions"]["cost"] == {
            "requestedQueryCost": 102,
            "actualQueryCost": 2,
            "throttleStatus": {
                "maximumAvailable": 1000,
                "currentlyAvailable": 898,
                "restoreRate": 1,
            },
        }
        body = await client("{ serviceInfo { name } }")
        assert body["extensions"]["cost"]["requestedQueryCost"] == 2
        # 898, plus the 100 points the empty page did not use, plus the refill, minus 2.
        assert 996 <= throttle_status(body)["currentlyAvailable"] <= 998


async def test_an_empty_budget_throttles_every_process_of_the_token(
    settings: Settings, org: str
) -> None:
    limited = budget(settings, 200)
    bearer = token(settings, org)
    # Two app instances stand for two processes: the buckets live in PostgreSQL.
    first_app, second_app = running(create_app(limited)), running(create_app(limited))
    first, second = await anext(first_app), await anext(second_app)
    try:
        bodies, headers = [], []
        for i in range(6):
            response = await (first if i % 2 else second).post(
                "/graphql",
                json={"query": FIFTY},
                headers={"authorization": f"Bearer {bearer}"},
            )
            assert response.status_code == 200
            bodies.append(response.json())
            headers.append(response.headers.get("retry-after"))
        other = GraphQLClient(first, token(settings, org, "admin", sub="someone-else"))
        fresh = await other(FIFTY)
    finally:
        for generator in (first_app, second_app):
            with pytest.raises(StopAsyncIteration):
                await anext(generator)
    assert [error_codes(b) for b in bodies] == [[]] * 4 + [["THROTTLED"]] * 2
    throttled = bodies[4]
    assert throttled["data"] is None
    assert throttled["errors"][0]["message"].startswith("Throttled: this operation costs 50")
    assert throttle_status(throttled)["currentlyAvailable"] < 50
    assert headers[:4] == [None] * 4
    assert headers[4] is not None
    assert 1 <= int(headers[4]) <= 50
    # Another token of the same organization has its own budget.
    assert error_codes(fresh) == []


async def test_anonymous_callers_share_a_budget_per_address(settings: Settings) -> None:
    limited = settings.with_overrides(
        rate_limit_anonymous_points=10, rate_limit_anonymous_restore_rate=1
    )
    async for http in running(create_app(limited), client=(unique_address(), 4000)):
        client = GraphQLClient(http)
        codes = [error_codes(await client("{ serviceInfo { name } }")) for _ in range(6)]
        # A refused token counts against the address too, not against nobody.
        forged = await client.as_("not-a-token")("{ serviceInfo { name } }")
    assert codes == [[]] * 5 + [["THROTTLED"]]
    assert error_codes(forged) == ["THROTTLED"]


async def test_refused_documents_still_draw_on_the_budget(settings: Settings, org: str) -> None:
    async for http in running(create_app(budget(settings, 100))):
        client = GraphQLClient(http, token(settings, org))
        for _ in range(3):
            body = await client("{ plns { id } }")  # a validation error costs one point
            assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] <= 99
        body = await client(FIFTY)
    # 100 - 3 - 50, plus what refilled meanwhile (1 point a second; never 53 as if the refused
    # documents were free, unless the machine stalled for seconds).
    assert 47 <= throttle_status(body)["currentlyAvailable"] <= 52


async def test_document_downloads_draw_on_the_same_budget(settings: Settings, org: str) -> None:
    limited = budget(settings, 2 * DOCUMENT_COST + 50)
    async for http in running(create_app(limited)):
        headers = {"authorization": f"Bearer {token(settings, org)}"}
        statuses = []
        for _ in range(3):
            response = await http.get("/invoices/inv_doesnotexist.pdf", headers=headers)
            statuses.append(response.status_code)
        assert response.json()["code"] == "THROTTLED"
        assert int(response.headers["retry-after"]) >= 1
        client = GraphQLClient(http, headers["authorization"].removeprefix("Bearer "))
        body = await client("{ serviceInfo { name } }")
    assert statuses == [404, 404, 429]
    # 250 - 2 x 100 - 2, plus the refill (1 point a second).
    assert 48 <= throttle_status(body)["currentlyAvailable"] <= 60


async def test_an_unauthenticated_download_counts_against_the_address(
    settings: Settings,
) -> None:
    limited = settings.with_overrides(
        rate_limit_anonymous_points=2, rate_limit_anonymous_restore_rate=1
    )
    async for http in running(create_app(limited), client=(unique_address(), 4000)):
        statuses = [(await http.get("/invoices/inv_x.pdf")).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


async def test_the_budget_must_hold_the_costliest_query(settings: Settings) -> None:
    from app.core.settings import SettingsError, load_settings

    env = {
        "BILLING_ENV": "test",
        "DATABASE_URL": "postgresql://localhost/x",
        "JWT_SECRET": settings.jwt_secret or "",
        "RATE_LIMIT_POINTS": "1000",
        "GRAPHQL_MAX_COST": "5000",
    }
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    assert str(refused.value) == (
        "RATE_LIMIT_POINTS (1000) must be at least GRAPHQL_MAX_COST (5000), or a query of the "
        "largest allowed cost could never run."
    )
    assert load_settings({**env, "RATE_LIMIT_RESTORE_RATE": "0"}).rate_limit_restore_rate == 0


async def test_with_the_limit_off_the_cost_is_still_reported(
    http: httpx.AsyncClient, admin: GraphQLClient
) -> None:
    body = await admin(EMPTY_PAGE)
    assert body["extensions"]["cost"] == {"requestedQueryCost": 102, "actualQueryCost": 2}

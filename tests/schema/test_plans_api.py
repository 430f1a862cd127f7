"""Plans end to end through GraphQL: every operation, its errors, and the Stripe mirror."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from tests.conftest import CREATE_PLAN, PLAN_FIELDS, running
from tests.support import GraphQLClient, error_codes, token

GET_PLAN = f"query($id: ID!) {{ plan(id: $id) {{ {PLAN_FIELDS} }} }}"
UPDATE_PLAN = f"""
mutation($input: PlanUpdateInput!) {{
  planUpdate(input: $input) {{ plan {{ {PLAN_FIELDS} }} errors {{ field message code }} }}
}}"""
ARCHIVE_PLAN = f"""
mutation($id: ID!) {{
  planArchive(input: {{id: $id}}) {{ plan {{ {PLAN_FIELDS} }} errors {{ field message code }} }}
}}"""
LIST_PLANS = """
query($first: Int, $after: String, $filter: PlanFilter) {
  plans(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { id code tier active price { currency } } }
    pageInfo { hasNextPage endCursor }
  }
}"""


def base_input(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "code": "pro-monthly",
        "name": "Pro",
        "tier": "PRO",
        "price": {"amount": 1999, "currency": "usd"},
        "interval": "MONTH",
    }
    values.update(overrides)
    return values


async def stripe_get(settings: Settings, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "") as client:
        response = await client.get(
            path, headers={"authorization": f"Bearer {settings.stripe_api_key}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


async def test_create_plan_mirrors_product_and_price_in_stripe(
    admin: GraphQLClient, settings: Settings
) -> None:
    data = await admin.data(
        CREATE_PLAN,
        {
            "input": base_input(
                interval="MONTH",
                intervalCount=3,
                trialDays=14,
                features={"sso": True, "projects": 10},
                creditsIncluded="5000",
                maxUsers=25,
                maxStorageBytes=str(10 * 2**30),
                description="  For growing teams ",
            )
        },
    )
    payload = data["planCreate"]
    assert payload["errors"] == []
    plan = payload["plan"]
    assert plan["id"].startswith("plan_")
    assert plan["price"] == {"amount": "1999", "currency": "USD", "decimal": "19.99"}
    assert (plan["interval"], plan["intervalCount"], plan["trialDays"]) == ("MONTH", 3, 14)
    assert plan["features"] == {"sso": True, "projects": 10}
    assert plan["creditsIncluded"] == "5000"
    assert plan["maxUsers"] == 25
    assert plan["maxStorageBytes"] == str(10 * 2**30)
    assert plan["description"] == "For growing teams"
    assert plan["active"] is True

    product = await stripe_get(settings, f"/v1/products/{plan['stripeProductId']}")
    assert product["name"] == "Pro"
    assert product["metadata"]["plan_id"] == plan["id"]
    price = await stripe_get(settings, f"/v1/plans/{plan['stripePriceId']}")
    assert (price["amount"], price["currency"], price["interval"], price["interval_count"]) == (
        1999,
        "usd",
        "month",
        3,
    )
    assert price["product"] == plan["stripeProductId"]

    again = await admin.data(GET_PLAN, {"id": plan["id"]})
    assert again["plan"] == plan


@pytest.mark.parametrize(
    ("currency", "amount", "decimal"),
    [("JPY", 500, "500"), ("KWD", 12345, "12.345"), ("EUR", 5, "0.05"), ("CNY", 0, "0.00")],
)
async def test_prices_keep_the_currency_exponent(
    admin: GraphQLClient, currency: str, amount: int, decimal: str
) -> None:
    data = await admin.data(
        CREATE_PLAN,
        {"input": base_input(code=f"p-{currency}", price={"amount": amount, "currency": currency})},
    )
    assert data["planCreate"]["plan"]["price"] == {
        "amount": str(amount),
        "currency": currency,
        "decimal": decimal,
    }


async def test_one_time_plan_has_a_product_but_no_recurring_price(admin: GraphQLClient) -> None:
    data = await admin.data(CREATE_PLAN, {"input": base_input(interval="ONE_TIME")})
    plan = data["planCreate"]["plan"]
    assert plan["stripeProductId"].startswith("prod_")
    assert plan["stripePriceId"] is None


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"name": "   "}, ["input", "name"], "REQUIRED"),
        ({"price": {"amount": -1, "currency": "USD"}}, ["input", "price", "amount"], "INVALID"),
        (
            {"price": {"amount": 100, "currency": "XYZ"}},
            ["input", "price", "currency"],
            "UNKNOWN_CURRENCY",
        ),
        ({"intervalCount": 0}, ["input", "intervalCount"], "INVALID"),
        ({"interval": "YEAR", "intervalCount": 4}, ["input", "intervalCount"], "INVALID"),
        ({"interval": "ONE_TIME", "intervalCount": 2}, ["input", "intervalCount"], "INVALID"),
        ({"code": "bad code!"}, ["input", "code"], "INVALID"),
        ({"trialDays": -3}, ["input", "trialDays"], "INVALID"),
        ({"features": [1, 2]}, ["input", "features"], "INVALID"),
        ({"maxUsers": 0}, ["input", "maxUsers"], "INVALID"),
        ({"creditsIncluded": "-5"}, ["input", "creditsIncluded"], "INVALID"),
    ],
)
async def test_invalid_plan_is_a_payload_error_and_writes_nothing(
    admin: GraphQLClient, overrides: dict[str, Any], field: list[str], code: str
) -> None:
    data = await admin.data(CREATE_PLAN, {"input": base_input(**overrides)})
    payload = data["planCreate"]
    assert payload["plan"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)]
    listing = await admin.data(LIST_PLANS)
    assert listing["plans"]["totalCount"] == 0


async def test_every_invalid_field_is_reported_at_once(admin: GraphQLClient) -> None:
    data = await admin.data(
        CREATE_PLAN,
        {"input": base_input(name="", intervalCount=500, price={"amount": 1, "currency": "ZZZ"})},
    )
    fields = sorted(tuple(e["field"]) for e in data["planCreate"]["errors"])
    assert fields == [("input", "intervalCount"), ("input", "name"), ("input", "price", "currency")]


async def test_duplicate_code_is_refused_before_stripe_is_called(
    admin: GraphQLClient, plan_factory: Callable[..., Any], settings: Settings
) -> None:
    await plan_factory(code="team")
    products_before = await stripe_get(settings, "/v1/products?limit=100")
    data = await admin.data(CREATE_PLAN, {"input": base_input(code="team")})
    payload = data["planCreate"]
    assert payload["plan"] is None
    assert payload["errors"] == [
        {
            "field": ["input", "code"],
            "message": "A plan with code 'team' already exists.",
            "code": "DUPLICATE",
        }
    ]
    products_after = await stripe_get(settings, "/v1/products?limit=100")
    assert len(products_after["data"]) == len(products_before["data"])


async def test_same_code_is_allowed_in_another_organization(
    plan_factory: Callable[..., Any], http: httpx.AsyncClient, settings: Settings, org: str
) -> None:
    await plan_factory(code="shared")
    other = GraphQLClient(http, token(settings, org + "-b", "admin"))
    data = await other.data(CREATE_PLAN, {"input": base_input(code="shared")})
    assert data["planCreate"]["errors"] == []


async def test_stripe_failure_leaves_no_local_plan(settings: Settings, org: str) -> None:
    # A Stripe that refuses connections: the port of a socket we opened and closed.
    from app.stripe.emulator import free_port
    from app.web.app import create_app

    broken = settings.with_overrides(stripe_api_base=f"http://127.0.0.1:{free_port()}")
    async for http in running(create_app(broken)):
        client = GraphQLClient(http, token(settings, org))
        data = await client.data(CREATE_PLAN, {"input": base_input()})
        payload = data["planCreate"]
        assert payload["plan"] is None
        assert [e["code"] for e in payload["errors"]] == ["PAYMENT_PROVIDER_ERROR"]
        listing = await client.data(LIST_PLANS)
        assert listing["plans"]["totalCount"] == 0
        assert listing["plans"]["edges"] == []


async def test_update_changes_fields_and_renames_the_stripe_product(
    admin: GraphQLClient, plan_factory: Callable[..., Any], settings: Settings
) -> None:
    plan = await plan_factory(maxUsers=5)
    data = await admin.data(
        UPDATE_PLAN,
        {"input": {"id": plan["id"], "name": "Team", "trialDays": 30, "maxUsers": None}},
    )
    payload = data["planUpdate"]
    assert payload["errors"] == []
    updated = payload["plan"]
    assert (updated["name"], updated["trialDays"], updated["maxUsers"]) == ("Team", 30, None)
    assert updated["price"] == plan["price"]
    assert updated["code"] == plan["code"]
    product = await stripe_get(settings, f"/v1/products/{plan['stripeProductId']}")
    assert product["name"] == "Team"


async def test_update_errors(admin: GraphQLClient, plan_factory: Callable[..., Any]) -> None:
    plan = await plan_factory()
    blank = await admin.data(UPDATE_PLAN, {"input": {"id": plan["id"], "name": " "}})
    assert [(e["field"], e["code"]) for e in blank["planUpdate"]["errors"]] == [
        (["input", "name"], "REQUIRED")
    ]
    missing = await admin.data(UPDATE_PLAN, {"input": {"id": "plan_nope", "name": "X"}})
    assert [(e["field"], e["code"]) for e in missing["planUpdate"]["errors"]] == [
        (["input", "id"], "NOT_FOUND")
    ]
    unchanged = await admin.data(GET_PLAN, {"id": plan["id"]})
    assert unchanged["plan"] == plan


async def test_archive_is_final_and_deactivates_the_stripe_price(
    admin: GraphQLClient, plan_factory: Callable[..., Any], settings: Settings
) -> None:
    plan = await plan_factory()
    data = await admin.data(ARCHIVE_PLAN, {"id": plan["id"]})
    archived = data["planArchive"]["plan"]
    assert archived["active"] is False
    assert archived["archivedAt"] is not None
    price = await stripe_get(settings, f"/v1/plans/{plan['stripePriceId']}")
    # localstripe keeps the form value of an update unconverted ("false"); Stripe returns false.
    assert price["active"] in (False, "false")

    again = await admin.data(ARCHIVE_PLAN, {"id": plan["id"]})
    assert [e["code"] for e in again["planArchive"]["errors"]] == ["INVALID_STATE"]
    update = await admin.data(UPDATE_PLAN, {"input": {"id": plan["id"], "name": "Back"}})
    assert [e["code"] for e in update["planUpdate"]["errors"]] == ["INVALID_STATE"]
    current = await admin.data(GET_PLAN, {"id": plan["id"]})
    assert current["plan"]["name"] == plan["name"]


async def test_list_paginates_by_keyset_and_filters(
    admin: GraphQLClient, plan_factory: Callable[..., Any]
) -> None:
    created = [await plan_factory(tier="BASIC" if i % 2 else "PRO") for i in range(7)]
    eur = await plan_factory(price={"amount": 900, "currency": "EUR"})
    await admin.data(ARCHIVE_PLAN, {"id": created[0]["id"]})

    seen: list[str] = []
    after = None
    while True:
        page = (await admin.data(LIST_PLANS, {"first": 3, "after": after}))["plans"]
        assert page["totalCount"] == 8
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [p["id"] for p in [*created, eur]]

    basic = (await admin.data(LIST_PLANS, {"filter": {"tier": "BASIC"}}))["plans"]
    assert [e["node"]["id"] for e in basic["edges"]] == [p["id"] for p in created[1::2]]
    assert basic["totalCount"] == 3
    active = (await admin.data(LIST_PLANS, {"filter": {"active": False}}))["plans"]
    assert [e["node"]["id"] for e in active["edges"]] == [created[0]["id"]]
    by_currency = (await admin.data(LIST_PLANS, {"filter": {"currency": "eur"}}))["plans"]
    assert [e["node"]["id"] for e in by_currency["edges"]] == [eur["id"]]


@pytest.mark.parametrize("first", [0, 101, -1])
async def test_page_size_is_capped(admin: GraphQLClient, first: int) -> None:
    body = await admin(LIST_PLANS, {"first": first})
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert "between 1 and 100" in body["errors"][0]["message"]


async def test_forged_cursor_is_a_clear_error(admin: GraphQLClient) -> None:
    body = await admin(LIST_PLANS, {"after": "not-a-cursor"})
    assert error_codes(body) == ["BAD_USER_INPUT"]


async def test_plans_are_scoped_to_the_token_organization(
    plan_factory: Callable[..., Any], http: httpx.AsyncClient, settings: Settings
) -> None:
    plan = await plan_factory()
    stranger = GraphQLClient(http, token(settings, "someone-else", "admin"))
    assert (await stranger.data(GET_PLAN, {"id": plan["id"]}))["plan"] is None
    listing = await stranger.data(LIST_PLANS, {"filter": {"currency": "USD"}})
    assert plan["id"] not in [e["node"]["id"] for e in listing["plans"]["edges"]]
    update = await stranger.data(UPDATE_PLAN, {"input": {"id": plan["id"], "name": "Mine"}})
    assert [e["code"] for e in update["planUpdate"]["errors"]] == ["NOT_FOUND"]
    archive = await stranger.data(ARCHIVE_PLAN, {"id": plan["id"]})
    assert [e["code"] for e in archive["planArchive"]["errors"]] == ["NOT_FOUND"]


@pytest.mark.parametrize("role", ["customer", "service"])
async def test_only_admins_manage_the_catalog(
    role: str, http: httpx.AsyncClient, settings: Settings, org: str
) -> None:
    client = GraphQLClient(http, token(settings, org, role, sub="cus_x"))
    body = await client(CREATE_PLAN, {"input": base_input()})
    assert body["data"] is None
    assert error_codes(body) == ["FORBIDDEN"]
    listing = await client.data(LIST_PLANS)
    assert listing["plans"]["totalCount"] == 0


async def test_anonymous_callers_are_unauthenticated(gql: GraphQLClient) -> None:
    body = await gql(LIST_PLANS)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    body = await gql(CREATE_PLAN, {"input": base_input()})
    assert error_codes(body) == ["UNAUTHENTICATED"]

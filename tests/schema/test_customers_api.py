"""Customers end to end: create with the Stripe mirror, update, default card, visibility."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from db.connection import count_statements
from tests.conftest import CREATE_CUSTOMER, CUSTOMER_FIELDS
from tests.schema.test_plans_api import stripe_get
from tests.support import GraphQLClient, error_codes, token

GET = f"query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} }} }}"
LIST = f"""query($first: Int, $after: String, $filter: CustomerFilter) {{
  customers(first: $first, after: $after, filter: $filter) {{
    totalCount edges {{ node {{ {CUSTOMER_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
UPDATE = f"""mutation($input: CustomerUpdateInput!) {{
  customerUpdate(input: $input) {{
    customer {{ {CUSTOMER_FIELDS} }} errors {{ field code message }}
  }}
}}"""
SET_CARD = f"""mutation($input: CustomerSetDefaultPaymentMethodInput!) {{
  customerSetDefaultPaymentMethod(input: $input) {{
    customer {{ {CUSTOMER_FIELDS} }} errors {{ field code message }}
  }}
}}"""


async def test_create_customer_mirrors_it_at_stripe(
    admin: GraphQLClient, settings: Settings
) -> None:
    data = await admin.data(
        CREATE_CUSTOMER,
        {
            "input": {
                "email": " ada@example.com ",
                "name": "Ada Lovelace",
                "externalRef": "user-42",
                "address": {"country": "fr", "line1": "1 rue de Rivoli", "city": "Paris"},
                "preferredCurrency": "eur",
                "taxIds": [{"type": "eu_vat", "value": "FR12345678901"}],
                "taxExempt": "REVERSE",
                "metadata": {"plan": "gold"},
            }
        },
    )
    payload = data["customerCreate"]
    assert payload["errors"] == []
    customer = payload["customer"]
    assert customer["id"].startswith("cus_")
    assert customer["email"] == "ada@example.com"
    assert customer["address"] == {
        "country": "FR",
        "line1": "1 rue de Rivoli",
        "line2": "",
        "city": "Paris",
        "region": "",
        "postalCode": "",
    }
    assert customer["preferredCurrency"] == "EUR"
    assert customer["taxIds"] == [{"type": "eu_vat", "value": "FR12345678901"}]
    assert customer["taxExempt"] == "REVERSE"
    remote = await stripe_get(settings, f"/v1/customers/{customer['stripeCustomerId']}")
    assert (remote["email"], remote["name"]) == ("ada@example.com", "Ada Lovelace")
    assert remote["metadata"]["customer_id"] == customer["id"]
    assert (await admin.data(GET, {"id": customer["id"]}))["customer"] == customer


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"email": "not-an-email"}, ["input", "email"], "INVALID"),
        ({"address": {"country": "France"}}, ["input", "address"], "INVALID"),
        ({"preferredCurrency": "EURO"}, ["input", "preferredCurrency"], "UNKNOWN_CURRENCY"),
        ({"taxIds": [{"type": "vat", "value": "1"}]}, ["input", "taxIds"], "INVALID"),
        ({"metadata": {"n": 1}}, ["input", "metadata"], "INVALID"),
        ({"name": "x" * 201}, ["input", "name"], "INVALID"),
    ],
)
async def test_invalid_customer_is_a_payload_error(
    admin: GraphQLClient, overrides: dict[str, Any], field: list[str], code: str
) -> None:
    data = await admin.data(CREATE_CUSTOMER, {"input": {"email": "a@example.com", **overrides}})
    payload = data["customerCreate"]
    assert payload["customer"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)]
    assert (await admin.data(LIST))["customers"]["totalCount"] == 0


async def test_external_reference_is_unique_per_organization(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> None:
    await customer_factory(externalRef="u-1")
    data = await admin.data(
        CREATE_CUSTOMER, {"input": {"email": "b@example.com", "externalRef": "u-1"}}
    )
    assert [(e["field"], e["code"]) for e in data["customerCreate"]["errors"]] == [
        (["input", "externalRef"], "DUPLICATE")
    ]
    assert (await admin.data(LIST))["customers"]["totalCount"] == 1


async def test_update_syncs_stripe_and_keeps_unset_fields(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory(preferredCurrency="USD", address={"country": "US"})
    data = await admin.data(
        UPDATE, {"input": {"id": customer["id"], "name": "New Name", "address": None}}
    )
    updated = data["customerUpdate"]["customer"]
    assert data["customerUpdate"]["errors"] == []
    assert (updated["name"], updated["address"], updated["preferredCurrency"]) == (
        "New Name",
        None,
        "USD",
    )
    assert updated["email"] == customer["email"]
    remote = await stripe_get(settings, f"/v1/customers/{customer['stripeCustomerId']}")
    assert remote["name"] == "New Name"

    bad = await admin.data(UPDATE, {"input": {"id": customer["id"], "email": "nope"}})
    assert [e["code"] for e in bad["customerUpdate"]["errors"]] == ["INVALID"]
    missing = await admin.data(UPDATE, {"input": {"id": "cus_missing", "name": "x"}})
    assert [e["code"] for e in missing["customerUpdate"]["errors"]] == ["NOT_FOUND"]


async def test_default_payment_method_is_validated_by_stripe(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory()
    ok = await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}}
    )
    assert ok["customerSetDefaultPaymentMethod"]["errors"] == []
    method = ok["customerSetDefaultPaymentMethod"]["customer"]["defaultPaymentMethodId"]
    assert method.startswith("pm_")

    missing = await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_does_not_exist"}}
    )
    assert [
        (e["field"], e["code"]) for e in missing["customerSetDefaultPaymentMethod"]["errors"]
    ] == [(["input", "paymentMethodId"], "NOT_FOUND")]
    # 4000000000000002 is declined when attached (as Stripe.js would have created it).
    declining = await stripe_card(settings, "4000000000000002")
    declined = await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": declining}}
    )
    errors = declined["customerSetDefaultPaymentMethod"]["errors"]
    assert [e["code"] for e in errors] == ["CARD_DECLINED"]
    assert errors[0]["message"] == "The card was declined (card_declined)."
    after = await admin.data(GET, {"id": customer["id"]})
    assert after["customer"]["defaultPaymentMethodId"] == method


async def stripe_card(settings: Settings, number: str) -> str:
    """A PaymentMethod created directly at the emulator, as Stripe.js does in a browser."""
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "") as client:
        response = await client.post(
            "/v1/payment_methods",
            headers={"authorization": f"Bearer {settings.stripe_api_key}"},
            data={
                "type": "card",
                "card[number]": number,
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        assert response.status_code == 200, response.text
        method_id: str = response.json()["id"]
        return method_id


async def test_customer_tokens_see_only_themselves(
    customer_factory: Callable[..., Any], http: httpx.AsyncClient, settings: Settings, org: str
) -> None:
    me, other = await customer_factory(), await customer_factory()
    client = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))
    assert (await client.data(GET, {"id": me["id"]}))["customer"]["id"] == me["id"]
    assert (await client.data(GET, {"id": other["id"]}))["customer"] is None
    listing = (await client.data(LIST))["customers"]
    assert [e["node"]["id"] for e in listing["edges"]] == [me["id"]]
    assert listing["totalCount"] == 1
    card = await client.data(
        SET_CARD, {"input": {"customerId": other["id"], "paymentMethodId": "pm_card_visa"}}
    )
    assert [e["code"] for e in card["customerSetDefaultPaymentMethod"]["errors"]] == ["NOT_FOUND"]
    body = await client(UPDATE, {"input": {"id": me["id"], "name": "Me"}})
    assert error_codes(body) == ["FORBIDDEN"]
    body = await client(CREATE_CUSTOMER, {"input": {"email": "x@example.com"}})
    assert error_codes(body) == ["FORBIDDEN"]


async def test_list_filters_and_statement_count(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> None:
    made = [await customer_factory(externalRef=f"ref-{i}") for i in range(12)]
    target = made[3]
    by_email = (await admin.data(LIST, {"filter": {"email": target["email"].upper()}}))["customers"]
    assert [e["node"]["id"] for e in by_email["edges"]] == [target["id"]]
    by_ref = (await admin.data(LIST, {"filter": {"externalRef": "ref-7"}}))["customers"]
    assert [e["node"]["id"] for e in by_ref["edges"]] == [made[7]["id"]]
    counts = []
    for n in (2, 12):
        with count_statements() as log:
            page = (await admin.data(LIST, {"first": n}))["customers"]
        assert len(page["edges"]) == n
        counts.append(log.count)
    assert counts == [2, 2]

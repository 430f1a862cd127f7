"""Payments end to end against PostgreSQL and the Stripe emulator: create, confirm (success,
decline, 3-D Secure), manual capture and cancel, refresh, idempotency, the state machine,
listing with filters and per-currency totals, visibility and statement counts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from db.connection import count_statements
from tests.conftest import CONFIRM_PAYMENT, CREATE_PAYMENT, PAYMENT_FIELDS
from tests.schema.test_customers_api import stripe_card
from tests.schema.test_plans_api import stripe_get
from tests.support import GraphQLClient, error_codes, new_org, token

GET = f"query($id: ID!) {{ payment(id: $id) {{ {PAYMENT_FIELDS} }} }}"
LIST = """query($first: Int, $after: String, $filter: PaymentFilter) {
  payments(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { id status customerId amount { amount currency } createdAt } }
    pageInfo { hasNextPage endCursor }
    summary {
      currency count succeededCount
      succeeded { amount currency decimal } refunded { amount } net { amount decimal }
    }
  }
}"""
CAPTURE = f"""mutation($input: PaymentCaptureInput!) {{
  paymentCapture(input: $input) {{ payment {{ {PAYMENT_FIELDS} }} errors {{ field code message }} }}
}}"""
CANCEL = f"""mutation($input: PaymentCancelInput!) {{
  paymentCancel(input: $input) {{ payment {{ {PAYMENT_FIELDS} }} errors {{ field code message }} }}
}}"""
REFRESH = f"""mutation($input: PaymentRefreshInput!) {{
  paymentRefresh(input: $input) {{ payment {{ {PAYMENT_FIELDS} }} errors {{ field code message }} }}
}}"""
REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) {
    refund { id status amount { amount } } errors { field code message }
  }
}"""


def key() -> str:
    return str(uuid.uuid4())


async def confirm(client: GraphQLClient, payment_id: str, **extra: Any) -> dict[str, Any]:
    data = await client.data(
        CONFIRM_PAYMENT,
        {"input": {"paymentId": payment_id, "idempotencyKey": extra.pop("key", key()), **extra}},
    )
    payload: dict[str, Any] = data["paymentIntentConfirm"]
    return payload


async def create(client: GraphQLClient, **fields: Any) -> dict[str, Any]:
    data = await client.data(CREATE_PAYMENT, {"input": {"idempotencyKey": key(), **fields}})
    payload: dict[str, Any] = data["paymentIntentCreate"]
    return payload


async def charges_of(settings: Settings, intent: dict[str, Any]) -> list[dict[str, Any]]:
    """The emulator's charges for a PaymentIntent (whatever their outcome)."""
    charges = await stripe_get(settings, f"/v1/charges?customer={intent['customer']}&limit=100")
    return [c for c in charges["data"] if c["payment_intent"] == intent["id"]]


async def row_of(app_services: Any, payment_id: str) -> dict[str, Any]:
    row = await app_services.db.fetch_one(
        "SELECT * FROM payments WHERE id = :id", {"id": payment_id}
    )
    assert row is not None
    return dict(row)


async def test_create_mirrors_a_payment_intent_and_returns_its_client_secret(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory()
    payload = await create(
        admin,
        customerId=customer["id"],
        amount={"amount": 11999, "currency": "usd"},
        description=" Annual licence ",
        orderId="order-77",
        breakdown={"subtotal": 10000, "tax": 2000, "shipping": 499, "discount": 500},
        metadata={"cart": "c-1"},
        paymentMethodId="pm_card_visa",
    )
    assert payload["errors"] == []
    payment = payload["payment"]
    assert payment["id"].startswith("pay_")
    assert payment["status"] == "REQUIRES_CONFIRMATION"
    assert payment["amount"] == {"amount": "11999", "currency": "USD", "decimal": "119.99"}
    assert (payment["description"], payment["orderId"]) == ("Annual licence", "order-77")
    assert payment["breakdown"] == {
        "subtotal": {"amount": "10000"},
        "tax": {"amount": "2000"},
        "shipping": {"amount": "499"},
        "discount": {"amount": "500"},
    }
    assert payment["amountCaptured"] == {"amount": "0"}
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert payment["clientSecret"] == intent["client_secret"]
    assert (intent["amount"], intent["currency"], intent["status"]) == (
        11999,
        "usd",
        "requires_confirmation",
    )
    assert intent["customer"] == customer["stripeCustomerId"]
    assert intent["capture_method"] == "automatic"
    assert intent["metadata"] == {
        "cart": "c-1",
        "billing_organization": intent["metadata"]["billing_organization"],
        "billing_payment_id": payment["id"],
        "billing_order_id": "order-77",
    }
    assert (await admin.data(GET, {"id": payment["id"]}))["payment"] == payment

    bare = await create(admin, customerId=customer["id"], amount={"amount": 500, "currency": "EUR"})
    assert bare["payment"]["status"] == "REQUIRES_PAYMENT_METHOD"
    assert bare["payment"]["breakdown"] is None


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"amount": {"amount": 0, "currency": "USD"}}, ["input", "amount", "amount"], "INVALID"),
        ({"amount": {"amount": -5, "currency": "USD"}}, ["input", "amount", "amount"], "INVALID"),
        (
            {"amount": {"amount": 100, "currency": "XYZ"}},
            ["input", "amount", "currency"],
            "UNKNOWN_CURRENCY",
        ),
        ({"breakdown": {"subtotal": 9000, "tax": 500}}, ["input", "breakdown"], "INVALID"),
        ({"breakdown": {"subtotal": 10000, "tax": -1}}, ["input", "breakdown"], "INVALID"),
        ({"metadata": {"n": 1}}, ["input", "metadata"], "INVALID"),
        ({"metadata": {"billing_x": "y"}}, ["input", "metadata"], "INVALID"),
        ({"paymentMethodId": "card_123"}, ["input", "paymentMethodId"], "INVALID"),
        ({"description": "x" * 1001}, ["input", "description"], "INVALID"),
        ({"idempotencyKey": ""}, ["input", "idempotencyKey"], "INVALID"),
        ({"idempotencyKey": "k" * 256}, ["input", "idempotencyKey"], "INVALID"),
        ({"customerId": "cus_01hzzzzzzzzzzzzzzzzzzzzzzz"}, ["input", "customerId"], "NOT_FOUND"),
        ({"customerId": "nonsense"}, ["input", "customerId"], "NOT_FOUND"),
    ],
)
async def test_invalid_payment_is_a_payload_error_and_writes_nothing(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    app_services: Any,
    org: str,
    overrides: dict[str, Any],
    field: list[str],
    code: str,
) -> None:
    customer = await customer_factory()
    fields = {
        "customerId": customer["id"],
        "amount": {"amount": 10000, "currency": "USD"},
        "idempotencyKey": key(),
        **overrides,
    }
    data = await admin.data(CREATE_PAYMENT, {"input": fields})
    payload = data["paymentIntentCreate"]
    assert payload["payment"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)]
    assert (await admin.data(LIST))["payments"]["totalCount"] == 0
    keys = await app_services.db.fetch_val(
        "SELECT count(*) FROM idempotency_keys WHERE organization_id = :org", {"org": org}
    )
    assert keys == 0, "a refused request keeps no idempotency key"


async def test_confirm_records_what_stripe_reports(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    payment = await payment_factory()
    payload = await confirm(admin, payment["id"])
    assert payload["errors"] == []
    confirmed = payload["payment"]
    assert confirmed["status"] == "SUCCEEDED"
    assert confirmed["amountCaptured"] == {"amount": "10000"}
    assert confirmed["amountRefundable"] == {"amount": "10000"}
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert intent["status"] == "succeeded"
    assert len(await charges_of(settings, intent)) == 1


async def test_confirm_uses_the_customers_default_card_or_asks_for_one(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory()
    bare = (
        await create(admin, customerId=customer["id"], amount={"amount": 700, "currency": "USD"})
    )["payment"]
    missing = await confirm(admin, bare["id"])
    assert [(e["field"], e["code"]) for e in missing["errors"]] == [
        (["input", "paymentMethodId"], "REQUIRED")
    ]
    await admin.data(
        """mutation($input: CustomerSetDefaultPaymentMethodInput!) {
          customerSetDefaultPaymentMethod(input: $input) { errors { code } } }""",
        {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}},
    )
    done = await confirm(admin, bare["id"])
    assert done["errors"] == []
    assert done["payment"]["status"] == "SUCCEEDED"
    assert done["payment"]["paymentMethodId"].startswith("pm_")

    other = (
        await create(admin, customerId=customer["id"], amount={"amount": 800, "currency": "USD"})
    )["payment"]
    card = await stripe_card(settings, "4242424242424242")
    given = await confirm(admin, other["id"], paymentMethodId=card)
    assert given["errors"] == []
    assert given["payment"]["paymentMethodId"] == card


async def test_declined_card_is_a_payload_error_and_leaves_the_payment_failed(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory()
    declining = await stripe_card(settings, "4000000000000341")
    payment = (
        await create(
            admin,
            customerId=customer["id"],
            amount={"amount": 2500, "currency": "USD"},
            paymentMethodId=declining,
        )
    )["payment"]
    same_key = key()
    payload = await confirm(admin, payment["id"], key=same_key)
    assert [(e["field"], e["code"], e["message"]) for e in payload["errors"]] == [
        (None, "CARD_DECLINED", "The card was declined (card_declined).")
    ]
    failed = payload["payment"]
    assert failed["status"] == "FAILED"
    assert (failed["failureCode"], failed["failureMessage"]) == (
        "card_declined",
        "Your card was declined.",
    )
    assert failed["amountCaptured"] == {"amount": "0"}
    assert (await admin.data(GET, {"id": payment["id"]}))["payment"]["status"] == "FAILED"
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert intent["status"] == "requires_payment_method"

    replay = await confirm(admin, payment["id"], key=same_key)
    assert replay == payload, "the same key returns the stored outcome"
    again = await confirm(admin, payment["id"])
    assert [e["code"] for e in again["errors"]] == ["INVALID_STATE"]
    assert len(await charges_of(settings, intent)) == 1
    refund = await admin.data(
        REFUND,
        {"input": {"paymentId": payment["id"], "reason": "OTHER", "idempotencyKey": key()}},
    )
    assert [e["code"] for e in refund["refundCreate"]["errors"]] == ["INVALID_STATE"]


async def authenticate(settings: Settings, payment: dict[str, Any], *, success: bool) -> None:
    """What Stripe.js does when the customer passes (or fails) 3-D Secure."""
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "") as client:
        response = await client.post(
            f"/v1/payment_intents/{payment['stripePaymentIntentId']}/_authenticate",
            headers={"authorization": f"Bearer {settings.stripe_api_key}"},
            data={"client_secret": payment["clientSecret"], "success": str(success).lower()},
        )
        assert response.status_code == 200, response.text


async def test_three_d_secure_needs_action_then_refresh_picks_up_the_result(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory()
    card = await stripe_card(settings, "4000002760003184")
    payment = (
        await create(
            admin,
            customerId=customer["id"],
            amount={"amount": 4200, "currency": "EUR"},
            paymentMethodId=card,
        )
    )["payment"]
    payload = await confirm(admin, payment["id"])
    assert payload["errors"] == []
    pending = payload["payment"]
    assert pending["status"] == "REQUIRES_ACTION"
    assert pending["nextAction"]["type"] == "use_stripe_sdk"
    assert pending["amountCaptured"] == {"amount": "0"}

    still = (await admin.data(REFRESH, {"input": {"paymentId": payment["id"]}}))["paymentRefresh"]
    assert still["payment"]["status"] == "REQUIRES_ACTION"
    await authenticate(settings, payment, success=True)
    done = (await admin.data(REFRESH, {"input": {"paymentId": payment["id"]}}))["paymentRefresh"]
    assert done["errors"] == []
    assert done["payment"]["status"] == "SUCCEEDED"
    assert done["payment"]["nextAction"] is None
    assert done["payment"]["amountCaptured"] == {"amount": "4200"}

    other = (
        await create(
            admin,
            customerId=customer["id"],
            amount={"amount": 4200, "currency": "EUR"},
            paymentMethodId=card,
        )
    )["payment"]
    await confirm(admin, other["id"])
    await authenticate(settings, other, success=False)
    failed = (await admin.data(REFRESH, {"input": {"paymentId": other["id"]}}))["paymentRefresh"]
    assert failed["payment"]["status"] == "FAILED"
    assert failed["payment"]["failureCode"] == "payment_intent_authentication_failure"


async def test_manual_capture_in_part_and_cancel(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    payment = await payment_factory(captureMethod="MANUAL")
    authorized = await confirm(admin, payment["id"])
    assert authorized["payment"]["status"] == "REQUIRES_CAPTURE"
    assert authorized["payment"]["amountCapturable"] == {"amount": "10000"}
    assert authorized["payment"]["amountCaptured"] == {"amount": "0"}

    too_much = (
        await admin.data(
            CAPTURE,
            {
                "input": {
                    "paymentId": payment["id"],
                    "amount": {"amount": 10001, "currency": "USD"},
                    "idempotencyKey": key(),
                }
            },
        )
    )["paymentCapture"]
    assert [(e["field"], e["code"]) for e in too_much["errors"]] == [
        (["input", "amount", "amount"], "INVALID")
    ]
    wrong = (
        await admin.data(
            CAPTURE,
            {
                "input": {
                    "paymentId": payment["id"],
                    "amount": {"amount": 100, "currency": "EUR"},
                    "idempotencyKey": key(),
                }
            },
        )
    )["paymentCapture"]
    assert [e["code"] for e in wrong["errors"]] == ["CURRENCY_MISMATCH"]

    captured = (
        await admin.data(
            CAPTURE,
            {
                "input": {
                    "paymentId": payment["id"],
                    "amount": {"amount": 6000, "currency": "USD"},
                    "idempotencyKey": key(),
                }
            },
        )
    )["paymentCapture"]
    assert captured["errors"] == []
    assert captured["payment"]["status"] == "SUCCEEDED"
    assert captured["payment"]["amountCaptured"] == {"amount": "6000"}
    assert captured["payment"]["amountRefundable"] == {"amount": "6000"}
    assert captured["payment"]["amountCapturable"] == {"amount": "0"}
    intent = await stripe_get(settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}")
    assert intent["status"] == "succeeded"

    held = await payment_factory(captureMethod="MANUAL")
    await confirm(admin, held["id"])
    canceled = (
        await admin.data(CANCEL, {"input": {"paymentId": held["id"], "idempotencyKey": key()}})
    )["paymentCancel"]
    assert canceled["errors"] == []
    assert canceled["payment"]["status"] == "CANCELED"
    assert canceled["payment"]["amountCapturable"] == {"amount": "0"}
    intent = await stripe_get(settings, f"/v1/payment_intents/{held['stripePaymentIntentId']}")
    assert intent["status"] == "canceled"


async def _in_state(
    state: str, admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> dict[str, Any]:
    if state == "succeeded":
        return dict(await payment_factory(confirm=True))
    if state == "requires_confirmation":
        return dict(await payment_factory())
    if state == "canceled":
        payment = await payment_factory()
        await admin.data(CANCEL, {"input": {"paymentId": payment["id"], "idempotencyKey": key()}})
        return dict(payment)
    if state == "failed":
        card = await stripe_card(settings, "4000000000000341")
        payment = await payment_factory(paymentMethodId=card)
        await confirm(admin, payment["id"])
        return dict(payment)
    raise AssertionError(state)


ILLEGAL = [
    ("succeeded", "confirm"),
    ("succeeded", "capture"),
    ("succeeded", "cancel"),
    ("canceled", "confirm"),
    ("canceled", "capture"),
    ("canceled", "cancel"),
    ("requires_confirmation", "capture"),
    ("failed", "confirm"),
    ("failed", "capture"),
]


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
async def test_illegal_transitions_are_payload_errors_and_change_nothing(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    settings: Settings,
    app_services: Any,
    state: str,
    action: str,
) -> None:
    payment = await _in_state(state, admin, payment_factory, settings)
    before = await row_of(app_services, payment["id"])
    intent_before = await stripe_get(
        settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}"
    )
    document, name = {
        "confirm": (CONFIRM_PAYMENT, "paymentIntentConfirm"),
        "capture": (CAPTURE, "paymentCapture"),
        "cancel": (CANCEL, "paymentCancel"),
    }[action]
    data = await admin.data(
        document, {"input": {"paymentId": payment["id"], "idempotencyKey": key()}}
    )
    payload = data[name]
    assert payload["payment"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [
        (["input", "paymentId"], "INVALID_STATE")
    ]
    assert state.replace("_", " ") in payload["errors"][0]["message"]
    assert await row_of(app_services, payment["id"]) == before
    intent_after = await stripe_get(
        settings, f"/v1/payment_intents/{payment['stripePaymentIntentId']}"
    )
    assert intent_after["status"] == intent_before["status"]


async def test_yen_and_dinar_amounts_use_their_own_minor_units(
    admin: GraphQLClient, customer_factory: Callable[..., Any], settings: Settings
) -> None:
    customer = await customer_factory()
    yen = (
        await create(
            admin,
            customerId=customer["id"],
            amount={"amount": 500, "currency": "JPY"},
            paymentMethodId="pm_card_visa",
        )
    )["payment"]
    assert yen["amount"] == {"amount": "500", "currency": "JPY", "decimal": "500"}
    intent = await stripe_get(settings, f"/v1/payment_intents/{yen['stripePaymentIntentId']}")
    assert (intent["amount"], intent["currency"]) == (500, "jpy")
    done = (await confirm(admin, yen["id"]))["payment"]
    assert done["amountCaptured"] == {"amount": "500"}
    summary = (await admin.data(LIST, {"filter": {"currency": "jpy"}}))["payments"]["summary"]
    assert summary[0]["succeeded"] == {"amount": "500", "currency": "JPY", "decimal": "500"}

    dinar = (
        await create(admin, customerId=customer["id"], amount={"amount": 1234, "currency": "KWD"})
    )["payment"]
    assert dinar["amount"]["decimal"] == "1.234"


async def test_list_filters_in_sql_and_totals_per_currency_over_the_whole_filter(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    app_services: Any,
) -> None:
    alice = await customer_factory()
    usd = [await payment_factory(confirm=True, customer=alice) for _ in range(3)]
    open_usd = await payment_factory(customer=alice)
    eur = await payment_factory(
        confirm=True, amount={"amount": 2000, "currency": "EUR"}, customer=alice
    )
    other = await payment_factory(confirm=True)
    refund = await admin.data(
        REFUND,
        {
            "input": {
                "paymentId": eur["id"],
                "amount": {"amount": 500, "currency": "EUR"},
                "reason": "REQUESTED_BY_CUSTOMER",
                "idempotencyKey": key(),
            }
        },
    )
    assert refund["refundCreate"]["errors"] == []
    # Spread creation dates: the first two USD payments are from last month.
    last_month = datetime.now(UTC) - timedelta(days=30)
    for payment in usd[:2]:
        await app_services.db.execute(
            "UPDATE payments SET created_at = :at WHERE id = :id",
            {"at": last_month, "id": payment["id"]},
        )

    page = (await admin.data(LIST, {"first": 1, "filter": {"customerId": alice["id"]}}))["payments"]
    assert page["totalCount"] == 5
    assert len(page["edges"]) == 1
    assert page["pageInfo"]["hasNextPage"] is True
    assert page["summary"] == [
        {
            "currency": "EUR",
            "count": 1,
            "succeededCount": 1,
            "succeeded": {"amount": "2000", "currency": "EUR", "decimal": "20.00"},
            "refunded": {"amount": "500"},
            "net": {"amount": "1500", "decimal": "15.00"},
        },
        {
            "currency": "USD",
            "count": 4,
            "succeededCount": 3,
            "succeeded": {"amount": "30000", "currency": "USD", "decimal": "300.00"},
            "refunded": {"amount": "0"},
            "net": {"amount": "30000", "decimal": "300.00"},
        },
    ]

    seen = []
    after = None
    recent = {"customerId": alice["id"], "from": (last_month + timedelta(days=1)).isoformat()}
    while True:
        chunk = (await admin.data(LIST, {"first": 1, "after": after, "filter": recent}))["payments"]
        assert chunk["totalCount"] == 3
        seen += [e["node"]["id"] for e in chunk["edges"]]
        if not chunk["pageInfo"]["hasNextPage"]:
            break
        after = chunk["pageInfo"]["endCursor"]
    assert seen == [usd[2]["id"], open_usd["id"], eur["id"]]

    older = {"to": (last_month + timedelta(days=1)).replace(tzinfo=None).isoformat()}
    old_page = (await admin.data(LIST, {"filter": older}))["payments"]
    assert [e["node"]["id"] for e in old_page["edges"]] == [usd[0]["id"], usd[1]["id"]]
    assert old_page["summary"][0]["succeeded"]["amount"] == "20000"

    statuses = {"status": ["REQUIRES_CONFIRMATION"], "customerId": alice["id"]}
    by_status = (await admin.data(LIST, {"filter": statuses}))["payments"]
    assert [e["node"]["id"] for e in by_status["edges"]] == [open_usd["id"]]
    everyone = (await admin.data(LIST, {"filter": {"currency": "usd"}}))["payments"]
    assert everyone["totalCount"] == 5
    assert other["id"] in [e["node"]["id"] for e in everyone["edges"]]


async def test_customer_tokens_see_and_act_on_their_own_payments_only(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> None:
    me, other = await customer_factory(), await customer_factory()
    mine = await payment_factory(customer=me)
    theirs = await payment_factory(customer=other, confirm=True)
    client = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))

    assert (await client.data(GET, {"id": mine["id"]}))["payment"]["id"] == mine["id"]
    assert (await client.data(GET, {"id": theirs["id"]}))["payment"] is None
    listing = (await client.data(LIST))["payments"]
    assert [e["node"]["id"] for e in listing["edges"]] == [mine["id"]]
    assert listing["totalCount"] == 1
    assert [s["count"] for s in listing["summary"]] == [1]
    spying = (await client.data(LIST, {"filter": {"customerId": other["id"]}}))["payments"]
    assert (spying["totalCount"], spying["edges"], spying["summary"]) == (0, [], [])

    refused = await confirm(client, theirs["id"])
    assert [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]
    for_other = await create(
        client, customerId=other["id"], amount={"amount": 100, "currency": "USD"}
    )
    assert [e["code"] for e in for_other["errors"]] == ["NOT_FOUND"]
    own = await create(
        client,
        customerId=me["id"],
        amount={"amount": 100, "currency": "USD"},
        paymentMethodId="pm_card_visa",
    )
    assert own["errors"] == []
    assert (await confirm(client, own["payment"]["id"]))["payment"]["status"] == "SUCCEEDED"
    body = await client(CANCEL, {"input": {"paymentId": mine["id"], "idempotencyKey": key()}})
    assert error_codes(body) == ["FORBIDDEN"]
    body = await client(CAPTURE, {"input": {"paymentId": mine["id"], "idempotencyKey": key()}})
    assert error_codes(body) == ["FORBIDDEN"]

    nested = await client.data(
        "query($id: ID!) { customer(id: $id) { payments { totalCount edges { node { id } } } } }",
        {"id": me["id"]},
    )
    assert nested["customer"]["payments"]["totalCount"] == 2


async def test_other_organizations_ids_behave_exactly_like_missing_ids(
    payment_factory: Callable[..., Any], http: httpx.AsyncClient, settings: Settings
) -> None:
    payment = await payment_factory(confirm=True)
    stranger = GraphQLClient(http, token(settings, new_org(), "admin"))
    missing = "pay_01hzzzzzzzzzzzzzzzzzzzzzzz"
    for ident in (payment["id"], missing):
        assert (await stranger.data(GET, {"id": ident}))["payment"] is None
    outcomes = []
    for ident in (payment["id"], missing):
        outcome = []
        outcome.append((await confirm(stranger, ident))["errors"])
        for document, name in ((CAPTURE, "paymentCapture"), (CANCEL, "paymentCancel")):
            data = await stranger.data(
                document, {"input": {"paymentId": ident, "idempotencyKey": key()}}
            )
            outcome.append(data[name]["errors"])
        data = await stranger.data(REFRESH, {"input": {"paymentId": ident}})
        outcome.append(data["paymentRefresh"]["errors"])
        data = await stranger.data(
            REFUND, {"input": {"paymentId": ident, "reason": "OTHER", "idempotencyKey": key()}}
        )
        outcome.append(data["refundCreate"]["errors"])
        outcomes.append(outcome)
    assert outcomes[0] == outcomes[1]
    assert {e["code"] for errors in outcomes[0] for e in errors} == {"NOT_FOUND"}


NESTED = """query($n: Int) {
  payments(first: $n) {
    totalCount
    summary { currency count succeeded { amount } }
    edges { node {
      id status amount { amount } amountRefundable { amount }
      customer { id email }
      refunds { id status amount { amount } payment { id } }
    } }
  }
}"""
CUSTOMERS_WITH_PAYMENTS = """query($n: Int) {
  customers(first: $n) { edges { node { id payments(first: 3) {
    pageInfo { hasNextPage } edges { node { id refunds { id } } }
  } } } }
}"""


@pytest.mark.slow
async def test_statement_counts_do_not_grow_with_the_page(
    admin: GraphQLClient, payment_factory: Callable[..., Any], customer_factory: Callable[..., Any]
) -> None:
    customers = [await customer_factory() for _ in range(10)]
    for n in range(50):
        payment = await payment_factory(confirm=True, customer=customers[n % 10])
        refund = await admin.data(
            REFUND,
            {
                "input": {
                    "paymentId": payment["id"],
                    "amount": {"amount": 100 + n, "currency": "USD"},
                    "reason": "DUPLICATE",
                    "idempotencyKey": key(),
                }
            },
        )
        assert refund["refundCreate"]["errors"] == []
    counts = {}
    for n in (5, 50):
        with count_statements() as log:
            data = await admin.data(NESTED, {"n": n})
        edges = data["payments"]["edges"]
        assert len(edges) == n
        assert all(len(e["node"]["refunds"]) == 1 for e in edges)
        assert all(e["node"]["refunds"][0]["payment"]["id"] == e["node"]["id"] for e in edges)
        counts[n] = log.count
    # page, count, summary, refunds of the page, customers of the page, and the card money
    # credit notes gave to the balance (amountRefundable, from the ledger)
    assert counts[5] == counts[50] == 6, counts

    per_customer = {}
    for n in (2, 10):
        with count_statements() as log:
            data = await admin.data(CUSTOMERS_WITH_PAYMENTS, {"n": n})
        nodes = [e["node"] for e in data["customers"]["edges"]]
        assert len(nodes) == n
        assert all(len(c["payments"]["edges"]) == 3 for c in nodes)
        assert all(c["payments"]["pageInfo"]["hasNextPage"] for c in nodes)
        per_customer[n] = log.count
    # customers page, their payments (one windowed statement), the refunds of those payments
    assert per_customer[2] == per_customer[10] == 3, per_customer

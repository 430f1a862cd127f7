"""checkoutPreview: a taxed, discounted quote for a basket equals what checkout then issues,
for a customer and for a visitor, and writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.core.settings import Settings
from tests.schema.test_coupons_api import APPLY, CREATE_COUPON
from tests.schema.test_customers_api import SET_CARD
from tests.schema.test_invoice_taxes_api import rate
from tests.schema.test_previews import PREVIEW_INVOICE, _full, counts, shape
from tests.schema.test_subscriptions_api import advance, subscribe
from tests.support import GraphQLClient, token

CHECKOUT = f"""query($input: CheckoutPreviewInput!) {{
  checkoutPreview(input: $input) {{
    quote {{
      currency dueNow {{ amount }} recurring {{ amount }}
      items {{
        subscription {{ status planId quantity }}
        firstInvoice {{ {PREVIEW_INVOICE} }}
        nextInvoice {{ {PREVIEW_INVOICE} }}
      }}
    }}
    errors {{ field message code }}
  }}
}}"""
MAR_1 = datetime(2027, 3, 1, tzinfo=UTC)


async def test_a_basket_quote_is_what_checkout_issues(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    await advance(admin, MAR_1)
    await rate(admin, name="VAT", percentage="20", country="FR")
    coupon = (
        await admin.data(
            CREATE_COUPON,
            {
                "input": {
                    "code": "LAUNCH",
                    "name": "Launch",
                    "duration": "FOREVER",
                    "percentOff": "15",
                }
            },
        )
    )["couponCreate"]["coupon"]
    base = await plan_factory(price={"amount": 4900, "currency": "EUR"})
    seats = await plan_factory(price={"amount": 990, "currency": "EUR"})
    trial = await plan_factory(price={"amount": 300, "currency": "EUR"}, trialDays=14)
    customer = await customer_factory(address={"country": "FR", "city": "Lyon"})
    await admin.data(
        SET_CARD, {"input": {"customerId": customer["id"], "paymentMethodId": "pm_card_visa"}}
    )
    items = [
        {"planId": base["id"]},
        {"planId": seats["id"], "quantity": 3},
        {"planId": trial["id"]},
    ]

    before = await counts(app_services, org)
    quoted = (
        await admin.data(
            CHECKOUT,
            {"input": {"customerId": customer["id"], "items": items, "couponCode": "LAUNCH"}},
        )
    )["checkoutPreview"]
    assert quoted["errors"] == []
    assert await counts(app_services, org) == before
    quote = quoted["quote"]
    assert quote["currency"] == "EUR"
    first, second, third = quote["items"]
    assert third["firstInvoice"] is None  # a trial: billed at its end
    assert third["subscription"]["status"] == "TRIALING"
    # 49.00 - 15 % = 41.65, + 20 % VAT = 49.98; 3 x 9.90 = 29.70 - 4.46 (15 %) = 25.24 + 5.05.
    assert first["firstInvoice"]["amountDue"]["amount"] == "4998"
    assert second["firstInvoice"]["total"]["amount"] == "3029"
    assert quote["dueNow"]["amount"] == str(4998 + 3029)

    # Checkout for real: the coupon, then the three subscriptions; the same invoices.
    applied = await admin.data(APPLY, {"input": {"customerId": customer["id"], "code": "LAUNCH"}})
    assert applied["couponApply"]["errors"] == []
    assert coupon["id"]
    for item, expected in zip(items, quote["items"], strict=True):
        made = await subscribe(admin, customerId=customer["id"], **item)
        assert made["status"] == expected["subscription"]["status"]
        if expected["firstInvoice"] is not None:
            issued = await _full(admin, made["latestInvoiceId"])
            assert shape(issued) == shape(expected["firstInvoice"])


async def test_a_visitor_quote_and_refusals(
    admin: GraphQLClient,
    settings: Settings,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    await advance(admin, MAR_1)
    await rate(admin, name="Sales tax", percentage="8.875", country="US", region="NY")
    plan = await plan_factory(price={"amount": 10000, "currency": "USD"})
    euro = await plan_factory(price={"amount": 10000, "currency": "EUR"})
    visitor = {
        "currency": "USD",
        "address": {"country": "US", "region": "NY", "city": "New York"},
        "items": [{"planId": plan["id"], "quantity": 2}],
    }
    quote = (await admin.data(CHECKOUT, {"input": visitor}))["checkoutPreview"]["quote"]
    assert quote["dueNow"]["amount"] == "21775"  # 200.00 + 8.875 % = 217.75
    assert quote["recurring"]["amount"] == "21775"

    # A customer token may quote for a visitor, or for itself, not for another customer.
    me, other = await customer_factory(), await customer_factory()
    as_me = admin.as_(token(settings, org, "customer", sub=me["id"]))
    one = {**visitor, "items": [{"planId": plan["id"]}]}
    mine = (await as_me.data(CHECKOUT, {"input": one}))["checkoutPreview"]
    assert mine["errors"] == []
    assert mine["quote"]["dueNow"]["amount"] == "10888"  # 100.00 + 8.875 % = 108.875 → 108.88
    theirs = (
        await as_me.data(
            CHECKOUT, {"input": {"customerId": other["id"], "items": visitor["items"]}}
        )
    )["checkoutPreview"]
    assert [e["code"] for e in theirs["errors"]] == ["NOT_FOUND"]
    # …and under the customer policy (a quantity over its maximum, 1).
    own = {"customerId": me["id"], "items": visitor["items"]}
    limited = (await as_me.data(CHECKOUT, {"input": own}))["checkoutPreview"]
    assert [(e["code"], e["field"]) for e in limited["errors"]] == [
        ("NOT_PERMITTED", ["input", "items", "0", "quantity"])
    ]
    # Mixed currencies, unknown plans, empty baskets: refused, at the item.
    mixed = {**visitor, "items": [{"planId": plan["id"]}, {"planId": euro["id"]}]}
    refused = (await admin.data(CHECKOUT, {"input": mixed}))["checkoutPreview"]
    assert [e["code"] for e in refused["errors"]] == ["CURRENCY_MISMATCH"]
    missing = f"plan_{uuid.uuid4().hex}"
    unknown = {**visitor, "items": [{"planId": plan["id"]}, {"planId": missing}]}
    refused = (await admin.data(CHECKOUT, {"input": unknown}))["checkoutPreview"]
    assert [(e["code"], e["field"][:3]) for e in refused["errors"]] == [
        ("NOT_FOUND", ["input", "items", "1"])
    ]
    empty = (await admin.data(CHECKOUT, {"input": {**visitor, "items": []}}))["checkoutPreview"]
    assert [e["code"] for e in empty["errors"]] == ["INVALID"]

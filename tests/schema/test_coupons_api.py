"""Coupons through the API: each duration over a year of monthly invoices, redemption limits,
expiry, fixed amounts in another currency, and what drafts preview."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import GraphQLClient

CREATE_COUPON = """mutation($input: CouponCreateInput!) {
  couponCreate(input: $input) {
    coupon { id code name percentOff amountOff { amount currency } duration durationPeriods
             maxRedemptions timesRedeemed redeemBy active }
    errors { field code message }
  }
}"""
APPLY = """mutation($input: CouponApplyInput!) {
  couponApply(input: $input) {
    discount { id customerId periodsUsed coupon { code timesRedeemed } }
    errors { field code message }
  }
}"""
ARCHIVE = """mutation($id: ID!) {
  couponArchive(input: {id: $id}) { coupon { active } errors { code } }
}"""
FINALIZE = """mutation($id: ID!) {
  invoiceFinalize(input: {invoiceId: $id}) {
    invoice { id discountTotal { amount } total { amount } coupon { code }
              lines { kind description amount { amount } } }
    errors { code message }
  }
}"""


async def coupon(admin: GraphQLClient, **fields: Any) -> dict[str, Any]:
    payload = (await admin.data(CREATE_COUPON, {"input": fields}))["couponCreate"]
    assert payload["errors"] == [], payload["errors"]
    made: dict[str, Any] = payload["coupon"]
    return made


async def apply(admin: GraphQLClient, customer: dict[str, Any], **how: Any) -> dict[str, Any]:
    payload: dict[str, Any] = (
        await admin.data(APPLY, {"input": {"customerId": customer["id"], **how}})
    )["couponApply"]
    return payload


async def discounts_over_a_year(
    admin: GraphQLClient, invoice_factory: Callable[..., Any], customer: dict[str, Any]
) -> list[int]:
    """The discount of 12 consecutive monthly invoices of 50.00."""
    found = []
    for month in range(12):
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=31 * month)
        draft = await invoice_factory(
            customer=customer,
            lines=[
                {
                    "description": "Pro plan",
                    "unitAmount": 5000,
                    "kind": "SUBSCRIPTION",
                    "periodStart": start.isoformat(),
                    "periodEnd": (start + timedelta(days=31)).isoformat(),
                }
            ],
        )
        done = (await admin.data(FINALIZE, {"id": draft["id"]}))["invoiceFinalize"]
        assert done["errors"] == []
        found.append(int(done["invoice"]["discountTotal"]["amount"]))
    return found


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"duration": "ONCE", "percentOff": "20"}, [1000] + [0] * 11),
        (
            {"duration": "REPEATING", "durationPeriods": 3, "percentOff": "12.5"},
            [625] * 3 + [0] * 9,
        ),
        ({"duration": "FOREVER", "amountOff": {"amount": 700, "currency": "USD"}}, [700] * 12),
    ],
)
async def test_each_duration_over_twelve_invoices(
    admin: GraphQLClient,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
    terms: dict[str, Any],
    expected: list[int],
) -> None:
    made = await coupon(admin, code="YEAR", name="Launch offer", **terms)
    customer = await customer_factory()
    applied = await apply(admin, customer, code="YEAR")
    assert applied["errors"] == []
    assert applied["discount"]["coupon"]["timesRedeemed"] == 1
    assert await discounts_over_a_year(admin, invoice_factory, customer) == expected
    other = await customer_factory()  # without the coupon: no discount
    assert await discounts_over_a_year(admin, invoice_factory, other) == [0] * 12
    assert made["duration"] == terms["duration"]


async def test_the_discount_line_and_the_preview(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await coupon(admin, code="TEN", name="Ten off", duration="ONCE", percentOff="10")
    customer = await customer_factory()
    await apply(admin, customer, code="TEN")
    first = await invoice_factory(
        customer=customer, lines=[{"description": "A", "unitAmount": 999}]
    )
    second = await invoice_factory(
        customer=customer, lines=[{"description": "B", "unitAmount": 999}]
    )
    # Both drafts preview the discount; only the first finalized uses it.
    assert first["discountTotal"]["amount"] == second["discountTotal"]["amount"] == "100"
    done = (await admin.data(FINALIZE, {"id": second["id"]}))["invoiceFinalize"]["invoice"]
    assert [
        (line["kind"], line["description"], line["amount"]["amount"]) for line in done["lines"]
    ] == [
        ("ONE_OFF", "B", "999"),
        ("DISCOUNT", "Ten off (10%)", "-100"),
    ]
    assert (done["total"]["amount"], done["coupon"]["code"]) == ("899", "TEN")
    late = (await admin.data(FINALIZE, {"id": first["id"]}))["invoiceFinalize"]["invoice"]
    assert (late["discountTotal"]["amount"], late["total"]["amount"], late["coupon"]) == (
        "0",
        "999",
        None,
    )


async def test_a_fixed_amount_applies_only_in_its_currency_and_never_below_zero(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await coupon(
        admin,
        code="FIVE",
        name="Five off",
        duration="FOREVER",
        amountOff={"amount": 500, "currency": "EUR"},
    )
    customer = await customer_factory()
    await apply(admin, customer, code="FIVE")
    dollars = await invoice_factory(customer=customer, currency="USD", finalize=True)
    assert dollars["discountTotal"]["amount"] == "0"
    small = await invoice_factory(
        customer=customer,
        currency="EUR",
        lines=[{"description": "Tiny", "unitAmount": 300}],
        finalize=True,
    )
    assert (small["discountTotal"]["amount"], small["total"]["amount"]) == ("300", "0")
    assert small["status"] == "PAID"


async def test_redemption_limits_expiry_and_archiving(
    admin: GraphQLClient, customer_factory: Callable[..., Any]
) -> None:
    limited = await coupon(
        admin, code="ONLY2", name="Two only", duration="ONCE", percentOff="50", maxRedemptions=2
    )
    customers = [await customer_factory() for _ in range(5)]
    results = await asyncio.gather(*(apply(admin, c, couponId=limited["id"]) for c in customers))
    succeeded = [r for r in results if not r["errors"]]
    refused = [r["errors"] for r in results if r["errors"]]
    assert len(succeeded) == 2
    assert (
        refused
        == [
            [
                {
                    "field": ["input", "couponId"],
                    "code": "INVALID_STATE",
                    "message": "The coupon has reached its maximum number of redemptions.",
                }
            ]
        ]
        * 3
    )

    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    expiring = await coupon(
        admin, code="SOON", name="Soon", duration="ONCE", percentOff="5", redeemBy=soon
    )
    await asyncio.sleep(1.2)
    expired = await apply(admin, customers[0], couponId=expiring["id"])
    assert [e["message"] for e in expired["errors"]] == ["The coupon has expired."]

    archived = await coupon(admin, code="OLD", name="Old", duration="FOREVER", percentOff="5")
    assert (await admin.data(ARCHIVE, {"id": archived["id"]}))["couponArchive"]["errors"] == []
    refused_archived = await apply(admin, customers[0], code="OLD")
    assert [e["message"] for e in refused_archived["errors"]] == ["The coupon is archived."]
    missing = await apply(admin, customers[0], code="NOPE")
    assert [(e["field"], e["code"]) for e in missing["errors"]] == [
        (["input", "code"], "NOT_FOUND")
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"percentOff": "10", "amountOff": {"amount": 1, "currency": "USD"}}, "percentOff"),
        ({"percentOff": "100.5"}, "percentOff"),
        ({"percentOff": "0"}, "percentOff"),
        ({"amountOff": {"amount": 0, "currency": "USD"}}, "amountOff"),
        ({"percentOff": "5", "duration": "REPEATING"}, "durationPeriods"),
        ({"percentOff": "5", "durationPeriods": 3}, "durationPeriods"),
        ({"percentOff": "5", "maxRedemptions": 0}, "maxRedemptions"),
        ({"percentOff": "5", "redeemBy": "2001-01-01T00:00:00Z"}, "redeemBy"),
        ({"percentOff": "5", "code": "bad code"}, "code"),
    ],
)
async def test_invalid_coupons_are_refused(
    admin: GraphQLClient, fields: dict[str, Any], field: str
) -> None:
    payload = (
        await admin.data(
            CREATE_COUPON, {"input": {"code": "C", "name": "C", "duration": "ONCE", **fields}}
        )
    )["couponCreate"]
    assert payload["coupon"] is None
    assert [e["field"] for e in payload["errors"]] == [["input", field]]

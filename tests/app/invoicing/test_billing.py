"""``InvoiceBilling.bill``, the entry point for subscriptions: a period's lines invoiced and
charged at most once per key, and a subscription's coupon used once per period index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.catalog.coupons import CouponDraft, CouponDuration
from app.customers.service import CustomerDraft
from app.invoicing.math import LineKind
from app.invoicing.service import InvoiceStatus, LineInput
from tests.support import new_org


async def _customer(services: Any, org: str) -> str:
    customer = await services.customers.create(org, CustomerDraft(email="sub@example.com"))
    await services.customers.set_default_payment_method(org, customer.id, "pm_card_visa")
    return str(customer.id)


def _period(month: int) -> list[LineInput]:
    start = datetime(2026, month, 1, tzinfo=UTC)
    end = datetime(2026, month + 1, 1, tzinfo=UTC)
    return [
        LineInput("Pro plan", 2000, kind=LineKind.SUBSCRIPTION, period_start=start, period_end=end)
    ]


async def test_a_period_is_invoiced_and_charged_once_per_key(app_services: Any) -> None:
    org = new_org()
    customer_id = await _customer(app_services, org)
    billing = app_services.invoice_billing
    first = await billing.bill(
        org,
        customer_id=customer_id,
        subscription_id="sub_test",
        currency="USD",
        lines=_period(1),
        key="sub_test:period:0",
        period_index=0,
    )
    assert first.paid
    assert first.invoice.subscription_id == "sub_test"
    assert first.payment is not None
    assert first.payment.amount.amount == 2000
    again = await billing.bill(
        org,
        customer_id=customer_id,
        subscription_id="sub_test",
        currency="USD",
        lines=_period(1),
        key="sub_test:period:0",
        period_index=0,
    )
    assert again.invoice.id == first.invoice.id
    assert again.payment is not None
    assert again.payment.id == first.payment.id
    payments, _ = await app_services.payments.read.page(org, {}, first=10, after=None)
    assert len(payments) == 1


async def test_a_subscription_coupon_counts_periods_not_calls(app_services: Any) -> None:
    org = new_org()
    customer_id = await _customer(app_services, org)
    coupon = await app_services.coupons.create(
        org,
        CouponDraft(
            code="TWO",
            name="Two months",
            duration=CouponDuration.REPEATING,
            duration_periods=2,
            percent_off="50",
        ),
    )
    await app_services.coupons.apply(org, coupon, customer_id, subscription_id="sub_a")
    billing = app_services.invoice_billing

    async def bill(index: int, key: str) -> int:
        result = await billing.bill(
            org,
            customer_id=customer_id,
            subscription_id="sub_a",
            currency="USD",
            lines=_period(index + 1),
            key=key,
            period_index=index,
        )
        assert result.invoice.status is InvoiceStatus.PAID
        return int(result.invoice.discount_total.amount)

    assert await bill(0, "a:0") == 1000
    # The same period billed again under another key (a re-run) does not use a second period.
    assert await bill(0, "a:0:rerun") == 1000
    assert await bill(1, "a:1") == 1000
    assert await bill(2, "a:2") == 0
    # Another subscription of the same customer has no discount.
    other = await billing.bill(
        org,
        customer_id=customer_id,
        subscription_id="sub_b",
        currency="USD",
        lines=_period(1),
        key="b:0",
        period_index=0,
    )
    assert other.invoice.discount_total.amount == 0

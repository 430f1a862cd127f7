"""Statistics on hand-built data, through the API: multi-currency revenue with refunds and
failed payments, the date range actually filtering (exactly, to the microsecond), time-zone
bucket boundaries, MRR of yearly, quarterly and weekly plans with quantity and a coupon, MRR
movements and churn over a month, trial conversion, the overview, and clear errors.

Payments and subscription changes are timed with the organization's test clock, which is the
clock statistics count by."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.core.settings import Settings
from tests.conftest import CONFIRM_PAYMENT
from tests.schema.test_customers_api import stripe_card
from tests.stats_support import (
    CANCEL,
    CHANGE_PLAN,
    REFUND,
    REVENUE,
    SET_CARD,
    STATS,
    SUBSCRIBE,
    SUBSCRIPTION_STATS,
    advance,
    amount,
    assert_rollups_match_raw,
    iso,
    mutate,
)
from tests.support import GraphQLClient, error_codes

JAN_10 = datetime(2027, 1, 10, 10, 0, tzinfo=UTC)


def by_currency(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["currency"]: c for c in data["revenueStats"]}


def figures(found: dict[str, Any]) -> tuple[Any, ...]:
    return (
        amount(found["gross"]),
        amount(found["refunds"]),
        amount(found["net"]),
        found["paymentCount"],
        found["failedPaymentCount"],
        found["refundCount"],
        amount(found["averagePayment"]),
    )


async def revenue(admin: GraphQLClient, start: datetime, end: datetime, **more: Any) -> Any:
    return by_currency(await admin.data(REVENUE, {"from": iso(start), "to": iso(end), **more}))


async def test_revenue_per_currency_with_refunds_failures_and_the_range_filtering(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    await advance(admin, JAN_10)
    customer = await customer_factory()
    usd = await payment_factory(confirm=True, amount={"amount": 1000, "currency": "USD"})
    refunded = await payment_factory(confirm=True, amount={"amount": 2001, "currency": "USD"})
    await payment_factory(confirm=True, amount={"amount": 500, "currency": "JPY"})
    await payment_factory(confirm=True, amount={"amount": 999, "currency": "EUR"})
    await payment_factory(amount={"amount": 4444, "currency": "USD"})  # never confirmed
    declining = await stripe_card(settings, "4000000000000341")
    failed = await payment_factory(
        customer=customer, amount={"amount": 2500, "currency": "USD"}, paymentMethodId=declining
    )
    confirm = {"paymentId": failed["id"], "idempotencyKey": "decline-1"}
    declined = (await admin.data(CONFIRM_PAYMENT, {"input": confirm}))["paymentIntentConfirm"]
    assert [e["code"] for e in declined["errors"]] == ["CARD_DECLINED"]
    await mutate(
        admin,
        REFUND,
        "refundCreate",
        paymentId=refunded["id"],
        amount={"amount": 300, "currency": "USD"},
        reason="REQUESTED_BY_CUSTOMER",
    )
    await advance(admin, datetime(2027, 1, 20, 10, 0, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 7000, "currency": "USD"})

    day = await revenue(admin, JAN_10 - timedelta(hours=10), JAN_10 + timedelta(hours=14))
    assert list(day) == ["EUR", "JPY", "USD"]  # per currency, never summed
    # 1000 + 2001 succeeded; 300 refunded; one failure; average 3001 / 2 = 1500.5 -> 1500
    assert figures(day["USD"]["total"]) == (3001, 300, 2701, 2, 1, 1, 1500)
    assert figures(day["JPY"]["total"]) == (500, 0, 500, 1, 0, 0, 500)
    assert figures(day["EUR"]["total"]) == (999, 0, 999, 1, 0, 0, 999)
    assert day["USD"]["total"]["gross"]["currency"] == "USD"
    (bucket,) = day["USD"]["buckets"]
    assert figures(bucket) == figures(day["USD"]["total"])

    # The range filters: the payment of the 20th is outside the first range, alone in this one.
    later = await revenue(
        admin, datetime(2027, 1, 15, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    )
    assert list(later) == ["USD"]
    assert figures(later["USD"]["total"]) == (7000, 0, 7000, 1, 0, 0, 7000)
    month = await revenue(
        admin,
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2027, 2, 1, tzinfo=UTC),
        interval="MONTH",
        currency="usd",
    )
    assert list(month) == ["USD"]
    assert figures(month["USD"]["total"]) == (10001, 300, 9701, 3, 1, 1, 3334)

    # Exact to the microsecond, whatever the bucket: everything above happened at 10:00:00.
    tick = timedelta(microseconds=1)
    assert await revenue(admin, JAN_10 + tick, JAN_10 + timedelta(hours=1)) == {}
    edge = await revenue(admin, JAN_10 - timedelta(minutes=7), JAN_10 + tick)
    assert figures(edge["USD"]["total"]) == (3001, 300, 2701, 2, 1, 1, 1500)

    # A currency asked for is listed even without data: zeros are real, not placeholders.
    empty = await revenue(admin, JAN_10, JAN_10 + timedelta(days=1), currency="GBP")
    assert figures(empty["GBP"]["total"]) == (0, 0, 0, 0, 0, 0, None)
    await assert_rollups_match_raw(app_services.db, org)
    assert usd["status"] == "SUCCEEDED"


async def test_buckets_follow_the_time_zone_to_its_boundaries(
    admin: GraphQLClient, payment_factory: Callable[..., Any]
) -> None:
    # New York is UTC-5 in early March: 04:55Z is still the 8th there, 05:05Z the 9th.
    await advance(admin, datetime(2027, 3, 9, 4, 55, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 1000, "currency": "USD"})
    await advance(admin, datetime(2027, 3, 9, 5, 5, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 2000, "currency": "USD"})
    # Kathmandu is UTC+05:45: its day starts at 18:15Z.
    await advance(admin, datetime(2027, 3, 9, 18, 14, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 4000, "currency": "USD"})
    await advance(admin, datetime(2027, 3, 9, 18, 16, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 8000, "currency": "USD"})

    start, end = datetime(2027, 3, 8, tzinfo=UTC), datetime(2027, 3, 11, tzinfo=UTC)

    async def days(tz: str) -> list[tuple[str, str, int]]:
        found = await revenue(admin, start, end, tz=tz)
        return [(b["start"], b["end"], amount(b["gross"])) for b in found["USD"]["buckets"]]

    assert await days("UTC") == [
        ("2027-03-08T00:00:00+00:00", "2027-03-09T00:00:00+00:00", 0),
        ("2027-03-09T00:00:00+00:00", "2027-03-10T00:00:00+00:00", 15000),
        ("2027-03-10T00:00:00+00:00", "2027-03-11T00:00:00+00:00", 0),
    ]
    # Local periods clipped to the range: it starts at 19:00 on the 7th in New York.
    assert await days("America/New_York") == [
        ("2027-03-07T19:00:00-05:00", "2027-03-08T00:00:00-05:00", 0),
        ("2027-03-08T00:00:00-05:00", "2027-03-09T00:00:00-05:00", 1000),
        ("2027-03-09T00:00:00-05:00", "2027-03-10T00:00:00-05:00", 14000),
        ("2027-03-10T00:00:00-05:00", "2027-03-10T19:00:00-05:00", 0),
    ]
    assert [g for _, _, g in await days("Asia/Kathmandu")] == [0, 7000, 8000, 0]

    # ISO weeks start on Monday: the range begins on Sunday the 7th in New York.
    week = await revenue(admin, start, end, interval="WEEK", tz="America/New_York", currency="USD")
    assert [(b["start"], amount(b["gross"])) for b in week["USD"]["buckets"]] == [
        ("2027-03-07T19:00:00-05:00", 0),  # the week of Monday 1 March, clipped
        ("2027-03-08T00:00:00-05:00", 15000),
    ]


async def test_dst_day_bucket_is_23_hours(
    admin: GraphQLClient, payment_factory: Callable[..., Any]
) -> None:
    await advance(admin, datetime(2027, 3, 14, 12, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 1234, "currency": "USD"})
    found = await revenue(
        admin,
        datetime(2027, 3, 14, 5, tzinfo=UTC),
        datetime(2027, 3, 15, 4, tzinfo=UTC),
        tz="America/New_York",
    )
    (bucket,) = found["USD"]["buckets"]
    assert (bucket["start"], bucket["end"]) == (
        "2027-03-14T00:00:00-05:00",
        "2027-03-15T00:00:00-04:00",
    )
    assert amount(bucket["gross"]) == 1234


async def plan(plan_factory: Callable[..., Any], amount: int, currency: str, **more: Any) -> Any:
    return await plan_factory(price={"amount": amount, "currency": currency}, **more)


async def paying(admin: GraphQLClient, customer_factory: Callable[..., Any]) -> dict[str, Any]:
    customer: dict[str, Any] = await customer_factory()
    await mutate(
        admin,
        SET_CARD,
        "customerSetDefaultPaymentMethod",
        customerId=customer["id"],
        paymentMethodId="pm_card_visa",
    )
    return customer


async def subscribe(admin: GraphQLClient, customer: Any, plan: Any, **more: Any) -> str:
    values = {"customerId": customer["id"], "planId": plan["id"], "trialDays": 0, **more}
    made = await mutate(admin, SUBSCRIBE, "subscriptionCreate", **values)
    subscription_id: str = made["subscription"]["id"]
    return subscription_id


async def subscription_stats(admin: GraphQLClient, **when: datetime) -> dict[str, Any]:
    variables = {name: iso(value) for name, value in when.items()}
    stats: dict[str, Any] = (await admin.data(SUBSCRIPTION_STATS, variables))["subscriptionStats"]
    return stats


def currency_of(stats: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in stats["currencies"] if c["currency"] == code)
    return found


async def test_mrr_normalises_yearly_quarterly_and_weekly_prices_after_discounts(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    await advance(admin, datetime(2027, 5, 3, 9, tzinfo=UTC))
    yearly = await plan(plan_factory, 120000, "USD", interval="YEAR", tier="ENTERPRISE")
    quarterly = await plan(plan_factory, 3000, "USD", interval="MONTH", intervalCount=3)
    weekly = await plan(plan_factory, 1000, "EUR", interval="WEEK", tier="BASIC")
    monthly = await plan(plan_factory, 1999, "EUR", interval="MONTH", tier="BASIC")
    trial = await plan(plan_factory, 5000, "USD", interval="MONTH", trialDays=14, tier="FREE")

    first, second, third = [await paying(admin, customer_factory) for _ in range(3)]
    await subscribe(admin, first, yearly)  # 120000 / 12 = 10000
    await subscribe(admin, second, quarterly, quantity=2)  # 6000 / 3 = 2000
    await subscribe(admin, third, weekly)  # 1000 x 52 / 12 = 4333.33 -> 4333
    coupon = (
        await admin.data(
            """mutation($input: CouponCreateInput!) {
                 couponCreate(input: $input) { coupon { id } errors { code } } }""",
            {
                "input": {
                    "code": "Q",
                    "name": "Quarter off",
                    "duration": "FOREVER",
                    "percentOff": "25",
                }
            },
        )
    )["couponCreate"]["coupon"]
    await mutate(
        admin,
        """mutation($input: CouponApplyInput!) {
             couponApply(input: $input) { discount { id } errors { code message } } }""",
        "couponApply",
        customerId=third["id"],
        couponId=coupon["id"],
    )
    # 1999 x 3 = 5997, less 25% (1499.25 -> 1499) = 4498 a month
    await subscribe(admin, third, monthly, quantity=3)
    await subscribe(admin, first, trial, trialDays=None)  # trialing: no MRR

    stats = await subscription_stats(admin)
    usd, eur = currency_of(stats, "USD"), currency_of(stats, "EUR")
    assert (amount(usd["mrr"]), amount(usd["arr"]), usd["payingCustomers"]) == (12000, 144000, 2)
    assert amount(usd["arpu"]) == 6000
    assert (amount(eur["mrr"]), amount(eur["arr"]), eur["payingCustomers"]) == (8831, 105972, 1)
    assert amount(eur["arpu"]) == 8831
    assert stats["counts"]["active"] == 4
    assert stats["counts"]["trialing"] == 1
    assert stats["counts"]["total"] == 5
    plans = {p["planId"]: p for p in stats["byPlan"]}
    assert amount(plans[yearly["id"]]["mrr"]) == 10000
    assert plans[yearly["id"]]["tier"] == "ENTERPRISE"
    assert amount(plans[monthly["id"]]["mrr"]) == 4498
    assert plans[trial["id"]]["counts"]["trialing"] == 1
    tiers = {t["tier"]: t for t in stats["byTier"]}
    assert [t["tier"] for t in stats["byTier"]] == ["FREE", "BASIC", "PRO", "ENTERPRISE"]
    assert [(m["currency"], amount(m)) for m in tiers["BASIC"]["mrr"]] == [("EUR", 8831)]
    assert tiers["BASIC"]["counts"]["active"] == 2
    assert stats["trialsStarted"] == 1
    await assert_rollups_match_raw(app_services.db, org)


async def test_mrr_movements_churn_and_trial_conversion_over_a_month(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    jan = datetime(2027, 1, 1, 9, tzinfo=UTC)
    await advance(admin, jan)
    small = await plan(plan_factory, 1000, "USD", interval="MONTH")
    mid = await plan(plan_factory, 2000, "USD", interval="MONTH")
    big = await plan(plan_factory, 3000, "USD", interval="MONTH")
    trial = await plan(plan_factory, 1000, "USD", interval="MONTH", trialDays=14)
    a, b, c = [await paying(admin, customer_factory) for _ in range(3)]
    sub_a = await subscribe(admin, a, small)  # new 1000
    sub_b = await subscribe(admin, b, mid)  # new 2000
    await subscribe(admin, c, trial, trialDays=None)  # trial until the 15th
    no_proration = {"prorationBehavior": "NONE"}

    await advance(admin, jan + timedelta(days=4))
    await mutate(
        admin, CHANGE_PLAN, "subscriptionChangePlan", id=sub_a, planId=big["id"], **no_proration
    )
    await advance(admin, jan + timedelta(days=9))
    await mutate(
        admin, CHANGE_PLAN, "subscriptionChangePlan", id=sub_b, planId=small["id"], **no_proration
    )
    await advance(admin, jan + timedelta(days=14, hours=1))  # the trial ends, paid: converted
    await advance(admin, jan + timedelta(days=19))
    await mutate(admin, CANCEL, "subscriptionCancel", id=sub_a, atPeriodEnd=False)
    await advance(admin, jan + timedelta(days=24))
    await subscribe(admin, a, small)  # a comes back: reactivation

    stats = await subscription_stats(
        admin,
        at=jan + timedelta(days=30),
        **{"from": jan + timedelta(days=2), "to": jan + timedelta(days=30)},
    )
    usd = currency_of(stats, "USD")
    moved = {k: amount(v) for k, v in usd["movements"].items()}
    assert moved == {
        "new": 1000,  # c's trial converted
        "expansion": 2000,  # a: 1000 -> 3000
        "contraction": 1000,  # b: 2000 -> 1000
        "churned": 3000,  # a canceled
        "reactivation": 1000,  # a came back
        "net": 0,
    }
    assert (amount(usd["mrrAtStart"]), usd["payingCustomersAtStart"]) == (3000, 2)
    assert (amount(usd["mrr"]), usd["payingCustomers"], amount(usd["arpu"])) == (3000, 3, 1000)
    assert (usd["newCustomers"], usd["reactivatedCustomers"], usd["churnedCustomers"]) == (1, 1, 1)
    assert usd["customerChurn"] == {"numerator": "1", "denominator": "2", "percent": "50.00"}
    assert usd["revenueChurn"] == {"numerator": "4000", "denominator": "3000", "percent": "133.33"}
    assert usd["netRevenueChurn"]["percent"] == "33.33"  # (3000 + 1000 - 2000 - 1000) / 3000
    assert (stats["trialsEnded"], stats["trialsConverted"]) == (1, 1)
    assert stats["trialConversion"]["percent"] == "100.00"
    assert stats["counts"]["canceled"] == 1

    # As of the 12th: a on the big plan, b on the small one, c still trialing.
    earlier = await subscription_stats(admin, at=jan + timedelta(days=11))
    usd = currency_of(earlier, "USD")
    assert (amount(usd["mrr"]), usd["payingCustomers"]) == (4000, 2)
    assert (earlier["counts"]["active"], earlier["counts"]["trialing"]) == (2, 1)
    assert earlier["counts"]["canceled"] == 0
    # Before anything happened there was nothing.
    nothing = await subscription_stats(admin, at=jan - timedelta(seconds=1))
    assert (nothing["counts"]["total"], nothing["currencies"]) == (0, [])
    await assert_rollups_match_raw(app_services.db, org)


async def test_stats_are_the_real_figures_of_today_and_this_month(
    admin: GraphQLClient,
    settings: Settings,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    payment_factory: Callable[..., Any],
) -> None:
    await advance(admin, datetime(2027, 6, 1, 12, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 5000, "currency": "USD"})
    await advance(admin, datetime(2027, 6, 20, 12, tzinfo=UTC))
    paid = await payment_factory(confirm=True, amount={"amount": 1500, "currency": "USD"})
    await payment_factory(confirm=True, amount={"amount": 800, "currency": "GBP"})
    await mutate(
        admin,
        REFUND,
        "refundCreate",
        paymentId=paid["id"],
        amount={"amount": 500, "currency": "USD"},
        reason="DUPLICATE",
    )
    declining = await stripe_card(settings, "4000000000000341")
    failed = await payment_factory(
        amount={"amount": 100, "currency": "USD"}, paymentMethodId=declining
    )
    await admin.data(CONFIRM_PAYMENT, {"input": {"paymentId": failed["id"], "idempotencyKey": "f"}})
    customer = await paying(admin, customer_factory)
    await subscribe(admin, customer, await plan(plan_factory, 2500, "USD", interval="MONTH"))

    stats = (await admin.data(STATS, {"tz": "Europe/Paris"}))["stats"]
    assert (stats["timeZone"], stats["at"]) == ("Europe/Paris", "2027-06-20T12:00:00+00:00")
    assert (stats["paymentCount"], stats["failedPaymentsToday"]) == (4, 1)
    assert (stats["activeSubscriptions"], stats["trialingSubscriptions"]) == (1, 0)
    currencies = {c["currency"]: c for c in stats["currencies"]}
    assert list(currencies) == ["GBP", "USD"]
    usd = currencies["USD"]
    # Today: 1500 + the subscription's first 2500; refunds 500; one failure.
    assert figures(usd["today"]) == (4000, 500, 3500, 2, 1, 1, 2000)
    assert figures(usd["thisMonth"]) == (9000, 500, 8500, 3, 1, 1, 3000)
    assert (usd["paymentCount"], amount(usd["mrr"])) == (3, 2500)
    assert usd["today"]["start"] == "2027-06-20T00:00:00+02:00"
    assert figures(currencies["GBP"]["today"]) == (800, 0, 800, 1, 0, 0, 800)


async def test_the_dashboard_snapshot(
    admin: GraphQLClient, app_services: Any, org: str, payment_factory: Callable[..., Any]
) -> None:
    await advance(admin, datetime(2027, 7, 30, 23, 50, tzinfo=UTC))
    await payment_factory(confirm=True, amount={"amount": 700, "currency": "EUR"})
    await advance(admin, datetime(2027, 8, 2, 8, tzinfo=UTC))
    paid = await payment_factory(confirm=True, amount={"amount": 300, "currency": "EUR"})
    await mutate(
        admin,
        REFUND,
        "refundCreate",
        paymentId=paid["id"],
        amount={"amount": 100, "currency": "EUR"},
        reason="OTHER",
    )
    now = datetime(2027, 8, 2, 9, tzinfo=UTC)
    snapshot = await app_services.statistics.snapshot(org, currency=None, now=now)
    (eur,) = snapshot.currencies
    assert (eur.currency, eur.today.amount, eur.this_month.amount) == ("EUR", 200, 200)
    assert (eur.net_total.amount, eur.payments_today, eur.mrr.amount) == (900, 1, 0)
    assert len(eur.days) == 30
    assert (eur.days[0].day.isoformat(), eur.days[-1].day.isoformat()) == (
        "2027-07-04",
        "2027-08-02",
    )
    assert [(d.day.isoformat(), d.net.amount) for d in eur.days if d.net.amount] == [
        ("2027-07-30", 700),
        ("2027-08-02", 200),
    ]
    asked = await app_services.statistics.snapshot(org, currency="jpy", now=now)
    assert [(c.currency, c.net_total.amount, len(c.days)) for c in asked.currencies] == [
        ("JPY", 0, 30)
    ]


async def test_bad_ranges_zones_and_currencies_are_clear_errors(admin: GraphQLClient) -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)

    async def refused(variables: dict[str, Any], document: str = REVENUE) -> str:
        body = await admin(document, variables)
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert body["data"] is None
        message: str = body["errors"][0]["message"]
        return message

    day = {"from": iso(start), "to": iso(start + timedelta(days=1))}
    assert "before `to`" in await refused({**day, "to": iso(start)})
    assert "at most three years" in await refused({**day, "to": iso(start + timedelta(days=1100))})
    assert "Unknown time zone 'Mars/Olympus'" in await refused({**day, "tz": "Mars/Olympus"})
    assert "Unknown time zone" in await refused({**day, "tz": "../../etc/passwd"})
    assert "XXX" in await refused({**day, "currency": "XXX"})
    assert "2000-01-01" in await refused({**day, "from": "1999-12-31T00:00:00Z"})
    assert "before `to`" in await refused(
        {"from": iso(start), "to": iso(start - timedelta(days=1))}, SUBSCRIPTION_STATS
    )
    assert "Unknown time zone" in await refused({"tz": "Nowhere"}, STATS)


async def test_a_payment_picked_up_by_a_refresh_counts_when_it_is_recorded(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    payment_factory: Callable[..., Any],
) -> None:
    """Confirmed in the browser (Stripe.js talks to Stripe directly), then recorded by
    `paymentRefresh` (or a webhook): it counts at the time it is recorded here."""
    await advance(admin, datetime(2027, 9, 1, 8, tzinfo=UTC))
    payment = await payment_factory(amount={"amount": 4200, "currency": "USD"})
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "") as stripe:
        confirmed = await stripe.post(
            f"/v1/payment_intents/{payment['stripePaymentIntentId']}/confirm",
            headers={"authorization": f"Bearer {settings.stripe_api_key}"},
        )
        assert confirmed.status_code == 200, confirmed.text
    await advance(admin, datetime(2027, 9, 2, 8, tzinfo=UTC))
    refreshed = await mutate(
        admin,
        """mutation($input: PaymentRefreshInput!) {
             paymentRefresh(input: $input) { payment { status } errors { code message } } }""",
        "paymentRefresh",
        paymentId=payment["id"],
    )
    assert refreshed["payment"]["status"] == "SUCCEEDED"
    found = await revenue(admin, datetime(2027, 9, 1, tzinfo=UTC), datetime(2027, 9, 3, tzinfo=UTC))
    assert [amount(b["gross"]) for b in found["USD"]["buckets"]] == [0, 4200]
    await assert_rollups_match_raw(app_services.db, org)


async def test_a_coupon_redeemed_for_the_current_period_moves_mrr_at_once(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    """The redemption itself is recorded (normally a subscription change follows it; if the
    process stopped in between, the statistics would still be right)."""
    await advance(admin, datetime(2027, 10, 1, 8, tzinfo=UTC))
    customer = await paying(admin, customer_factory)
    subscription_id = await subscribe(
        admin, customer, await plan(plan_factory, 8000, "USD", interval="MONTH")
    )
    coupon = (
        await admin.data(
            """mutation($input: CouponCreateInput!) {
                 couponCreate(input: $input) { coupon { id } errors { code } } }""",
            {"input": {"code": "H", "name": "Half", "duration": "ONCE", "percentOff": "50"}},
        )
    )["couponCreate"]["coupon"]
    await mutate(
        admin,
        """mutation($input: CouponApplyInput!) {
             couponApply(input: $input) { discount { id } errors { code message } } }""",
        "couponApply",
        customerId=customer["id"],
        couponId=coupon["id"],
    )
    assert amount(currency_of(await subscription_stats(admin), "USD")["mrr"]) == 8000
    services = app_services
    async with services.db.transaction():
        applied = await services.coupons.redeem(
            org,
            customer_id=customer["id"],
            subscription_id=subscription_id,
            currency="USD",
            invoice_id="inv_manual",
            discounts=lambda terms: True,
            period_index=0,
        )
    assert applied is not None
    usd = currency_of(await subscription_stats(admin), "USD")
    assert amount(usd["mrr"]) == 4000
    assert amount(usd["movements"]["contraction"]) == 4000
    await assert_rollups_match_raw(services.db, org)

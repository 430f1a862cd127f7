"""The rollups equal a recomputation from the raw tables, on random data made through the API.

A seeded random walk over an organization's test clock makes payments in four currencies
(succeeded, declined, never confirmed), partial refunds, subscriptions (with and without
trials, on monthly, quarterly, yearly and weekly plans, with quantities), plan changes, pauses,
resumptions, cancellations, coupons, failing cards and the renewals and dunning the clock
drives. Then:

* every rollup table equals the same sums recomputed from payments, declines, refunds and
  subscriptions;
* `revenueStats` over random ranges (unaligned to the microsecond), time zones (including
  +05:45 and +12:45 ones) and intervals equals a recomputation from the raw rows in Python;
* `subscriptionStats` at every instant a snapshot of the raw tables was taken equals it, and
  its MRR movements over random ranges add up to the change of MRR.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from app.core.settings import Settings
from app.statistics.service import StatsInterval
from tests.conftest import CONFIRM_PAYMENT, CREATE_PAYMENT
from tests.schema.test_customers_api import stripe_card
from tests.stats_support import (
    CANCEL,
    CHANGE_PLAN,
    PAUSE,
    REFUND,
    RESUME,
    SET_CARD,
    SUBSCRIBE,
    advance,
    assert_rollups_match_raw,
    mutate,
    raw_revenue_items,
)
from tests.support import GraphQLClient

SEED = 20270101
STEPS = 120
START = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
ZONES = ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham", "Australia/Eucla"]
CURRENCIES = {"USD": (100, 50_000), "EUR": (100, 20_000), "JPY": (50, 30_000), "KWD": (5, 9_999)}

COUPON = """mutation($input: CouponCreateInput!) {
  couponCreate(input: $input) { coupon { id } errors { code message } } }"""
APPLY = """mutation($input: CouponApplyInput!) {
  couponApply(input: $input) { discount { id } errors { code message } } }"""
RAW_SUBSCRIPTIONS = """
SELECT currency, plan_id, status, customer_id, stats_subscription_mrr(s) AS mrr
FROM subscriptions s WHERE organization_id = :org
"""


@dataclass
class Snapshot:
    """The raw tables' subscription figures at one instant of the organization's clock."""

    at: datetime
    counts: dict[tuple[str, str], int]  # (plan, status) -> subscriptions
    mrr: dict[str, int]
    paying: dict[str, int]


@dataclass
class Walk:
    admin: GraphQLClient
    settings: Settings
    db: Any
    org: str
    rng: random.Random
    now: datetime = START
    plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    customers: list[dict[str, Any]] = field(default_factory=list)
    succeeded: list[tuple[str, str, int]] = field(default_factory=list)  # id, currency, left
    subscriptions: list[str] = field(default_factory=list)
    coupons: list[str] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    async def tick(self, most: timedelta) -> None:
        step = timedelta(seconds=self.rng.randint(1, int(most.total_seconds())))
        self.now += step
        await advance(self.admin, self.now)

    async def payment(self) -> None:
        currency = self.rng.choice(list(CURRENCIES))
        low, high = CURRENCIES[currency]
        value = self.rng.randint(low, high)
        outcome = self.rng.choice(["paid", "paid", "paid", "declined", "open"])
        method = "pm_card_visa"
        if outcome == "declined":
            method = await stripe_card(self.settings, "4000000000000341")
        variables = {
            "customerId": self.rng.choice(self.customers)["id"],
            "amount": {"amount": value, "currency": currency},
            "paymentMethodId": method,
            "idempotencyKey": str(uuid.uuid4()),
        }
        made = (await self.admin.data(CREATE_PAYMENT, {"input": variables}))["paymentIntentCreate"][
            "payment"
        ]
        if outcome == "open":
            return
        confirm = {"paymentId": made["id"], "idempotencyKey": str(uuid.uuid4())}
        done = (await self.admin.data(CONFIRM_PAYMENT, {"input": confirm}))["paymentIntentConfirm"][
            "payment"
        ]
        if done["status"] == "SUCCEEDED":
            self.succeeded.append((made["id"], currency, value))

    async def refund(self) -> None:
        open_ = [p for p in self.succeeded if p[2] > 0]
        if not open_:
            return
        payment_id, currency, left = self.rng.choice(open_)
        value = self.rng.randint(1, left)
        await mutate(
            self.admin,
            REFUND,
            "refundCreate",
            paymentId=payment_id,
            amount={"amount": value, "currency": currency},
            reason="REQUESTED_BY_CUSTOMER",
        )
        self.succeeded.remove((payment_id, currency, left))
        self.succeeded.append((payment_id, currency, left - value))

    async def subscribe(self) -> None:
        family = self.rng.choice(list(self.plans))
        plan = self.rng.choice(self.plans[family])
        values = {
            "customerId": self.rng.choice(self.customers)["id"],
            "planId": plan["id"],
            "quantity": self.rng.choice([1, 1, 2, 3]),
            "trialDays": self.rng.choice([0, 0, 7, None]),
            "idempotencyKey": str(uuid.uuid4()),
        }
        payload = (await self.admin.data(SUBSCRIBE, {"input": values}))["subscriptionCreate"]
        if payload["subscription"] is not None:  # DUPLICATE: already subscribed to that plan
            self.subscriptions.append(payload["subscription"]["id"])

    async def change(self) -> None:
        """A plan change, pause, resume or cancellation (refusals for the state are fine)."""
        if not self.subscriptions:
            return
        subscription_id = self.rng.choice(self.subscriptions)
        action = self.rng.choice(["change", "change", "pause", "resume", "cancel", "cancel_end"])
        if action == "change":
            row = await self.db.fetch_one(
                "SELECT plan_id FROM subscriptions WHERE organization_id = :org AND id = :id",
                {"org": self.org, "id": subscription_id},
            )
            family = next(
                f for f, ps in self.plans.items() if row["plan_id"] in [p["id"] for p in ps]
            )
            plan = self.rng.choice(self.plans[family])
            values = {
                "id": subscription_id,
                "planId": plan["id"],
                "quantity": self.rng.choice([None, 1, 2, 4]),
                "prorationBehavior": self.rng.choice(
                    ["NONE", "CREATE_PRORATIONS", "ALWAYS_INVOICE"]
                ),
                "idempotencyKey": str(uuid.uuid4()),
            }
            await self.admin.data(CHANGE_PLAN, {"input": values})
        elif action == "pause":
            await self.admin.data(PAUSE, {"input": {"id": subscription_id}})
        elif action == "resume":
            await self.admin.data(RESUME, {"input": {"id": subscription_id}})
        else:
            values = {"id": subscription_id, "atPeriodEnd": action == "cancel_end"}
            await self.admin.data(CANCEL, {"input": values})

    async def coupon(self) -> None:
        customer = self.rng.choice(self.customers)
        if self.rng.random() < 0.5:
            terms: dict[str, Any] = {"percentOff": self.rng.choice(["10", "25", "12.5", "100"])}
        else:
            terms = {"amountOff": {"amount": self.rng.randint(1, 3000), "currency": "USD"}}
        duration = self.rng.choice(["ONCE", "FOREVER", "REPEATING"])
        if duration == "REPEATING":
            terms["durationPeriods"] = 2
        fields = {"code": f"c{len(self.coupons)}", "name": "Random", "duration": duration}
        made = (await self.admin.data(COUPON, {"input": {**fields, **terms}}))["couponCreate"][
            "coupon"
        ]
        self.coupons.append(made["id"])
        await self.admin.data(
            APPLY, {"input": {"customerId": customer["id"], "couponId": made["id"]}}
        )

    async def snapshot(self) -> None:
        counts: dict[tuple[str, str], int] = {}
        customers: dict[tuple[str, str], int] = {}
        for row in await self.db.fetch_all(RAW_SUBSCRIPTIONS, {"org": self.org}):
            key = (row["plan_id"], row["status"])
            counts[key] = counts.get(key, 0) + 1
            owner = (row["customer_id"], row["currency"])
            customers[owner] = customers.get(owner, 0) + int(row["mrr"])
        mrr: dict[str, int] = {}
        paying: dict[str, int] = {}
        for (_, currency), value in customers.items():
            if value > 0:
                mrr[currency] = mrr.get(currency, 0) + value
                paying[currency] = paying.get(currency, 0) + 1
        self.snapshots.append(Snapshot(self.now, counts, mrr, paying))


async def make_plans(walk: Walk, plan_factory: Callable[..., Any]) -> None:
    """Families of plans a subscription may move between (same currency and interval)."""
    families = {
        "usd-month": [
            ("USD", 1000, "MONTH", 1),
            ("USD", 2500, "MONTH", 1),
            ("USD", 4999, "MONTH", 1),
        ],
        "usd-quarter": [("USD", 9000, "MONTH", 3), ("USD", 15000, "MONTH", 3)],
        "usd-year": [("USD", 30000, "YEAR", 1), ("USD", 99900, "YEAR", 1)],
        "eur-week": [("EUR", 700, "WEEK", 1), ("EUR", 1300, "WEEK", 1)],
        "jpy-month": [("JPY", 980, "MONTH", 1), ("JPY", 4900, "MONTH", 1)],
    }
    tiers = ["FREE", "BASIC", "PRO", "ENTERPRISE", "CUSTOM"]
    for family, prices in families.items():
        walk.plans[family] = [
            await plan_factory(
                price={"amount": value, "currency": currency},
                interval=interval,
                intervalCount=count,
                tier=walk.rng.choice(tiers),
                trialDays=walk.rng.choice([0, 14]),
            )
            for currency, value, interval, count in prices
        ]


async def test_rollups_equal_a_recomputation_from_raw_tables_on_random_data(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    settings: Settings,
    plan_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data, not a secret
    walk = Walk(admin, settings, app_services.db, org, rng)
    await advance(admin, START)
    await make_plans(walk, plan_factory)
    declining = await stripe_card(settings, "4000000000000341")
    for n in range(8):
        customer = await customer_factory()
        card = declining if n == 7 else "pm_card_visa"  # one customer's renewals fail
        await mutate(
            admin,
            SET_CARD,
            "customerSetDefaultPaymentMethod",
            customerId=customer["id"],
            paymentMethodId=card,
        )
        walk.customers.append(customer)

    actions = [walk.payment] * 4 + [walk.refund] * 2 + [walk.subscribe] * 3 + [walk.change] * 5
    for step in range(STEPS):
        await walk.tick(timedelta(hours=rng.choice([1, 6, 30, 80])))
        if step % 10 == 9:
            await walk.coupon()
        await rng.choice(actions)()
        await walk.snapshot()
    await walk.tick(timedelta(days=40))  # renewals, dunning, period-end cancellations
    await walk.snapshot()

    variety = await app_services.db.fetch_one(
        "SELECT (SELECT count(DISTINCT status_after) FROM subscription_stat_events"
        " WHERE organization_id = :org) AS statuses,"
        " (SELECT count(DISTINCT movement) FROM subscription_stat_events"
        " WHERE organization_id = :org) AS movements,"
        " (SELECT count(*) FROM refunds WHERE organization_id = :org) AS refunds,"
        " (SELECT count(*) FROM payment_declines d JOIN payments p"
        "  ON p.organization_id = d.organization_id AND p.id = d.payment_id"
        "  WHERE d.organization_id = :org AND p.status <> 'failed') AS declines_retried",
        {"org": org},
    )
    assert variety["statuses"] >= 6, dict(variety._mapping)  # the walk is not degenerate
    assert variety["movements"] >= 4, dict(variety._mapping)
    assert variety["refunds"] > 5, dict(variety._mapping)
    # Declines of payments that left FAILED (dunning cancels them before charging anew) count.
    assert variety["declines_retried"] >= 2, dict(variety._mapping)

    await assert_rollups_match_raw(app_services.db, org)
    await check_revenue(walk, app_services)
    await check_subscriptions(walk, app_services)


# -- revenue ------------------------------------------------------------------------------------


def _key(at: datetime, interval: StatsInterval, tz: ZoneInfo) -> date:
    local = at.astimezone(tz).date()
    if interval is StatsInterval.WEEK:
        return local - timedelta(days=local.weekday())
    if interval is StatsInterval.MONTH:
        return local.replace(day=1)
    return local


async def check_revenue(walk: Walk, services: Any) -> None:
    items = await raw_revenue_items(walk.db, walk.org)
    assert {i[2] for i in items} == {"gross", "payments", "failed", "refunded", "refunds"}
    names = {
        "gross": "gross",
        "payments": "payment_count",
        "failed": "failed_payment_count",
        "refunded": "refunds",
        "refunds": "refund_count",
    }
    span = walk.now - START
    for _ in range(25):
        a = START - timedelta(days=2) + span * walk.rng.random()
        if walk.rng.random() < 0.3:  # exactly on an item's time, to test the bounds
            a = walk.rng.choice(items)[1]
        b = a + timedelta(microseconds=walk.rng.randint(1, int(span.total_seconds() * 1e6)))
        if walk.rng.random() < 0.2:
            b = walk.rng.choice([i[1] for i in items if i[1] > a] or [b])
        tz_name = walk.rng.choice(ZONES)
        tz = ZoneInfo(tz_name)
        interval = walk.rng.choice(list(StatsInterval))
        expected: dict[tuple[str, date], dict[str, int]] = {}
        totals: dict[str, dict[str, int]] = {}
        for currency, at, figure, value in items:
            if a <= at < b:
                bucket = expected.setdefault((currency, _key(at, interval, tz)), {})
                bucket[figure] = bucket.get(figure, 0) + value
                total = totals.setdefault(currency, {})
                total[figure] = total.get(figure, 0) + value
        found = await services.statistics.revenue(
            walk.org, start=a, end=b, interval=interval, currency=None, time_zone=tz_name
        )
        context = (a, b, tz_name, interval)
        assert sorted(c.currency for c in found) == sorted(totals), context
        for currency_revenue in found:
            currency = currency_revenue.currency
            got = {}
            for bucket in currency_revenue.buckets:
                numbers = {figure: _amount(getattr(bucket, name)) for figure, name in names.items()}
                if any(numbers.values()):
                    got[(currency, _key(bucket.start, interval, tz))] = {
                        k: v for k, v in numbers.items() if v
                    }
            want = {k: v for k, v in expected.items() if k[0] == currency}
            assert got == want, context
            total = currency_revenue.total
            assert {
                f: _amount(getattr(total, n))
                for f, n in names.items()
                if _amount(getattr(total, n))
            } == totals[currency], context
            assert total.net.amount == total.gross.amount - total.refunds.amount


def _amount(value: Any) -> int:
    return value if isinstance(value, int) else int(value.amount)


# -- subscriptions ------------------------------------------------------------------------------


async def check_subscriptions(walk: Walk, services: Any) -> None:
    statistics = services.statistics
    for snapshot in walk.snapshots:
        stats = await statistics.subscription_stats(walk.org, at=snapshot.at, start=None, end=None)
        counts = {
            (plan.plan_id, status): getattr(plan.counts, status)
            for plan in stats.by_plan
            for status in (
                "active",
                "trialing",
                "past_due",
                "paused",
                "canceled",
                "unpaid",
                "incomplete",
                "incomplete_expired",
            )
            if getattr(plan.counts, status)
        }
        assert counts == snapshot.counts, snapshot.at
        assert {c.currency: c.mrr.amount for c in stats.currencies if c.mrr.amount} == (
            snapshot.mrr
        ), snapshot.at
        assert {
            c.currency: c.paying_customers for c in stats.currencies if c.paying_customers
        } == snapshot.paying, snapshot.at
        assert stats.counts.total == sum(snapshot.counts.values())
    # Movements over any range add up to the change of MRR and of paying customers.
    for _ in range(15):
        first, second = sorted(walk.rng.sample(walk.snapshots, 2), key=lambda s: s.at)
        if first.at == second.at:
            continue
        start, end = first.at + timedelta(microseconds=1), second.at + timedelta(microseconds=1)
        stats = await statistics.subscription_stats(walk.org, at=second.at, start=start, end=end)
        for found in stats.currencies:
            code = found.currency
            assert found.mrr_at_start.amount == first.mrr.get(code, 0)
            assert found.paying_customers_at_start == first.paying.get(code, 0)
            assert found.mrr_at_start + found.movements.net == found.mrr
            assert (
                found.paying_customers_at_start
                + found.new_customers
                + found.reactivated_customers
                - found.churned_customers
                == found.paying_customers
                == second.paying.get(code, 0)
            )


async def test_concurrent_payments_and_refunds_in_one_bucket_keep_the_rollups_exact(
    admin: GraphQLClient,
    app_services: Any,
    org: str,
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
) -> None:
    """Many transactions add to the same bucket and totals rows at once (the pool has 10
    connections): none of their additions is lost, and none deadlocks."""
    await advance(admin, START)
    customer = await customer_factory()
    created = await asyncio.gather(
        *(
            payment_factory(customer=customer, amount={"amount": 100 + n, "currency": "USD"})
            for n in range(20)
        )
    )

    async def confirm(payment: dict[str, Any]) -> None:
        variables = {"input": {"paymentId": payment["id"], "idempotencyKey": str(uuid.uuid4())}}
        done = (await admin.data(CONFIRM_PAYMENT, variables))["paymentIntentConfirm"]
        assert done["errors"] == [], done["errors"]

    await asyncio.gather(*(confirm(p) for p in created))
    await asyncio.gather(
        *(
            mutate(
                admin,
                REFUND,
                "refundCreate",
                paymentId=p["id"],
                amount={"amount": 50, "currency": "USD"},
                reason="OTHER",
            )
            for p in created[:10]
        )
    )
    await assert_rollups_match_raw(app_services.db, org)
    (usd,) = await app_services.statistics.revenue(
        org,
        start=START,
        end=START + timedelta(hours=1),
        interval=StatsInterval.DAY,
        currency=None,
        time_zone="UTC",
    )
    assert (usd.total.gross.amount, usd.total.payment_count) == (sum(range(100, 120)), 20)
    assert (usd.total.refunds.amount, usd.total.refund_count) == (500, 10)

"""Helpers for the statistics tests: documents, the test clock, and the check that every rollup
equals a recomputation from the raw tables (payments, refunds, subscriptions, coupons)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support import GraphQLClient

FIGURES = """start end gross { amount currency } refunds { amount } net { amount }
  paymentCount failedPaymentCount refundCount averagePayment { amount }"""
REVENUE = f"""query($from: DateTime!, $to: DateTime!, $interval: StatsInterval,
                    $currency: String, $tz: String) {{
  revenueStats(from: $from, to: $to, interval: $interval, currency: $currency, timeZone: $tz) {{
    currency buckets {{ {FIGURES} }} total {{ {FIGURES} }}
  }}
}}"""
COUNTS = "active trialing pastDue paused canceled unpaid incomplete incompleteExpired total"
RATIO = "numerator denominator percent"
SUBSCRIPTION_STATS = f"""query($at: DateTime, $from: DateTime, $to: DateTime) {{
  subscriptionStats(at: $at, from: $from, to: $to) {{
    at from to counts {{ {COUNTS} }}
    byPlan {{ planId name tier counts {{ {COUNTS} }} mrr {{ amount currency }} }}
    byTier {{ tier counts {{ {COUNTS} }} mrr {{ amount currency }} }}
    currencies {{
      currency mrr {{ amount }} arr {{ amount }} payingCustomers arpu {{ amount }}
      mrrAtStart {{ amount }} payingCustomersAtStart
      movements {{ new {{ amount }} expansion {{ amount }} contraction {{ amount }}
                  churned {{ amount }} reactivation {{ amount }} net {{ amount }} }}
      newCustomers reactivatedCustomers churnedCustomers
      customerChurn {{ {RATIO} }} revenueChurn {{ {RATIO} }} netRevenueChurn {{ {RATIO} }}
    }}
    trialsStarted trialsEnded trialsConverted trialConversion {{ {RATIO} }}
  }}
}}"""
STATS = f"""query($tz: String) {{
  stats(timeZone: $tz) {{
    at timeZone paymentCount failedPaymentsToday activeSubscriptions trialingSubscriptions
    currencies {{ currency paymentCount mrr {{ amount }}
                 today {{ {FIGURES} }} thisMonth {{ {FIGURES} }} }}
  }}
}}"""
ADVANCE = """mutation($to: DateTime!) {
  testClockAdvance(input: {to: $to}) { now errors { field message code } }
}"""
SUBSCRIBE = """mutation($input: SubscriptionCreateInput!) {
  subscriptionCreate(input: $input) { subscription { id status } errors { code message } }
}"""
CHANGE_PLAN = """mutation($input: SubscriptionChangePlanInput!) {
  subscriptionChangePlan(input: $input) { subscription { id status } errors { code message } }
}"""
CANCEL = """mutation($input: SubscriptionCancelInput!) {
  subscriptionCancel(input: $input) { subscription { id status } errors { code message } }
}"""
PAUSE = """mutation($input: SubscriptionPauseInput!) {
  subscriptionPause(input: $input) { subscription { id status } errors { code message } }
}"""
RESUME = """mutation($input: SubscriptionResumeInput!) {
  subscriptionResume(input: $input) { subscription { id status } errors { code message } }
}"""
REFUND = """mutation($input: RefundCreateInput!) {
  refundCreate(input: $input) { refund { id status } errors { code message } }
}"""
SET_CARD = """mutation($input: CustomerSetDefaultPaymentMethodInput!) {
  customerSetDefaultPaymentMethod(input: $input) { customer { id } errors { code } }
}"""


def iso(at: datetime) -> str:
    return at.isoformat()


async def advance(admin: GraphQLClient, to: datetime) -> None:
    payload = (await admin.data(ADVANCE, {"to": iso(to)}))["testClockAdvance"]
    assert payload["errors"] == [], payload


async def mutate(admin: GraphQLClient, document: str, name: str, **values: Any) -> dict[str, Any]:
    """Run a mutation that must succeed; its payload. Money and subscription mutations get an
    idempotency key."""
    if name in {"subscriptionCreate", "subscriptionChangePlan", "refundCreate"}:
        values.setdefault("idempotencyKey", str(uuid.uuid4()))
    payload: dict[str, Any] = (await admin.data(document, {"input": values}))[name]
    assert payload["errors"] == [], payload["errors"]
    return payload


def amount(money: dict[str, Any] | None) -> int | None:
    return None if money is None else int(money["amount"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- rollups == recomputation --------------------------------------------------------------

REVENUE_FROM_RAW = """
SELECT currency, bucket, sum(gross) AS gross, sum(payments) AS payments, sum(failed) AS failed,
       sum(refunded) AS refunded, sum(refunds) AS refunds
FROM (
    SELECT currency, stats_bucket(succeeded_at) AS bucket, amount_captured AS gross,
           1 AS payments, 0 AS failed, 0 AS refunded, 0 AS refunds
    FROM payments WHERE organization_id = :org AND status = 'succeeded'
    UNION ALL
    SELECT currency, stats_bucket(declined_at), 0, 0, 1, 0, 0
    FROM payment_declines WHERE organization_id = :org
    UNION ALL
    SELECT currency, stats_bucket(succeeded_at), 0, 0, 0, amount, 1
    FROM refunds WHERE organization_id = :org AND status = 'succeeded'
) raw GROUP BY currency, bucket
"""
# Every payment failed now has a decline recorded at the time it failed (its latest one).
UNRECORDED_FAILURES = """
SELECT p.id FROM payments p
WHERE p.organization_id = :org AND p.status = 'failed' AND NOT EXISTS (
    SELECT 1 FROM payment_declines d
    WHERE d.organization_id = p.organization_id AND d.payment_id = p.id
      AND d.declined_at = p.failed_at)
"""
DECLINES = """
SELECT payment_id, attempt_key, currency, amount, failure_code, declined_at
FROM payment_declines WHERE organization_id = :org ORDER BY declined_at, payment_id
"""
REVENUE_ROLLUPS = """
SELECT currency, bucket, gross, payments, failed, refunded, refunds FROM revenue_rollups
WHERE organization_id = :org AND (gross, payments, failed, refunded, refunds) <> (0, 0, 0, 0, 0)
"""
REVENUE_TOTALS = """
SELECT currency, gross, payments, failed, refunded, refunds FROM revenue_totals
WHERE organization_id = :org
"""
SUBSCRIPTIONS_FROM_RAW = """
SELECT currency, plan_id, status, count(*) AS subscriptions, sum(stats_subscription_mrr(s)) AS mrr
FROM subscriptions s WHERE organization_id = :org GROUP BY currency, plan_id, status
"""
SUBSCRIPTION_TOTALS = """
SELECT currency, plan_id, status, subscriptions, mrr FROM subscription_stat_totals
WHERE organization_id = :org AND (subscriptions, mrr) <> (0, 0)
"""
SUBSCRIPTION_DAYS = """
SELECT currency, plan_id, status, sum(subscriptions) AS subscriptions, sum(mrr) AS mrr
FROM subscription_stat_days WHERE organization_id = :org GROUP BY currency, plan_id, status
HAVING (sum(subscriptions), sum(mrr)) <> (0, 0)
"""
CUSTOMERS_FROM_RAW = """
SELECT customer_id, currency, sum(stats_subscription_mrr(s)) AS mrr
FROM subscriptions s WHERE organization_id = :org GROUP BY customer_id, currency
HAVING sum(stats_subscription_mrr(s)) > 0
"""
CUSTOMER_STATES = """
SELECT customer_id, currency, mrr FROM customer_mrr_states WHERE organization_id = :org AND mrr > 0
"""
MOVEMENT_TOTALS = """
SELECT currency,
       sum(new_mrr + expansion_mrr + reactivation_mrr - contraction_mrr - churned_mrr) AS mrr,
       sum(new_customers + reactivated_customers - churned_customers) AS customers
FROM mrr_movement_days WHERE organization_id = :org GROUP BY currency
"""
LEDGER_TOTALS = """
SELECT currency, sum(mrr_after - mrr_before) AS mrr FROM subscription_stat_events
WHERE organization_id = :org GROUP BY currency
"""


def _rows(rows: Any, *key: str) -> dict[tuple[Any, ...], tuple[int, ...]]:
    found = {}
    for row in rows:
        mapping = dict(row._mapping)
        ident = tuple(mapping.pop(k) for k in key)
        found[ident] = tuple(int(v) for v in mapping.values())
    return found


async def assert_rollups_match_raw(db: Any, org: str) -> None:
    """Every rollup of ``org`` equals the same figure recomputed from the raw tables (failed
    payments counted as declined attempts, ``payment_declines``: each once, when recorded)."""
    values = {"org": org}
    assert await db.fetch_all(UNRECORDED_FAILURES, values) == []
    raw = _rows(await db.fetch_all(REVENUE_FROM_RAW, values), "currency", "bucket")
    raw = {k: v for k, v in raw.items() if any(v)}
    assert _rows(await db.fetch_all(REVENUE_ROLLUPS, values), "currency", "bucket") == raw
    all_time: dict[tuple[Any, ...], list[int]] = {}
    for (currency, _), numbers in raw.items():
        into = all_time.setdefault((currency,), [0] * len(numbers))
        for n, value in enumerate(numbers):
            into[n] += value
    totals = _rows(await db.fetch_all(REVENUE_TOTALS, values), "currency")
    assert {k: v for k, v in totals.items() if any(v)} == {k: tuple(v) for k, v in all_time.items()}

    subs = _rows(
        await db.fetch_all(SUBSCRIPTIONS_FROM_RAW, values), "currency", "plan_id", "status"
    )
    totals = _rows(await db.fetch_all(SUBSCRIPTION_TOTALS, values), "currency", "plan_id", "status")
    assert totals == subs
    days = _rows(await db.fetch_all(SUBSCRIPTION_DAYS, values), "currency", "plan_id", "status")
    assert days == subs

    customers = _rows(await db.fetch_all(CUSTOMERS_FROM_RAW, values), "customer_id", "currency")
    states = _rows(await db.fetch_all(CUSTOMER_STATES, values), "customer_id", "currency")
    assert states == customers

    mrr: dict[str, int] = {}
    paying: dict[str, int] = {}
    for (_, currency), (value,) in customers.items():
        mrr[currency] = mrr.get(currency, 0) + value
        paying[currency] = paying.get(currency, 0) + 1
    moved = _rows(await db.fetch_all(MOVEMENT_TOTALS, values), "currency")
    assert {c: v for c, v in moved.items() if any(v)} == {(c,): (mrr[c], paying[c]) for c in mrr}
    ledger = _rows(await db.fetch_all(LEDGER_TOTALS, values), "currency")
    assert {c: v for c, v in ledger.items() if any(v)} == {(c,): (mrr[c],) for c in mrr}


async def raw_revenue_items(db: Any, org: str) -> list[tuple[str, Any, str, int]]:
    """(currency, time, figure, value) of every counted payment, decline and refund."""
    values = {"org": org}
    items: list[tuple[str, Any, str, int]] = []
    for row in await db.fetch_all(
        "SELECT currency, amount_captured, succeeded_at FROM payments "
        "WHERE organization_id = :org AND status = 'succeeded'",
        values,
    ):
        items.append((row["currency"], row["succeeded_at"], "gross", row["amount_captured"]))
        items.append((row["currency"], row["succeeded_at"], "payments", 1))
    for row in await db.fetch_all(DECLINES, values):
        items.append((row["currency"], row["declined_at"], "failed", 1))
    for row in await db.fetch_all(
        "SELECT currency, amount, succeeded_at FROM refunds "
        "WHERE organization_id = :org AND status = 'succeeded'",
        values,
    ):
        items.append((row["currency"], row["succeeded_at"], "refunded", row["amount"]))
        items.append((row["currency"], row["succeeded_at"], "refunds", 1))
    return items

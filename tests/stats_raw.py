"""The check that every statistics rollup equals a recomputation from the raw tables, with
failed payments counted as declined charge attempts (``payment_declines``, migration 0016): each
decline once, at the time it was recorded, whatever the payment did afterwards.

This supersedes ``assert_rollups_match_raw`` of tests/stats_support.py, whose revenue query
still counts payments *now* failed (the definition before 0016); the subscription queries are
shared with it.
"""

from __future__ import annotations

from typing import Any

from tests.stats_support import (
    CUSTOMER_STATES,
    CUSTOMERS_FROM_RAW,
    LEDGER_TOTALS,
    MOVEMENT_TOTALS,
    REVENUE_ROLLUPS,
    REVENUE_TOTALS,
    SUBSCRIPTION_DAYS,
    SUBSCRIPTION_TOTALS,
    SUBSCRIPTIONS_FROM_RAW,
    _rows,
)

__all__ = ["DECLINES", "REVENUE_FROM_RAW", "assert_rollups_match_raw", "raw_revenue_items"]

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


async def assert_rollups_match_raw(db: Any, org: str) -> None:
    """Every rollup of ``org`` equals the same figure recomputed from the raw tables."""
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
